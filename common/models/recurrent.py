"""Keras RNN builders, one plain function per input/output topology.

Every builder returns a functional ``keras.Model`` made of stock Keras layers,
so ``model.save("m.keras")`` and ``keras.models.load_model("m.keras")`` round-trip
with no custom objects.  Shapes follow Keras: ``(batch, timesteps, features)``.

| topology                     | builder                    | input               | output                         |
|------------------------------|----------------------------|---------------------|--------------------------------|
| one-to-one                   | ``build_one_to_one``       | (batch, features)   | (batch, output_units)          |
| one-to-many (vector-to-seq)  | ``build_one_to_many``      | (batch, features)   | (batch, timesteps, output_units) |
| many-to-one (seq-to-vector)  | ``build_many_to_one``      | (batch, T, features)| (batch, output_units)          |
| many-to-many, aligned        | ``build_many_to_many``     | (batch, T, features)| (batch, T, output_units)       |
| many-to-many, encoder-decoder| ``build_encoder_decoder``  | (batch, T, features) and (batch, horizon, targets) | (batch, horizon, output_units) |

Shared arguments, spelled as Keras spells them:

- ``cell``: ``"rnn"`` (``SimpleRNN``), ``"gru"`` or ``"lstm"``.
- ``units``: an int, or a tuple of ints to stack layers, e.g. ``(64, 32)``.
- ``bidirectional``: wrap each recurrent layer in ``keras.layers.Bidirectional``.
- ``dropout``: dropout on each recurrent layer's inputs (and before the head).
- ``recurrent_dropout``: dropout on the recurrent state.  Off by default
  because any value above 0 disables the fused cuDNN kernel on a GPU (as does
  changing ``activation``/``recurrent_activation``, or ``unroll=True``); the
  defaults here keep GRU and LSTM cuDNN-compatible.
- ``vocab_size``/``embedding_dim``: when given, the input is integer token ids
  of shape ``(batch, timesteps)`` and an ``Embedding(mask_zero=True)`` comes
  first, so padding (id 0) is masked out of the recurrence.
"""

import keras
from keras import layers

CELLS = {"rnn": layers.SimpleRNN, "gru": layers.GRU, "lstm": layers.LSTM}


def check_cell(cell):
    """Return ``cell`` lower-cased, or raise ``ValueError`` if it is unknown."""
    if not isinstance(cell, str) or cell.lower() not in CELLS:
        expected = ", ".join(f'"{name}"' for name in CELLS)
        raise ValueError(f'Expected cell in {{{expected}}}. Received: cell="{cell}"')
    return cell.lower()


def as_units_tuple(units):
    """Accept ``32`` or ``(64, 32)``; return a non-empty tuple of positive ints."""
    units_tuple = (units,) if isinstance(units, int) else tuple(units)
    if not units_tuple or any(not isinstance(u, int) or u <= 0 for u in units_tuple):
        raise ValueError(
            "Expected units to be a positive int or a non-empty tuple of positive "
            f"ints. Received: units={units!r}"
        )
    return units_tuple


def check_fraction(name, value):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"Expected {name} in [0, 1). Received: {name}={value}")


def recurrent_layer(
    cell,
    units,
    *,
    return_sequences=False,
    return_state=False,
    bidirectional=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    name=None,
):
    """One ``SimpleRNN``/``GRU``/``LSTM`` layer, optionally bidirectional.

    >>> layer = recurrent_layer("gru", 8, return_sequences=True)
    >>> tuple(layer(keras.ops.zeros((2, 5, 3))).shape)
    (2, 5, 8)
    """
    layer_class = CELLS[check_cell(cell)]
    layer = layer_class(
        units,
        return_sequences=return_sequences,
        return_state=return_state,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        name=None if bidirectional else name,
    )
    if bidirectional:
        return layers.Bidirectional(layer, name=name)
    return layer


