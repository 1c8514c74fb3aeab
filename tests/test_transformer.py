"""The encoder-decoder transformer: shapes, masks, causality, saving, and that it learns."""

import numpy as np
import pytest

import keras

from common.models.seq2seq import predict_autoregressive, teacher_forcing_inputs
from common.models.transformer import KeyMaskedAttention, PositionalEmbedding, build_transformer

TINY = {"embedding_dim": 8, "heads": 2, "feed_forward_dim": 16}


def tiny(source_length=4, target_length=5, layers=1, dropout=0.0, vocab=11, target_vocab=9):
    return build_transformer(
        source_length, target_length, vocab, target_vocab, layers=layers, dropout=dropout, **TINY
    )


def predict(model, sources, decoder_inputs):
    return keras.ops.convert_to_numpy(model([np.array(sources), np.array(decoder_inputs)]))


def test_output_is_a_distribution_per_target_step():
    model = tiny()
    assert [tensor.name for tensor in model.inputs] == ["encoder_inputs", "decoder_inputs"]
    assert model.get_layer("head").activation is keras.activations.softmax
    outputs = predict(model, [[3, 5, 7, 0], [4, 0, 0, 0]], [[1, 4, 6, 0, 0], [1, 8, 0, 0, 0]])
    assert outputs.shape == (2, 5, 9)
    np.testing.assert_allclose(outputs.sum(axis=-1), 1.0, rtol=1e-5)


def test_positional_embedding_masks_padding_and_tells_positions_apart():
    embedding = PositionalEmbedding(4, 10, 6)
    tokens = np.array([[3, 3, 0, 0]])
    vectors = keras.ops.convert_to_numpy(embedding(tokens))
    assert vectors.shape == (1, 4, 6)
    assert not np.allclose(vectors[0, 0], vectors[0, 1])  # same token, other position
    assert keras.ops.convert_to_numpy(embedding.compute_mask(tokens)).tolist() == [
        [True, True, False, False]
    ]
    with pytest.raises(ValueError, match="at most sequence_length=4"):
        PositionalEmbedding(4, 10, 6)(keras.Input((5,), dtype="int64"))


def test_each_step_depends_only_on_decoder_inputs_up_to_it():
    model = tiny(layers=2)
    sources = [[3, 5, 7, 0]]
    full = [[1, 4, 6, 2, 8]]
    expected = predict(model, sources, full)[0]
    for step in range(4):
        changed = [list(full[0])]
        changed[0][step + 1] = 3
        outputs = predict(model, sources, changed)[0]
        np.testing.assert_allclose(outputs[: step + 1], expected[: step + 1], atol=1e-6)
        assert not np.allclose(outputs[step + 1], expected[step + 1], atol=1e-4)
    # Decoding re-runs the model on the prefix, padding after it: same outputs up to there.
    prefix = predict(model, sources, [[1, 4, 6, 0, 0]])[0]
    np.testing.assert_allclose(prefix[:3], expected[:3], atol=1e-6)
    # Even a padded step's output ignores what comes after it.
    np.testing.assert_allclose(
        predict(model, sources, [[1, 4, 0, 0, 5]])[0, :4],
        predict(model, sources, [[1, 4, 0, 0, 0]])[0, :4],
        atol=1e-6,
    )


def _copy_weights(source, destination):
    """Copy weights by name; a longer position table gets the shorter one's rows first."""
    weights = {variable.path: keras.ops.convert_to_numpy(variable) for variable in source.weights}
    assert len(weights) == len(destination.weights)
    for variable in destination.weights:
        value = keras.ops.convert_to_numpy(variable).copy()
        value[: len(weights[variable.path])] = weights[variable.path]
        variable.assign(value)


