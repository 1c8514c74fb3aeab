"""apps/textgen.py and common/tasks/charlm.py: data, training run, sampler, bad input."""

import contextlib
import gzip
import io
import json
import math
import os
import threading
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import common
import common.tasks.charlm as generation
from apps import textgen
from common.cli import UserError
from common.data.files import read_text
from common.models import steps

# A short text with a clear structure, so a tiny model learns it in seconds.
VERSE = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
)


def train_tiny_model(cell="lstm", units=(32, 32), epochs=15, seed=0, dropout=0.0):
    """A small stacked model fitted to VERSE, repeated: its greedy text is far from trivial."""
    common.set_seed(seed)
    text = VERSE * 20
    vocabulary = generation.CharacterVocabulary.from_text(text)
    ids = vocabulary.encode(text)
    length = 40
    count = (len(ids) - 1) // length
    inputs = ids[: count * length].reshape(count, length)
    targets = ids[1 : count * length + 1].reshape(count, length)
    model = generation.build_char_model(
        vocabulary, cell=cell, units=units, embedding_dim=16, dropout=dropout
    )
    # No XLA here: compiling would take longer than these few hundred small steps.
    model.compile(
        optimizer=keras.optimizers.Adam(2e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    model.fit(inputs, targets, batch_size=16, epochs=epochs, verbose=0)
    return model


@pytest.fixture(scope="module")
def lstm_model():
    return train_tiny_model("lstm")


@pytest.fixture(scope="module")
def quick_run(quick_runs):
    """The seeded --quick run the tests share (conftest.quick_runs)."""
    return quick_runs("textgen")


# ---------------------------------------------------------------- vocabulary and data


def test_vocabulary_encodes_decodes_and_marks_unknown_characters():
    vocabulary = generation.CharacterVocabulary.from_text("banana")
    assert vocabulary.characters == "abn"
    assert vocabulary.size == 5  # padding, unknown, a, b, n
    assert vocabulary.encode("nab").tolist() == [4, 2, 3]
    assert vocabulary.encode("bat").tolist() == [3, 2, generation.UNKNOWN_ID]
    assert vocabulary.decode([3, 2, 4, 2]) == "bana"
    assert vocabulary.unknown_characters("bandit") == ["d", "i", "t"]


def test_sequences_are_contiguous_slices_with_targets_shifted_by_one():
    ids = np.arange(2, 1002, dtype="int32")  # id i sits at position i - 2
    validation = list(generation.sequence_dataset(ids, seq_length=10, batch_size=4))
    inputs = np.concatenate([batch[0].numpy() for batch in validation])
    targets = np.concatenate([batch[1].numpy() for batch in validation])
    assert inputs.shape == (96, 10)  # (1000 - 1) // 10 = 99 slices, 24 whole batches of 4
    np.testing.assert_array_equal(inputs[:, 0], 2 + 10 * np.arange(96))  # tiles the text, in order
    np.testing.assert_array_equal(targets, inputs + 1)

    train = generation.sequence_dataset(ids, seq_length=10, batch_size=4, seed=7)
    first, again = [
        [batch[0].numpy() for batch in dataset.take(5)]
        for dataset in (train, generation.sequence_dataset(ids, 10, 4, seed=7))
    ]
    np.testing.assert_array_equal(
        np.concatenate(first), np.concatenate(again)
    )  # seeded: repeatable
    slices = np.concatenate(first)
    np.testing.assert_array_equal(np.diff(slices, axis=1), 1)  # each slice is contiguous text
    assert len(set(slices[:, 0] % 10)) > 1  # and starts at varying offsets

    # A text with room for one slice only still streams (batches of one), it does not hang.
    tiny = generation.sequence_dataset(ids[:15], seq_length=10, batch_size=4, seed=1)
    assert [batch[0].shape for batch in tiny.take(3)] == [(1, 10)] * 3


def test_split_holds_out_the_last_tenth_and_rejects_short_text():
    train_text, val_text = generation.split_text("x" * 900 + "y" * 100, seq_length=50)
    assert (train_text, val_text) == ("x" * 900, "y" * 100)
    with pytest.raises(ValueError, match="too short"):
        generation.split_text("x" * 500, seq_length=100)


def test_corpus_holds_out_the_end_and_knows_only_the_training_characters():
    text = "ab" * 450 + "az" * 50  # "z" only in the held-out tenth
    corpus = generation.Corpus.from_text(text, seq_length=10, val_chars=30, source="here")
    assert (corpus.train_text, corpus.held_out) == ("ab" * 450, "az" * 50)
    assert corpus.vocabulary.characters == "ab"  # the training part's characters only
    assert len(corpus.val_ids) == 31  # the scored characters and the one after them
    assert corpus.val_ids.tolist() == [2, generation.UNKNOWN_ID] * 15 + [2]
    np.testing.assert_array_equal(corpus.train_ids, corpus.vocabulary.encode(corpus.train_text))


def test_learning_rate_schedules_by_name():
    plateau = generation.learning_rate_schedule("plateau", 1e-2, seconds=60)
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau) and plateau.factor == 0.5
    cosine = generation.learning_rate_schedule("cosine", 1e-2, seconds=60)
    assert isinstance(cosine, common.CosineDecayInTime)
    with pytest.raises(ValueError, match='"plateau" or "cosine"'):
        generation.learning_rate_schedule("step", 1e-2, seconds=60)


def test_the_loss_curve_is_drawn_against_minutes_beside_the_bigram_baseline():
    history = {"loss": [3.0, 2.0, 1.8], "val_loss": [2.9, 2.2, 2.1]}
    figure = common.plot_history(
        history, x=[0.5, 1.0, 1.5], xlabel="minutes", baselines={"bigram baseline": 2.5}
    )
    axis = figure.axes[0]
    training, validation, bigram = axis.lines
    assert list(training.get_xdata()) == [0.5, 1.0, 1.5]
    assert list(validation.get_ydata()) == history["val_loss"]
    assert list(bigram.get_ydata()) == [2.5, 2.5]  # a horizontal line at the baseline
    assert axis.get_xlabel() == "minutes"
    assert [text.get_text() for text in axis.get_legend().get_texts()] == [
        "training",
        "validation",
        "bigram baseline",
    ]


def test_bigram_baseline_is_near_zero_on_a_text_it_can_predict():
    vocabulary = generation.CharacterVocabulary.from_text("ab")
    ids = vocabulary.encode("ab" * 500)
    baselines = generation.ngram_baselines(ids, ids, vocabulary.size)
    assert baselines["uniform"] == pytest.approx(math.log(3))  # a, b and "unknown"
    assert baselines["unigram (character frequencies)"] == pytest.approx(math.log(2), abs=0.01)
    assert baselines["bigram (previous character)"] < 0.01


def test_loss_by_position_matches_keras_and_a_hand_computation(lstm_model):
    vocabulary = generation.vocabulary_of(lstm_model)
    ids = vocabulary.encode(VERSE * 3)
    length = 30
    by_position = generation.loss_by_position(lstm_model, ids, length, batch_size=4)
    assert by_position.shape == (length,)
    count = (len(ids) - 1) // length
    inputs = ids[: count * length].reshape(count, length)
    targets = ids[1 : count * length + 1].reshape(count, length)
    # By hand: minus the log of the softmax probability of the true next character.
    logits = keras.ops.convert_to_numpy(lstm_model(inputs)).astype("float64")
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    true = np.take_along_axis(log_probabilities, targets[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(by_position, -true.mean(axis=0), rtol=1e-4, atol=1e-5)
    # Its mean is the loss Keras reports on the same slices, whatever the batch size.
    assert by_position.mean() == pytest.approx(
        lstm_model.evaluate(inputs, targets, batch_size=count, verbose=0), rel=1e-4
    )
    np.testing.assert_allclose(
        generation.loss_by_position(lstm_model, ids, length, batch_size=100), by_position, rtol=1e-5
    )
    # The model has learned the verse: the first character of a slice, guessed from one
    # character of context, costs far more than characters read with context.
    assert by_position[0] > by_position[10:].mean() + 0.5
    with pytest.raises(ValueError, match="at least length"):
        generation.loss_by_position(lstm_model, ids[:30], length)
    with pytest.raises(ValueError, match="length >= 1"):
        generation.loss_by_position(lstm_model, ids, 0)


# ---------------------------------------------------------------- sampling


def test_choose_next_greedy_top_k_and_temperature_behave_as_documented():
    logits = tf.constant(
        [[9.0, 9.0, 3.0, 2.0, 1.0, 0.0]]
    )  # padding and unknown lead, but may never be chosen
    rows = tf.tile(logits, [4000, 1])
    seed = tf.constant([1, 2])
    assert generation.choose_next(logits, 0.0, 0, seed).numpy().tolist() == [2]  # greedy
    assert set(generation.choose_next(rows, 1.0, 1, seed).numpy()) == {2}  # top-k 1 is greedy

    top_two = generation.choose_next(rows, 1.0, 2, seed).numpy()
    assert set(top_two) == {2, 3}  # only the 2 most likely characters
    share = np.mean(top_two == 2)
    assert share == pytest.approx(
        math.e / (math.e + 1), abs=0.03
    )  # softmax of (3, 2) restricted to the pair

    all_ids = generation.choose_next(rows, 1.0, 0, seed).numpy()
    assert set(all_ids) == {2, 3, 4, 5}
    expected = np.exp([3.0, 2.0, 1.0, 0.0]) / np.exp([3.0, 2.0, 1.0, 0.0]).sum()
    np.testing.assert_allclose(
        np.bincount(all_ids, minlength=6)[2:] / len(all_ids), expected, atol=0.03
    )

    cold = generation.choose_next(
        rows, 0.2, 0, seed
    ).numpy()  # low temperature: nearly always the top character
    hot = generation.choose_next(rows, 5.0, 0, seed).numpy()  # high temperature: nearly uniform
    assert np.mean(cold == 2) > 0.99
    assert np.mean(hot == 2) < 0.35 and np.mean(hot == 5) > 0.15


@pytest.mark.parametrize("cell", ["lstm", pytest.param("gru", marks=pytest.mark.slow)])
def test_stateful_sampler_matches_rerunning_the_model_at_greedy(cell, lstm_model):
    model = lstm_model if cell == "lstm" else train_tiny_model("gru", units=(32,))
    sampler = generation.CharSampler(model)
    prompt = "To be, or"
    fast = sampler.generate(prompt, 150, temperature=0.0)[0]
    slow = generation.generate_by_rerunning(model, prompt, 150)
    assert len(fast) == 150
    assert fast == slow
    assert len(set(fast)) > 8  # real text, not one repeated character
    # Top-k 1 at any temperature is the same greedy text.
    assert sampler.generate(prompt, 150, temperature=1.5, top_k=1, seed=5)[0] == fast
    # So is the bench's model.predict loop over a sliding window, when it is nearly greedy.
    assert (
        generation.predict_window_loop(model, prompt, 12, window=30, temperature=1e-4) == fast[:12]
    )


def test_dropout_is_locked_one_mask_per_sequence_and_off_when_sampling():
    model = train_tiny_model("lstm", units=(32, 32), epochs=15, dropout=0.1)
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.SpatialDropout1D)]
    assert [layer.name for layer in dropouts] == ["dropout_1", "dropout_2", "head_dropout"]
    kept = np.asarray(dropouts[0](np.ones((4, 30, 16), "float32"), training=True)) != 0
    assert np.all(kept == kept[:, :1, :])  # the same units dropped at every time step
    assert 0.6 < kept[:, 0, :].mean() < 1.0  # and some are dropped
    # The recurrent layers keep their defaults (cuDNN on a GPU): no dropout inside them.
    assert all(layer.dropout == 0 for layer in model.layers if isinstance(layer, keras.layers.RNN))
    prompt = "To be, or"
    greedy = generation.CharSampler(model).generate(prompt, 100, temperature=0.0)[0]
    assert greedy == generation.generate_by_rerunning(model, prompt, 100)


def test_batched_samples_are_independent_and_repeatable(lstm_model):
    sampler = generation.CharSampler(lstm_model)
    texts = sampler.generate("The ", 200, samples=4, temperature=1.5, seed=11)
    assert len(texts) == 4 and all(len(text) == 200 for text in texts)
    assert len(set(texts)) == 4  # different draws per row
    assert (
        sampler.generate("The ", 200, samples=4, temperature=1.5, seed=11) == texts
    )  # same seed, same text
    assert sampler.generate("The ", 200, samples=4, temperature=1.5, seed=12) != texts
    with pytest.raises(ValueError, match=r"unknown characters: \['Z', '~'\]"):
        sampler.generate("Z~", 10)


def test_reloaded_model_gives_identical_logits_and_keeps_its_vocabulary(lstm_model, tmp_path):
    path = tmp_path / "model.keras"
    lstm_model.save(path)
    reloaded = keras.models.load_model(path)  # plain Keras: no custom_objects
    vocabulary = generation.vocabulary_of(reloaded)
    assert vocabulary.characters == generation.vocabulary_of(lstm_model).characters
    ids = vocabulary.encode(VERSE)[None]
    np.testing.assert_array_equal(reloaded(ids).numpy(), lstm_model(ids).numpy())
    prompt = "Whether"
    assert generation.CharSampler(reloaded).generate(
        prompt, 80, temperature=0.0
    ) == generation.CharSampler(lstm_model).generate(prompt, 80, temperature=0.0)


# ---------------------------------------------------------------- how a training step runs


def tiny_build(vocabulary, built=None):
    """``build(step)`` for fastest_step: a GRU-8 compiled as ``step`` says; records each step built."""

    def build(step):
        if built is not None:
            built.append(step)
        with steps.dtype_policy(step):
            model = generation.build_char_model(vocabulary, cell="gru", units=(8,), embedding_dim=4)
        return generation.compile_char_model(model, 1e-2, jit_compile=step == "xla")

    return build


def test_fastest_step_takes_the_least_wall_time_and_remembers_it(tmp_path, monkeypatch):
    vocabulary = generation.CharacterVocabulary.from_text(VERSE)
    ids = vocabulary.encode(VERSE)[: 4 * 11].reshape(4, 11)
    seconds = {"xla": 0.03, "plain": 0.01, "bf16": 0.02}  # per step, as if measured
    built = []

    def fake_time_step(model, inputs, targets, steps=10):
        step = built[-1]
        return {"compile_seconds": 1.0, "wall_seconds": seconds[step], "cpu_seconds": 0.05}

    monkeypatch.setattr(steps, "time_step", fake_time_step)
    cache = tmp_path / "cache" / "train_steps.json"
    args = (tiny_build(vocabulary, built), ids[:, :-1], ids[:, 1:])
    best, timings = steps.fastest_step(*args, candidates=steps.STEPS, cache_file=cache, key="k")
    assert best == "plain" and built == list(steps.STEPS)
    assert timings["xla"]["wall_seconds"] == 0.03 and "cached" not in timings["xla"]
    # A second run on the same processor and model reads the answer: nothing built or timed.
    again, cached = steps.fastest_step(*args, candidates=steps.STEPS, cache_file=cache, key="k")
    assert again == "plain" and len(built) == 3 and all(t["cached"] for t in cached.values())
    # Another model (key), or other candidates, are timed afresh.
    steps.fastest_step(*args, candidates=("xla", "plain"), cache_file=cache, key="k")
    steps.fastest_step(*args, candidates=steps.STEPS, cache_file=cache, key="other")
    assert len(built) == 3 + 2 + 3
    # A damaged or hostile cache is ignored and rewritten, never trusted.
    steps.fastest_step(*args, candidates=steps.STEPS, cache_file=cache, key="k")
    entries = json.loads(cache.read_text())
    zero = {key: {**entry, "plain": {"wall_seconds": 0}} for key, entry in entries.items()}
    text = {key: {**entry, "plain": {"wall_seconds": "fast"}} for key, entry in entries.items()}
    for content in ("not json", "[1, 2]", json.dumps(zero), json.dumps(text)):
        cache.write_text(content)
        count = len(built)
        best = steps.fastest_step(*args, candidates=steps.STEPS, cache_file=cache, key="k")[0]
        assert best == "plain" and len(built) == count + 3
    # A cache that cannot be written costs the timing next time, not the run.
    (tmp_path / "a file").write_text("")
    unwritable = tmp_path / "a file" / "train_steps.json"
    assert steps.fastest_step(*args, candidates=steps.STEPS, cache_file=unwritable)[0] == "plain"


def test_a_real_timing_gives_seconds_per_step_and_the_compile_apart():
    vocabulary = generation.CharacterVocabulary.from_text(VERSE)
    ids = vocabulary.encode(VERSE)[: 4 * 11].reshape(4, 11)
    timing = steps.time_step(tiny_build(vocabulary)("plain"), ids[:, :-1], ids[:, 1:], steps=3)
    assert 0 < timing["wall_seconds"] < timing["compile_seconds"]
    assert timing["cpu_seconds"] > 0
    with pytest.raises(ValueError, match="Expected a training step in"):
        steps.fastest_step(tiny_build(vocabulary), ids, ids, candidates=("fp8",))


def test_a_bfloat16_model_samples_and_copies_to_float32_with_the_same_weights(tmp_path):
    vocabulary = generation.CharacterVocabulary.from_text(VERSE)
    before = keras.config.dtype_policy().name
    model = tiny_build(vocabulary)("bf16")
    assert keras.config.dtype_policy().name == before  # the policy was set for the build only
    assert model.get_layer("rnn_1").dtype_policy.name == "mixed_bfloat16"
    assert all(weight.dtype == "float32" for weight in model.weights)  # float32 weights
    ids = vocabulary.encode(VERSE)[None, :40]
    model.train_on_batch(ids[:, :-1], ids[:, 1:])
    copy = steps.in_float32(model)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    for mine, theirs in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    # The same weights, computed in float32 instead of bfloat16 (8 bits of mantissa): close.
    np.testing.assert_allclose(copy(ids).numpy(), model(ids).numpy(), atol=0.05)
    # The sampler runs on the bfloat16 model itself (as during training) and on the copy.
    assert len(generation.CharSampler(model).generate("To be", 30, temperature=0.0)[0]) == 30
    path = tmp_path / "model.keras"
    copy.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(reloaded(ids).numpy(), copy(ids).numpy())
    assert generation.CharSampler(reloaded).generate("To be", 60, temperature=0.0) == (
        generation.CharSampler(copy).generate("To be", 60, temperature=0.0)
    )


def test_under_a_strategy_keras_chooses_the_step(capsys, tmp_path):
    mirrored = types.SimpleNamespace(kind="mirrored")
    quick = textgen.Config(train_step="xla", cache_dir=tmp_path)  # --quick's step
    assert textgen.choose_training_step(None, quick, mirrored).train_step == "auto"
    assert capsys.readouterr().out == "Training step: Keras' choice under a distribution strategy\n"
    asked = textgen.Config(train_step="bf16", cache_dir=tmp_path)  # works under a strategy too
    assert textgen.choose_training_step(None, asked, mirrored).train_step == "bf16"
    with steps.dtype_policy("auto"):  # Keras' choice: the policy is left as it is
        assert keras.config.dtype_policy().name == "float32"


@pytest.mark.slow  # times three compiled steps
def test_auto_times_the_steps_once_then_reads_them(tmp_path):
    vocabulary = generation.CharacterVocabulary.from_text(VERSE)
    options = dict(batch_size=4, seq_length=8, learning_rate=1e-2, cell="gru", units=(8,))
    options.update(embedding_dim=4, dropout=0.0, cache_file=tmp_path / "steps.json")
    step, line = generation.choose_training_step("auto", vocabulary, **options)
    assert step in steps.available_steps() and "just timed on this CPU" in line
    assert line.startswith(f"Training step: {step} (")
    assert "xla" in line and "plain" in line  # every speed is shown
    again, line = generation.choose_training_step("auto", vocabulary, **options)
    assert again == step and "timed on this CPU before" in line
    assert generation.choose_training_step("plain", vocabulary, **options) == (
        "plain",
        "Training step: plain (Keras' default TensorFlow graph), as asked",
    )


# ---------------------------------------------------------------- the app


def test_quick_run_trains_reports_and_saves(quick_run):
    status, out, err, folder = quick_run
    assert status == 0, err
    for name in ("model.keras", "metrics.json", "loss.png", "samples.txt"):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    epochs = metrics["epochs"]
    assert len(epochs) >= 1
    for row in epochs:
        assert row["val_bits_per_char"] == pytest.approx(row["val_loss_nats"] / math.log(2))
    assert metrics["val_loss_nats"] == min(
        row["val_loss_nats"] for row in epochs
    )  # best epoch kept
    assert metrics["training"]["chars_per_second"] > 0
    # Even a few seconds of training beat guessing characters by frequency.
    assert metrics["val_loss_nats"] < metrics["baselines_nats"]["unigram (character frequencies)"]
    samples = (folder / "samples.txt").read_text()
    assert samples.count("after epoch") == len(epochs)
    assert "bits/char" in out and "bigram" in out
    assert "Training step: xla (one XLA-compiled program), as asked" in out  # --quick's step
    assert metrics["training"]["train_step"] == "xla"


@pytest.mark.slow  # a training run of its own
def test_cosine_schedule_lowers_the_learning_rate_over_the_run(tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        argv = ["--quick", "--schedule", "cosine", "--out", str(tmp_path)]
        assert textgen.main(argv) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # --quick starts at 1e-2 and falls along the cosine to a tenth of it over its 30 seconds.
    # Each epoch's last step set its rate a moment before the epoch ended, so no lower than
    # the cosine at the epoch's end; halving on a plateau would keep epoch 1 at 1e-2.
    for row in metrics["epochs"]:
        at_end = 1e-2 * common.models.training.cosine_factor(row["wall_seconds"] / 30, 0.1)
        assert at_end * (1 - 1e-6) <= row["learning_rate"] < 1e-2
    rates = [row["learning_rate"] for row in metrics["epochs"]]
    assert rates == sorted(rates, reverse=True) and metrics["training"]["schedule"] == "cosine"


@pytest.mark.slow  # a second training run
def test_quick_run_repeats_with_the_same_seed(quick_run, tmp_path):
    with contextlib.redirect_stdout(io.StringIO()):
        status = textgen.main(["--quick", "--seed", "3", "--out", str(tmp_path)])
    assert status == 0
    runs = (quick_run[3], tmp_path)
    first, second = (json.loads((folder / "metrics.json").read_text()) for folder in runs)
    assert [row["val_loss_nats"] for row in second["epochs"]] == pytest.approx(
        [row["val_loss_nats"] for row in first["epochs"]], rel=1e-5
    )
    samples = [
        [
            line
            for line in (folder / "samples.txt").read_text().splitlines()
            if not line.startswith("=====")
        ]  # headers hold times
        for folder in runs
    ]
    assert samples[0] == samples[1]


def test_load_generates_batched_samples_from_the_saved_run(quick_run, run_app):
    folder = quick_run[3]
    status, out, err = run_app(
        "textgen",
        "--load",
        folder,
        "--generate",
        "40",
        "--samples",
        "3",
        "--prompt",
        "Enter",
        "--top-k",
        "5",
    )
    assert status == 0, err
    assert out.count("----- sample") == 3
    assert out.count("Enter") >= 3


def test_url_download_is_cached_and_offline_is_a_clear_error(tmp_path):
    source = tmp_path / "verse.txt"
    source.write_text(VERSE)
    config = types.SimpleNamespace(url=source.as_uri(), text=None, cache_dir=tmp_path / "cache")
    assert textgen.load_text(config) == (VERSE, source.as_uri())
    source.unlink()
    assert textgen.load_text(config) == (VERSE, source.as_uri())  # from the cache
    config.url = "http://localhost:9/other.txt"  # nothing answers there
    with pytest.raises(UserError, match="could not download.*Use --text with a local file"):
        textgen.load_text(config)


def bad_inputs(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Fran\xe7ois ".encode("latin-1") * 100)
    short = tmp_path / "short.txt"
    short.write_text(VERSE)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.keras").write_bytes(b"not a zip file")
    no_model = tmp_path / "no_model"
    no_model.mkdir()
    return {
        "missing file": (["--text", tmp_path / "nope.txt"], "no such file"),
        "empty file": (["--text", empty], "empty"),
        "not UTF-8": (["--text", latin1], "not UTF-8"),
        "too short": (["--text", short], "too short"),
        "temperature 0": (["--temperature", "0"], "--temperature: expected a finite positive"),
        "negative temperature": (["--temperature", "-1"], "--temperature: expected a finite"),
        "infinite temperature": (["--temperature", "inf"], "--temperature: expected a finite"),
        "negative top-k": (["--top-k", "-2"], "--top-k"),
        "missing model folder": (["--load", tmp_path / "nowhere"], "no such folder"),
        "folder without model": (["--load", no_model], "no model.keras"),
        "corrupt model": (["--load", corrupt], "damaged"),
        "offline url": (
            ["--url", "http://localhost:9/none.txt", "--cache-dir", tmp_path / "cache"],
            "could not download",
        ),
        "validation shorter than a sequence": (
            ["--val-chars", "10", "--seq-length", "20"],
            "--val-chars 10 is shorter than one sequence of --seq-length 20",
        ),
        "XLA across replicas": (
            ["--train-step", "xla", "--distribute", "mirrored"],
            "--train-step xla cannot reach the other replicas' weights",
        ),
        "unknown training step": (["--train-step", "fp8"], "--train-step: invalid choice"),
        "cosine across machines": (
            ["--schedule", "cosine", "--distribute", "multiworker"],
            "use --schedule plateau with --distribute multiworker",
        ),
    }


BAD_INPUT_CASES = [
    "missing file",
    "empty file",
    "not UTF-8",
    "too short",
    "temperature 0",
    "negative temperature",
    "infinite temperature",
    "negative top-k",
    "missing model folder",
    "folder without model",
    "corrupt model",
    "offline url",
    "validation shorter than a sequence",
    "cosine across machines",
    "XLA across replicas",
    "unknown training step",
]


@pytest.mark.parametrize("case", BAD_INPUT_CASES)
def test_bad_input_is_one_line_and_exit_status_2(case, run_app, tmp_path):
    argv, message = bad_inputs(tmp_path)[case]
    # A --load run writes no folder, so --out with it is an error of its own (tested elsewhere).
    out_option = [] if "--load" in argv else ["--out", tmp_path / "run"]
    status, out, err = run_app("textgen", *argv, "--quick", *out_option)
    assert status == 2
    assert err.startswith("textgen: error:") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_text_over_the_size_limit_is_refused_before_it_is_read(run_app, tmp_path, monkeypatch):
    def read_whole(*args, **kwargs):
        raise AssertionError("the whole file was read")

    monkeypatch.setattr(textgen, "read_text", read_whole)
    limit = generation.MAX_TEXT_BYTES
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as handle:
        handle.truncate(300_000_000)  # sparse: 300 MB that take no disk
    packed = tmp_path / "packed.txt.gz"
    packed.write_bytes(gzip.compress(b"To be. " * (limit // 7 + 1), compresslevel=1))
    for path, received in ((huge, "received 300 MB"), (packed, "received more once unpacked")):
        status, _, err = run_app("textgen", "--text", path, "--out", tmp_path / "run")
        assert status == 2 and err.count("\n") == 1, err
        assert f"--text {path}: expected at most 40 MB of text" in err and received in err
    assert not (tmp_path / "run").exists()
    assert "zcat FILE | head -c" in err  # cutting the packed file would break it
    status, out, _ = run_app("textgen", "--help")
    assert status == 0 and "UTF-8 text to train on, at most 40 MB" in " ".join(out.split())


def test_the_size_check_leaves_a_pipe_whole_for_its_reader(tmp_path):
    # Opened twice, a pipe's first bytes went to the size check and training got the rest.
    fifo = tmp_path / "text.pipe"
    os.mkfifo(fifo)
    text = "To be, or not to be: that is the question. " * 5_000
    writer = threading.Thread(target=fifo.write_text, args=(text,), daemon=True)
    writer.start()
    got = []
    reader = threading.Thread(
        target=lambda: (generation.check_text_size(fifo), got.append(read_text(fifo))),
        daemon=True,  # a pipe emptied by the check would leave this reader waiting for ever
    )
    reader.start()
    reader.join(timeout=20)
    assert got == [text]


def test_bfloat16_steps_and_float16_exclude_each_other(run_app, tmp_path, monkeypatch):
    # --mixed-precision needs a GPU (refused on a CPU first): pretend there is one.
    devices = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: ["GPU"] if kind == "GPU" else devices(),
    )
    argv = ["--train-step", "bf16", "--mixed-precision", "--quick", "--out", tmp_path / "run"]
    status, out, err = run_app("textgen", *argv)
    assert status == 2 and not (tmp_path / "run").exists()
    assert (
        err
        == "textgen: error: --train-step bf16 and --mixed-precision (float16) exclude each other\n"
    )


def test_unknown_prompt_characters_are_named(quick_run, run_app):
    status, out, err = run_app("textgen", "--load", quick_run[3], "--prompt", "Hi \u00e9\u263a")
    assert status == 2
    assert "'\u00e9'" in err and "'\u263a'" in err


def interrupt_at(epoch, batch, monkeypatch):
    """Make Ctrl-C arrive during ``epoch`` (1-based), after ``batch`` batches; return the kept weights."""
    original = generation.EpochReport.on_train_batch_end
    kept = []

    def on_train_batch_end(self, batch_number, logs=None):
        original(self, batch_number, logs)
        if len(self.epochs) == epoch - 1 and self.batches == batch:
            kept.append(self.best_weights)
            raise KeyboardInterrupt

    monkeypatch.setattr(generation.EpochReport, "on_train_batch_end", on_train_batch_end)
    return kept


def test_ctrl_c_after_an_epoch_saves_the_best_epoch_as_a_complete_run(
    run_app, tmp_path, monkeypatch
):
    kept = interrupt_at(epoch=2, batch=3, monkeypatch=monkeypatch)
    status, out, err = run_app("textgen", "--quick", "--out", tmp_path / "run")
    assert status == 0, err
    assert "Interrupted during epoch 2: keeping epoch 1" in out
    folder = tmp_path / "run"
    assert sorted(path.name for path in folder.iterdir()) == [
        ".rnn-workshop-run",
        "config.json",
        "loss.png",
        "metrics.json",
        "model.keras",
        "samples.txt",
    ]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["training"]["interrupted"] is True
    assert metrics["best_epoch"] == 1 and len(metrics["epochs"]) == 1
    reloaded = keras.models.load_model(folder / "model.keras")
    for saved, best in zip(reloaded.get_weights(), kept[0]):
        np.testing.assert_array_equal(saved, best)  # epoch 1's weights, not the half-trained ones


def test_ctrl_c_before_the_first_epoch_ends_saves_nothing(run_app, tmp_path, monkeypatch):
    interrupt_at(epoch=1, batch=2, monkeypatch=monkeypatch)
    status, out, err = run_app("textgen", "--quick", "--out", tmp_path / "run")
    assert status == 130
    assert err.strip() == "interrupted; nothing was saved"
    assert list(tmp_path.iterdir()) == []  # no run folder, no debris