def recurrent_stack(
    inputs,
    cell="lstm",
    units=(32,),
    *,
    return_sequences=False,
    bidirectional=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    name="rnn",
):
    """Apply stacked recurrent layers to ``inputs`` (batch, timesteps, features).

    Every layer but the last returns sequences, so the next layer has a sequence
    to read; the last returns sequences only if ``return_sequences`` is true.

    Returns:
        (batch, units[-1] * directions) or (batch, timesteps, units[-1] * directions),
        where directions is 2 when ``bidirectional`` else 1.
    """
    units = as_units_tuple(units)
    x = inputs
    for depth, layer_units in enumerate(units):
        is_last = depth == len(units) - 1
        x = recurrent_layer(
            cell,
            layer_units,
            return_sequences=return_sequences or not is_last,
            bidirectional=bidirectional,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            name=f"{name}_{depth + 1}",
        )(x)
    return x


def _check_common(cell, units, dropout, recurrent_dropout):
    check_cell(cell)
    as_units_tuple(units)
    check_fraction("dropout", dropout)
    check_fraction("recurrent_dropout", recurrent_dropout)


def _sequence_input(input_shape, vocab_size, embedding_dim, name, embedding_name="embedding"):
    """Model input, plus the sequence tensor (batch, timesteps, features) the RNN reads."""
    if vocab_size is None:
        if len(input_shape) != 2:
            raise ValueError(
                "Expected input_shape=(timesteps, features) for a sequence input. "
                f"Received: input_shape={input_shape!r}"
            )
        inputs = keras.Input(shape=input_shape, name=name)
        return inputs, inputs
    if len(input_shape) != 1:
        raise ValueError(
            "Expected input_shape=(timesteps,) of token ids when vocab_size is set. "
            f"Received: input_shape={input_shape!r}"
        )
    inputs = keras.Input(shape=input_shape, dtype="int64", name=name)
    embedded = layers.Embedding(
        vocab_size, embedding_dim or 64, mask_zero=True, name=embedding_name
    )(inputs)
    return inputs, embedded


