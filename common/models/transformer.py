"""A small encoder-decoder transformer: the attention-only rival of the GRU translator.

Self-attention lets every word look at every other word of its own sentence at once, and
mix in what it finds useful; the encoder does this over the source sentence. Causal masking
stops the decoder's words from looking ahead: target word ``t`` may attend only to words
``0..t``, so the model cannot read the answer it is asked to predict. Cross-attention is
the decoder asking the encoder: at each target position it weighs every source word, as
Bahdanau attention does for the GRU decoder. Unlike the GRU decoder there is no recurrence,
no state carried from step to step: word order comes from learned position embeddings, and
training runs all target steps at once, in one pass, instead of one step after another.

>>> model = build_transformer(6, 5, vocab_size=20, target_vocab_size=15, embedding_dim=16,
...                           heads=2, feed_forward_dim=32)
>>> sources, targets = np.array([[4, 9, 3, 0, 0, 0]]), np.array([[1, 7, 0, 0, 0]])
>>> tuple(model([sources, targets]).shape)
(1, 5, 15)
"""

import numpy as np
import keras
from keras import layers

from common.models.recurrent import check_fraction


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Expected {name} to be a positive int. Received: {name}={value!r}")
    return int(value)


@keras.saving.register_keras_serializable(package="common")
class PositionalEmbedding(layers.Layer):
    """Token embedding plus a learned embedding of each position, and a padding mask.

    Attention on its own ignores order (it is a weighted sum over a set), so each
    position ``0..sequence_length - 1`` gets its own learned vector, added to its
    token's vector. Like ``Embedding(mask_zero=True)``, id 0 is padding: the layer's
    Keras mask is ``inputs != 0``.

    Call: ``embedding(token_ids)`` with token_ids (batch, timesteps) ints, timesteps at
    most ``sequence_length``. Returns (batch, timesteps, embedding_dim).
    """

    def __init__(self, sequence_length, vocab_size, embedding_dim, **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = _check_positive_int("sequence_length", sequence_length)
        self.vocab_size = _check_positive_int("vocab_size", vocab_size)
        self.embedding_dim = _check_positive_int("embedding_dim", embedding_dim)
        self.token_embedding = layers.Embedding(vocab_size, embedding_dim, name="token_embedding")
        self.position_embedding = layers.Embedding(
            sequence_length, embedding_dim, name="position_embedding"
        )

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] > self.sequence_length:
            raise ValueError(
                f"Expected at most sequence_length={self.sequence_length} timesteps. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.token_embedding.build(input_shape)
        self.position_embedding.build((self.sequence_length,))

    def call(self, inputs):
        positions = keras.ops.arange(keras.ops.shape(inputs)[-1])
        return self.token_embedding(inputs) + self.position_embedding(positions)

    def compute_mask(self, inputs, mask=None):
        return keras.ops.not_equal(inputs, 0)

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
        }


@keras.saving.register_keras_serializable(package="common")
class KeyMaskedAttention(layers.MultiHeadAttention):
    """``MultiHeadAttention`` that masks padded *keys* only, never padded *queries*.

    Keras 3 also masks the rows of padded queries; such a row has nothing left to attend
    to, and the fused attention kernel then spreads it evenly over every key, padding and
    future steps included. The padded steps' outputs are masked out of the loss, but
    they would then change with extra source padding, or with later decoder tokens.
    Masking keys only, each row (padded or not) averages real tokens, so padding never
    leaks anywhere. The output keeps the query's Keras mask, as ``MultiHeadAttention``'s.
    (This overrides a private hook of Keras 3's ``MultiHeadAttention``; the padding and
    causality tests in ``tests/test_transformer.py`` fail if it stops working.)
    """

    def _compute_attention_mask(self, query, value, query_mask=None, **kwargs):
        return super()._compute_attention_mask(query, value, **kwargs)


# Pre-norm blocks (LayerNorm before each sub-layer, the residual path left untouched, one
# final LayerNorm): unlike the original post-norm, they train stably at an ordinary Adam
# learning rate with no warm-up schedule, which a few-minute workshop run needs.


def _residual(x, branch, dropout, name):
    if dropout:
        branch = layers.Dropout(dropout, name=f"{name}_dropout")(branch)
    return layers.Add(name=f"{name}_residual")([x, branch])


def _feed_forward(x, embedding_dim, feed_forward_dim, dropout, name):
    h = layers.LayerNormalization(name=f"{name}_norm")(x)
    h = layers.Dense(feed_forward_dim, activation="relu", name=f"{name}_hidden")(h)
    h = layers.Dense(embedding_dim, name=f"{name}_output")(h)
    return _residual(x, h, dropout, name)