@pytest.mark.parametrize("layers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_extra_source_padding_changes_nothing(layers):
    short, long = tiny(source_length=4, layers=layers), tiny(source_length=7, layers=layers)
    _copy_weights(short, long)
    decoder_inputs = [[1, 4, 6, 0, 0], [1, 8, 2, 5, 3]]
    expected = predict(short, [[3, 5, 7, 0], [9, 0, 0, 0]], decoder_inputs)
    outputs = predict(long, [[3, 5, 7, 0, 0, 0, 0], [9, 0, 0, 0, 0, 0, 0]], decoder_inputs)
    np.testing.assert_allclose(outputs, expected, atol=1e-6)  # padded decoder steps too
    # ...while a real source token does change every step's output.
    other = predict(long, [[3, 5, 7, 0, 0, 0, 0], [9, 4, 0, 0, 0, 0, 0]], decoder_inputs)
    assert not np.allclose(other[1], outputs[1], atol=1e-4, rtol=0)


def test_loss_skips_padded_target_steps():
    model = tiny()
    model.compile(loss="sparse_categorical_crossentropy")
    sources = np.array([[3, 5, 7, 0]])
    decoder_inputs = np.array([[1, 4, 6, 0, 0]])
    targets = np.array([[4, 6, 2, 0, 0]])
    other_padding = np.array([[4, 6, 2, 7, 5]])  # differs only where decoder inputs are 0
    other_real = np.array([[4, 6, 8, 0, 0]])

    def loss(y):
        return model.evaluate([sources, decoder_inputs], y, verbose=0)

    assert loss(other_padding) == pytest.approx(loss(targets), rel=1e-6)
    assert loss(other_real) != pytest.approx(loss(targets), rel=1e-3)


def test_reloads_to_identical_predictions(tmp_path):
    model = tiny(layers=2, dropout=0.1)
    inputs = [np.array([[3, 5, 7, 0], [2, 0, 0, 0]]), np.array([[1, 4, 0, 0, 0], [1, 6, 3, 0, 0]])]
    path = tmp_path / "transformer.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded(inputs)), keras.ops.convert_to_numpy(model(inputs))
    )
    assert isinstance(reloaded.get_layer("encoder_embedding"), PositionalEmbedding)
    assert isinstance(reloaded.get_layer("decoder_2_cross_attention"), KeyMaskedAttention)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"embedding_dim": 10, "heads": 4},
            "Expected embedding_dim to be a multiple of heads. Received: embedding_dim=10, heads=4",
        ),
        ({"layers": 0}, "Expected layers to be a positive int. Received: layers=0"),
        ({"heads": -2}, "heads=-2"),
        ({"feed_forward_dim": 0}, "feed_forward_dim=0"),
        ({"source_length": 2.5}, "source_length=2.5"),
        ({"target_vocab_size": True}, "target_vocab_size=True"),
        ({"dropout": 1.0}, r"Expected dropout in \[0, 1\). Received: dropout=1.0"),
    ],
)
def test_builder_mistakes_raise_value_error(kwargs, message):
    arguments = {"source_length": 4, "target_length": 5, "vocab_size": 11, "target_vocab_size": 9}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_transformer(**arguments)


START, END, VOCAB, LENGTH = 1, 2, 12, 6


def reversal_task(count, rng):
    """Sources of 4-6 tokens from 3..11, right-padded; targets reversed, then END."""
    sources = np.zeros((count, LENGTH), "int64")
    targets = np.zeros((count, LENGTH + 1), "int64")
    for row, length in enumerate(rng.integers(4, LENGTH + 1, size=count)):
        tokens = rng.integers(3, VOCAB, size=length)
        sources[row, :length] = tokens
        targets[row, :length] = tokens[::-1]
        targets[row, length] = END
    return sources, targets


@pytest.mark.slow  # trains for about 15 seconds
def test_learns_to_reverse_and_decodes_greedily_on_the_prefix():
    keras.utils.set_random_seed(1)
    sources, targets = reversal_task(3000, np.random.default_rng(1))
    model = build_transformer(
        LENGTH, LENGTH + 1, VOCAB, VOCAB, embedding_dim=32, heads=2, feed_forward_dim=64, dropout=0
    )
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(
        [sources, teacher_forcing_inputs(targets, START)],
        targets,
        batch_size=32,
        epochs=4,
        verbose=0,
    )
    # Unseen sequences, decoded greedily: each step feeds its argmax back as the next input.
    test_sources, test_targets = reversal_task(200, np.random.default_rng(99))
    decoded = predict_autoregressive(
        model, test_sources, START, feedback=lambda step: step.argmax(-1)
    ).argmax(-1)
    real = test_targets != 0  # the reversed tokens and END; chance is 1 in 9 for each
    assert (decoded == test_targets)[real].mean() > 0.9