def build_one_to_one(
    input_dim,
    output_units,
    *,
    hidden_units=(32,),
    dropout=0.0,
    output_activation=None,
    name="one_to_one",
):
    """A plain dense network: one input vector, one output vector, no recurrence.

    The baseline the recurrent topologies are contrasted with: it sees a window
    as a flat vector, with no notion of order.

    >>> model = build_one_to_one(input_dim=10, output_units=1)
    >>> tuple(model(keras.ops.zeros((4, 10))).shape)
    (4, 1)

    Args:
        input_dim: features per example; input shape is (batch, input_dim).
        output_units: size of the output vector; output shape (batch, output_units).
        hidden_units: sizes of the hidden ReLU layers, e.g. ``(64, 32)``; ``()`` for
            a linear model.
        dropout: dropout after each hidden layer. Defaults to 0.
        output_activation: e.g. ``"sigmoid"`` for a probability. Defaults to linear.
    """
    check_fraction("dropout", dropout)
    inputs = keras.Input(shape=(input_dim,), name="inputs")
    x = inputs
    for depth, units in enumerate(tuple(hidden_units)):
        x = layers.Dense(units, activation="relu", name=f"dense_{depth + 1}")(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(output_units, activation=output_activation, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def build_many_to_one(
    input_shape,
    output_units,
    *,
    cell="lstm",
    units=(32,),
    bidirectional=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    output_activation=None,
    vocab_size=None,
    embedding_dim=None,
    name="many_to_one",
):
    """Sequence in, one vector out: classification or next-value regression.

    The RNN reads the whole sequence; its last hidden state feeds a dense head.

    >>> model = build_many_to_one((30, 1), output_units=1, cell="gru", units=(16, 8))
    >>> tuple(model(keras.ops.zeros((4, 30, 1))).shape)
    (4, 1)

    Args:
        input_shape: ``(timesteps, features)``; ``timesteps`` may be ``None`` for
            variable length. With ``vocab_size``: ``(timesteps,)`` token ids.
        output_units: output shape is (batch, output_units).
        cell, units, bidirectional, dropout, recurrent_dropout, vocab_size,
        embedding_dim: see the module docstring.
        output_activation: ``"sigmoid"``/``"softmax"`` for classification,
            ``None`` (linear) for regression.
    """
    _check_common(cell, units, dropout, recurrent_dropout)
    inputs, sequence = _sequence_input(input_shape, vocab_size, embedding_dim, "inputs")
    summary = recurrent_stack(
        sequence,
        cell,
        units,
        bidirectional=bidirectional,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
    )
    if dropout:
        summary = layers.Dropout(dropout, name="head_dropout")(summary)
    outputs = layers.Dense(output_units, activation=output_activation, name="head")(summary)
    return keras.Model(inputs, outputs, name=name)


def build_many_to_many(
    input_shape,
    output_units,
    *,
    cell="lstm",
    units=(32,),
    bidirectional=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    output_activation=None,
    vocab_size=None,
    embedding_dim=None,
    name="many_to_many",
):
    """Sequence in, one output per input step (aligned many-to-many).

    ``return_sequences=True`` on the last layer and a dense head applied at every
    step: a character language model (logits per step) or a per-step
    reconstruction. With ``bidirectional=True`` each step's output also sees the
    future, which suits tagging but not next-step prediction.

    >>> model = build_many_to_many((None,), 65, vocab_size=65, embedding_dim=16)
    >>> tuple(model(keras.ops.ones((2, 40), dtype="int64")).shape)
    (2, 40, 65)

    Args:
        input_shape: ``(timesteps, features)``, or ``(timesteps,)`` token ids with
            ``vocab_size``. ``timesteps`` may be ``None``.
        output_units: output shape is (batch, timesteps, output_units).
        The rest: see :func:`build_many_to_one`.
    """
    _check_common(cell, units, dropout, recurrent_dropout)
    inputs, sequence = _sequence_input(input_shape, vocab_size, embedding_dim, "inputs")
    states = recurrent_stack(
        sequence,
        cell,
        units,
        return_sequences=True,
        bidirectional=bidirectional,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
    )
    if dropout:
        states = layers.Dropout(dropout, name="head_dropout")(states)
    outputs = layers.Dense(output_units, activation=output_activation, name="head")(states)
    return keras.Model(inputs, outputs, name=name)


def build_one_to_many(
    input_dim,
    timesteps,
    output_units,
    *,
    cell="lstm",
    units=(32,),
    bidirectional=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    output_activation=None,
    name="one_to_many",
):
    """One vector in, a sequence out (vector-to-sequence).

    As the textbooks draw it: the same input vector is fed at every step
    (``RepeatVector``), and the RNN unfolds it into ``timesteps`` outputs, e.g. a
    class label turned into a curve, or an image feature vector into a caption.

    >>> model = build_one_to_many(input_dim=3, timesteps=12, output_units=1)
    >>> tuple(model(keras.ops.zeros((4, 3))).shape)
    (4, 12, 1)

    Args:
        input_dim: input shape is (batch, input_dim).
        timesteps: length of the generated sequence.
        output_units: output shape is (batch, timesteps, output_units).
        The rest: see :func:`build_many_to_one`.
    """
    _check_common(cell, units, dropout, recurrent_dropout)
    if not isinstance(timesteps, int) or timesteps <= 0:
        raise ValueError(
            f"Expected timesteps to be a positive int. Received: timesteps={timesteps!r}"
        )
    inputs = keras.Input(shape=(input_dim,), name="inputs")
    repeated = layers.RepeatVector(timesteps, name="repeat")(inputs)
    states = recurrent_stack(
        repeated,
        cell,
        units,
        return_sequences=True,
        bidirectional=bidirectional,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
    )
    outputs = layers.Dense(output_units, activation=output_activation, name="head")(states)
    return keras.Model(inputs, outputs, name=name)