def _attention(x, heads, embedding_dim, name, value=None, value_mask=None, causal=False):
    # MultiHeadAttention wipes the Keras masks off the tensors it is given, in place. So
    # its query is a fresh LayerNorm output used by nothing else, and the source padding
    # mask is passed explicitly: the encoder's outputs feed every decoder block.
    h = layers.LayerNormalization(name=f"{name}_norm")(x)
    attention = KeyMaskedAttention(heads, embedding_dim // heads, name=name)
    return attention(
        h, h if value is None else value, value_mask=value_mask, use_causal_mask=causal
    )


def build_transformer(
    source_length,
    target_length,
    vocab_size,
    target_vocab_size,
    *,
    embedding_dim=128,
    heads=4,
    feed_forward_dim=256,
    layers=1,
    dropout=0.1,
    name="transformer",
):
    """Encoder-decoder transformer over token ids, the comparison for
    ``build_encoder_decoder(..., attention="bahdanau")``.

    Encoder block: self-attention over the source (padding gets no attention), then a
    two-layer ReLU feed-forward network, each with a residual connection. Decoder block:
    causal self-attention, cross-attention over the encoder's outputs (source padding
    gets no attention), then the feed-forward network.

    Training uses teacher forcing, as for the GRU (see
    :func:`common.models.seq2seq.teacher_forcing_inputs`). The output at step ``t``
    depends only on decoder inputs ``0..t`` (the first must be a token, e.g. a start id,
    not padding), so decoding may re-run the model on the prefix so far, padding after
    it, as :func:`common.models.seq2seq.predict_autoregressive` and
    :func:`~common.models.seq2seq.beam_search` do. The output keeps the decoder
    inputs' padding mask, so Keras losses and metrics skip padded steps.

    Args:
        source_length, target_length: timesteps of the encoder and decoder inputs.
        vocab_size, target_vocab_size: source and target vocabularies, id 0 padding.
        embedding_dim: width of every token's vector; a multiple of ``heads``.
        heads: attention heads, each of width ``embedding_dim // heads``.
        feed_forward_dim: hidden width of each block's feed-forward network.
        layers: encoder blocks, and as many decoder blocks.
        dropout: dropout on the embeddings and on each sub-layer's output before its
            residual sum, as in Vaswani et al. (2017).

    Returns:
        An uncompiled ``keras.Model``: inputs ``[encoder_inputs (batch, source_length),
        decoder_inputs (batch, target_length)]`` int ids, output softmax probabilities
        (batch, target_length, target_vocab_size). Reload with
        ``keras.models.load_model`` once this module is imported.
    """
    source_length = _check_positive_int("source_length", source_length)
    target_length = _check_positive_int("target_length", target_length)
    vocab_size = _check_positive_int("vocab_size", vocab_size)
    target_vocab_size = _check_positive_int("target_vocab_size", target_vocab_size)
    embedding_dim = _check_positive_int("embedding_dim", embedding_dim)
    heads = _check_positive_int("heads", heads)
    feed_forward_dim = _check_positive_int("feed_forward_dim", feed_forward_dim)
    depth = _check_positive_int("layers", layers)
    check_fraction("dropout", dropout)
    if embedding_dim % heads:
        raise ValueError(
            "Expected embedding_dim to be a multiple of heads. "
            f"Received: embedding_dim={embedding_dim}, heads={heads}"
        )

    encoder_inputs = keras.Input((source_length,), dtype="int64", name="encoder_inputs")
    decoder_inputs = keras.Input((target_length,), dtype="int64", name="decoder_inputs")
    source_mask = keras.ops.not_equal(encoder_inputs, 0)  # (batch, source_length)

    x = PositionalEmbedding(source_length, vocab_size, embedding_dim, name="encoder_embedding")(
        encoder_inputs
    )
    if dropout:
        x = keras.layers.Dropout(dropout, name="encoder_embedding_dropout")(x)
    for block in range(1, depth + 1):
        prefix = f"encoder_{block}"
        attended = _attention(
            x, heads, embedding_dim, f"{prefix}_self_attention", value_mask=source_mask
        )
        x = _residual(x, attended, dropout, f"{prefix}_self_attention")
        x = _feed_forward(x, embedding_dim, feed_forward_dim, dropout, f"{prefix}_feed_forward")
    encoder_outputs = keras.layers.LayerNormalization(name="encoder_norm")(x)

    y = PositionalEmbedding(
        target_length, target_vocab_size, embedding_dim, name="decoder_embedding"
    )(decoder_inputs)
    if dropout:
        y = keras.layers.Dropout(dropout, name="decoder_embedding_dropout")(y)
    for block in range(1, depth + 1):
        prefix = f"decoder_{block}"
        attended = _attention(y, heads, embedding_dim, f"{prefix}_self_attention", causal=True)
        y = _residual(y, attended, dropout, f"{prefix}_self_attention")
        attended = _attention(
            y,
            heads,
            embedding_dim,
            f"{prefix}_cross_attention",
            value=encoder_outputs,
            value_mask=source_mask,
        )
        y = _residual(y, attended, dropout, f"{prefix}_cross_attention")
        y = _feed_forward(y, embedding_dim, feed_forward_dim, dropout, f"{prefix}_feed_forward")
    y = keras.layers.LayerNormalization(name="decoder_norm")(y)
    outputs = keras.layers.Dense(target_vocab_size, activation="softmax", name="head")(y)
    return keras.Model([encoder_inputs, decoder_inputs], outputs, name=name)
