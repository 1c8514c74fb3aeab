"""Encoder-decoder (unaligned many-to-many) with optional attention.

Training uses *teacher forcing*: the decoder reads the true previous target at
each step (the targets shifted right by one, a start value first), so every
step learns from correct history.  At inference the true targets are unknown,
so :func:`predict_autoregressive` feeds each prediction back as the next
decoder input, one step at a time.

Both paths use the same saved model: a plain functional ``keras.Model`` with two
inputs, ``[encoder_inputs, decoder_inputs]``, and stock layers only.
"""

import numpy as np
import keras
from keras import layers

from common.models.recurrent import (
    CELLS,
    _sequence_input,
    as_units_tuple,
    check_cell,
    check_fraction,
)

ATTENTION = {"dot": layers.Attention, "additive": layers.AdditiveAttention}
CELL_CLASSES = {"rnn": layers.SimpleRNNCell, "lstm": layers.LSTMCell, "gru": layers.GRUCell}


@keras.saving.register_keras_serializable(package="common")
class BahdanauAttention(layers.Layer):
    """Additive attention as Bahdanau et al. (2015) wrote it, from ``Dense`` layers.

    ``score(s, h_j) = v . tanh(s W_q + h_j W_k + b)``: the query ``s`` (the
    decoder's previous state) and each key ``h_j`` (an encoder output) get
    their own projection to ``units`` numbers; ``v`` turns the sum into one
    score. A softmax over ``j`` gives the weights, and the context is the
    weighted sum of the encoder outputs.

    Call: ``attention(query, values, mask=None, keys=None)`` with query (batch,
    query_dim), values (batch, timesteps, value_dim) and mask (batch, timesteps)
    booleans (False: padding, weight 0); ``keys`` is ``key_projection(values)``
    when the caller has it already (batch, timesteps, units). Returns
    ``(context, weights)``: (batch,
    value_dim) and (batch, timesteps).
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.query_projection = layers.Dense(units, use_bias=False, name="query_projection")
        self.key_projection = layers.Dense(units, name="key_projection")
        self.score = layers.Dense(1, use_bias=False, name="score")

    def build(self, query_shape, values_shape):
        self.query_projection.build(query_shape)
        self.key_projection.build(values_shape)
        self.score.build(tuple(values_shape[:-1]) + (self.units,))

    def call(self, query, values, mask=None, keys=None):
        # keys: key_projection(values), passed in by a decoder that attends to the same values
        # at every step, so the projection is computed once per sentence, not once per step.
        keys = self.key_projection(values) if keys is None else keys
        scores = self.score(keras.ops.tanh(self.query_projection(query)[:, None, :] + keys))[
            ..., 0
        ]  # (batch, timesteps)
        if mask is not None:  # padding gets exp(-1e9) = 0 after the softmax
            scores = keras.ops.where(mask, scores, -1e9)
        weights = keras.ops.softmax(scores, axis=-1)
        return keras.ops.sum(weights[..., None] * values, axis=1), weights

    def compute_mask(self, query, previous_mask=None):
        return None  # the padding mask is used up here: a context vector has no time steps

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="common")
class BahdanauDecoder(layers.Layer):
    """A recurrent decoder that attends *before* each step, with its previous state.

    At output step ``t``: ``context(t)`` = :class:`BahdanauAttention` of the
    previous state ``s(t-1)`` over the encoder outputs; the cell reads
    ``[y(t-1); context(t)]`` and gives ``s(t)``; the step's output is
    ``[s(t); context(t)]``. So the context shapes the state itself, not only
    the head, as in Bahdanau et al. (2015). The loop runs over a fixed number
    of steps in Python (unrolled): decoders here are short.

    Call: ``decoder([decoder_sequence, encoder_outputs], initial_state)`` with
    decoder_sequence (batch, horizon, features), encoder_outputs (batch,
    timesteps, encoder_units) and the encoder's final states. Returns
    ``(outputs, weights)``: (batch, horizon, units + encoder_units) and
    (batch, horizon, timesteps). Padding in the encoder (its Keras mask) gets
    no attention.
    """

    def __init__(
        self,
        units,
        cell="gru",
        attention_units=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units, self.cell_name = units, check_cell(cell)
        self.attention_units = attention_units or units
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        self.cell = CELL_CLASSES[self.cell_name](
            units, dropout=dropout, recurrent_dropout=recurrent_dropout, name="cell"
        )
        self.attention = BahdanauAttention(self.attention_units, name="bahdanau_attention")

    def build(self, inputs_shape, initial_state_shape):
        decoder_shape, encoder_shape = inputs_shape
        self.attention.build((decoder_shape[0], self.units), encoder_shape)
        self.cell.build((decoder_shape[0], decoder_shape[-1] + encoder_shape[-1]))

    def call(self, inputs, initial_state, inputs_mask=None, training=False):
        # Keras fills inputs_mask with the inputs' own masks: [decoder's, encoder's].
        decoder_sequence, encoder_outputs = inputs
        encoder_mask = None if inputs_mask is None else inputs_mask[1]
        # keras.layers.RNN clears a cell's cached dropout masks on every call; so must we,
        # or one batch's mask (from another traced graph) is reused for the next.
        self.cell.reset_dropout_mask()
        self.cell.reset_recurrent_dropout_mask()
        states = (
            list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        )
        outputs, weights = [], []
        keys = self.attention.key_projection(encoder_outputs)  # the same at every step
        for step in range(decoder_sequence.shape[1]):
            output, states, step_weights = self.step(
                decoder_sequence[:, step], states, encoder_outputs, encoder_mask, keys, training
            )
            outputs.append(output)
            weights.append(step_weights)
        return keras.ops.stack(outputs, axis=1), keras.ops.stack(weights, axis=1)

    def step(self, previous, states, encoder_outputs, encoder_mask=None, keys=None, training=False):
        """One output step: attend with the previous state, then update it.

        ``previous`` (batch, features) is this step's decoder input; ``states`` the
        cell's states (a list). Returns ``(output, states, weights)``: output
        ``[s(t); context(t)]`` (batch, units + encoder_units), the new states, and
        the attention weights (batch, timesteps). A step-by-step decoder (beam
        search) calls this, so it computes exactly what :meth:`call` does.
        """
        context, weights = self.attention(states[0], encoder_outputs, mask=encoder_mask, keys=keys)
        step_input = keras.ops.concatenate([previous, context], axis=-1)
        output, states = self.cell(step_input, states, training=training)
        return keras.ops.concatenate([output, context], axis=-1), states, weights

    def compute_mask(self, inputs, previous_mask=None):
        # The outputs keep the decoder's own padding mask (as a plain RNN decoder's would);
        # the attention weights carry none.
        decoder_mask = None if previous_mask is None else previous_mask[0]
        return [decoder_mask, None]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "cell": self.cell_name,
            "attention_units": self.attention_units,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
        }


def _run_encoder(sequence, cell, units, bidirectional, dropout, recurrent_dropout):
    """Stacked encoder; returns (per-step outputs, final states of each layer)."""
    layer_class = CELLS[cell]
    states_per_layer = []
    x = sequence
    for depth, layer_units in enumerate(units):
        rnn = layer_class(
            layer_units,
            return_sequences=True,
            return_state=True,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            name=None if bidirectional else f"encoder_{depth + 1}",
        )
        if bidirectional:
            rnn = layers.Bidirectional(rnn, name=f"encoder_{depth + 1}")
        x, *states = rnn(x)
        if bidirectional:
            # [forward h, (forward c), backward h, (backward c)] -> [h, (c)] of width 2 * units,
            # so a decoder of twice the width can start from both directions at once.
            half = len(states) // 2
            states = [
                layers.Concatenate(name=f"encoder_{depth + 1}_state_{i}")(
                    [states[i], states[half + i]]
                )
                for i in range(half)
            ]
        states_per_layer.append(states)
    return x, states_per_layer


def build_encoder_decoder(
    input_shape,
    decoder_input_shape,
    output_units,
    *,
    cell="lstm",
    units=(32,),
    bidirectional=False,
    dropout=0.0,
    recurrent_dropout=0.0,
    attention=None,
    output_activation=None,
    vocab_size=None,
    target_vocab_size=None,
    embedding_dim=None,
    name="encoder_decoder",
):
    """Encoder summarises the input sequence; decoder emits ``horizon`` steps.

    Decoder layer ``i`` starts from encoder layer ``i``'s final state.  With
    ``attention`` the decoder also looks back at every encoder step: at each
    output step a softmax over encoder steps weighs their outputs into a
    context vector, concatenated with the decoder output before the head.

    >>> model = build_encoder_decoder((30, 1), (5, 1), output_units=1, attention="dot")
    >>> encoder_in, decoder_in = keras.ops.zeros((4, 30, 1)), keras.ops.zeros((4, 5, 1))
    >>> tuple(model([encoder_in, decoder_in]).shape)
    (4, 5, 1)

    Args:
        input_shape: encoder input ``(timesteps, features)``, or ``(timesteps,)``
            token ids with ``vocab_size``.
        decoder_input_shape: ``(horizon, target_features)``: the previous targets
            fed to the decoder (see :func:`teacher_forcing_inputs`), or
            ``(horizon,)`` token ids with ``target_vocab_size``.
        output_units: output shape is (batch, horizon, output_units).
        cell, units, dropout, recurrent_dropout: as in :func:`build_many_to_one`;
            the decoder has the same depth and widths as the encoder.
        bidirectional: bidirectional *encoder*; the decoder stays forward-only
            (it cannot see outputs it has not produced) and is twice as wide.
        attention: ``None``, ``"dot"`` (Luong's dot score, ``keras.layers.Attention``)
            or ``"additive"`` (``keras.layers.AdditiveAttention``: score
            ``sum(scale * tanh(query + key))`` with one learned ``scale`` vector and
            no query or key projections; not Bahdanau's attention, which projects
            both and scores with the previous decoder state). Either way the
            decoder's outputs query the encoder's, and the head reads
            ``[decoder output; context]``. ``"bahdanau"``: Bahdanau et al.'s
            attention inside the recurrence (:class:`BahdanauDecoder`), one
            recurrent layer and a fixed horizon.
        vocab_size / target_vocab_size: embed token-id inputs of the encoder /
            decoder (``mask_zero=True``, so id 0 is padding).
    """
    cell = check_cell(cell)
    units = as_units_tuple(units)
    check_fraction("dropout", dropout)
    check_fraction("recurrent_dropout", recurrent_dropout)
    if attention is not None and attention not in (*ATTENTION, "bahdanau"):
        raise ValueError(
            'Expected attention in {None, "dot", "additive", "bahdanau"}. '
            f'Received: attention="{attention}"'
        )
    if attention == "bahdanau" and (len(units) != 1 or decoder_input_shape[0] is None):
        raise ValueError(
            "Expected one recurrent layer and a fixed horizon for Bahdanau attention. "
            f"Received: units={units}, decoder_input_shape={decoder_input_shape}"
        )

    encoder_inputs, encoder_sequence = _sequence_input(
        input_shape, vocab_size, embedding_dim, "encoder_inputs"
    )
    decoder_inputs, decoder_sequence = _sequence_input(
        decoder_input_shape,
        target_vocab_size,
        embedding_dim,
        "decoder_inputs",
        embedding_name="decoder_embedding",
    )

    encoder_outputs, encoder_states = _run_encoder(
        encoder_sequence, cell, units, bidirectional, dropout, recurrent_dropout
    )
    directions = 2 if bidirectional else 1
    if attention == "bahdanau":  # attention inside the recurrence: its own decoder layer
        x, _ = BahdanauDecoder(
            units[0] * directions,
            cell=cell,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            name="attention",
        )([decoder_sequence, encoder_outputs], encoder_states[0])
        outputs = layers.Dense(output_units, activation=output_activation, name="head")(x)
        return keras.Model([encoder_inputs, decoder_inputs], outputs, name=name)
    x = decoder_sequence
    for depth, layer_units in enumerate(units):
        x = CELLS[cell](
            layer_units * directions,
            return_sequences=True,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            name=f"decoder_{depth + 1}",
        )(x, initial_state=encoder_states[depth])
    if attention is not None:
        # Scores are returned too, though unused here, so that attention_scores()
        # can read them off a saved model without rebuilding anything.
        context, _ = ATTENTION[attention](name="attention")(
            [x, encoder_outputs], return_attention_scores=True
        )
        x = layers.Concatenate(name="decoder_with_context")([x, context])
    outputs = layers.Dense(output_units, activation=output_activation, name="head")(x)
    return keras.Model([encoder_inputs, decoder_inputs], outputs, name=name)


def teacher_forcing_inputs(targets, start_value=0.0):
    """Decoder inputs for training: ``targets`` shifted right, ``start_value`` first.

    >>> teacher_forcing_inputs(np.array([[[1.0], [2.0], [3.0]]]), start_value=0.5)[0, :, 0]
    array([0.5, 1. , 2. ])

    Args:
        targets: (batch, horizon, target_features) or (batch, horizon) token ids.
        start_value: what the decoder reads at step 0, a scalar (e.g. the last
            observed value, or a start-token id) or an array of shape (batch, ...).
    """
    targets = np.asarray(targets)
    decoder_inputs = np.empty_like(targets)
    decoder_inputs[:, 0] = start_value
    decoder_inputs[:, 1:] = targets[:, :-1]
    return decoder_inputs


def predict_autoregressive(model, encoder_inputs, start_value, horizon=None, feedback=None):
    """Step-by-step inference: feed each predicted step back as the next input.

    Step ``t`` of the decoder depends only on decoder inputs ``0..t`` (the
    decoder RNN runs forward and attention looks only at the encoder), so after
    ``t`` feedback rounds the model's step-``t`` output is exactly what a
    one-step-at-a-time decoder would produce.  Each round re-runs the model
    over the whole horizon: simple and exact, and cheap for short horizons.

    Args:
        model: from :func:`build_encoder_decoder`, possibly reloaded from ``.keras``.
        encoder_inputs: (batch, timesteps, features) or token ids.
        start_value: first decoder input, as in :func:`teacher_forcing_inputs`.
        horizon: output steps; defaults to the model's decoder length.
        feedback: maps one step's output, (batch, output_units), to the next decoder
            input, (batch, target_features) or (batch,) ids. Defaults to the output
            itself; use ``lambda out: out.argmax(-1)`` for tokens, or pick the median
            column for quantile outputs.

    Returns:
        NumPy array of shape (batch, horizon, output_units).
    """
    encoder_inputs = np.asarray(encoder_inputs)
    decoder_spec = model.inputs[1]
    horizon = horizon or decoder_spec.shape[1]
    if horizon is None:
        raise ValueError("Expected horizon for a model whose decoder length is None.")
    batch = encoder_inputs.shape[0]
    decoder_inputs = np.zeros(
        (batch, horizon) + tuple(decoder_spec.shape[2:]), dtype=decoder_spec.dtype
    )
    decoder_inputs[:, 0] = start_value
    feedback = feedback or (lambda step_output: step_output)
    for step in range(horizon):
        outputs = keras.ops.convert_to_numpy(
            model([encoder_inputs, decoder_inputs], training=False)
        )
        if step + 1 < horizon:
            decoder_inputs[:, step + 1] = feedback(outputs[:, step])
    return outputs


def beam_search(model, encoder_inputs, start_id, beam_width=3, horizon=None):
    """Token decoding that keeps the ``beam_width`` most likely prefixes at every step.

    Greedy decoding (:func:`predict_autoregressive` with ``argmax``) commits to
    the likeliest token at each step; a token that looks second best now can
    start the likelier sequence. Beam search extends each of the ``beam_width``
    best prefixes by every token, keeps the ``beam_width`` best of those by
    total log-probability, and returns the best complete sequence. With
    ``beam_width=1`` it is greedy decoding. Like :func:`predict_autoregressive`,
    each step re-runs the model over the whole horizon, for every beam at once.

    >>> def model(inputs, training=False):  # P(step 0) = (.6, .4); step 1 depends on it
    ...     first = np.tile([0.6, 0.4], (len(inputs[1]), 1))
    ...     second = np.where(inputs[1][:, 1:2] == 0, [0.5, 0.5], [0.9, 0.1])
    ...     return np.stack([first, second], axis=1)
    >>> tokens, log_probability = beam_search(model, np.zeros((1, 1)), 7, 1, horizon=2)
    >>> tokens.tolist(), round(float(np.exp(log_probability[0])), 2)  # greedy: .6 x .5
    ([[0, 0]], 0.3)
    >>> tokens, log_probability = beam_search(model, np.zeros((1, 1)), 7, 2, horizon=2)
    >>> tokens.tolist(), round(float(np.exp(log_probability[0])), 2)  # beam: .4 x .9
    ([[1, 0]], 0.36)

    Args:
        model: from :func:`build_encoder_decoder` with token-id decoder inputs and a
            softmax output (batch, horizon, target_vocab_size).
        encoder_inputs: (batch, timesteps) token ids, or (batch, timesteps, features).
        start_id: the id the decoder reads first, as in :func:`teacher_forcing_inputs`.
        beam_width: prefixes kept per example; 1 is greedy.
        horizon: output steps; defaults to the model's decoder length.

    Returns:
        ``(tokens, log_probability)``: (batch, horizon) ids of the best sequence
        found, and (batch,) its total log-probability.
    """
    if not (isinstance(beam_width, int) and beam_width >= 1):
        raise ValueError(f"Expected beam_width to be a positive int. Received: {beam_width!r}")
    encoder_inputs = np.asarray(encoder_inputs)
    horizon = horizon or model.inputs[1].shape[1]
    if horizon is None:
        raise ValueError("Expected horizon for a model whose decoder length is None.")
    batch = len(encoder_inputs)
    tokens = np.zeros((batch, 1, horizon), dtype="int64")  # one empty prefix per example
    totals = np.zeros((batch, 1))
    for step in range(horizon):
        beams = tokens.shape[1]
        decoder_inputs = np.zeros((batch * beams, horizon), dtype="int64")
        decoder_inputs[:, 0] = start_id
        decoder_inputs[:, 1 : step + 1] = tokens.reshape(batch * beams, horizon)[:, :step]
        probabilities = keras.ops.convert_to_numpy(
            model([np.repeat(encoder_inputs, beams, axis=0), decoder_inputs], training=False)
        )[:, step]
        vocab = probabilities.shape[-1]
        log_probabilities = np.log(np.maximum(probabilities, 1e-30)).reshape(batch, beams, vocab)
        candidates = (totals[..., None] + log_probabilities).reshape(batch, beams * vocab)
        # Stable sort: among equal scores the lower index wins, as argmax does (width 1 = greedy).
        best = np.argsort(-candidates, axis=1, kind="stable")[:, :beam_width]
        tokens = np.take_along_axis(tokens, (best // vocab)[..., None], axis=1)
        tokens[:, :, step] = best % vocab
        totals = np.take_along_axis(candidates, best, axis=1)
    return tokens[:, 0], totals[:, 0]


def attention_scores(model, encoder_inputs, decoder_inputs):
    """Attention weights of a model built with ``attention=...``.

    Returns:
        (batch, horizon, encoder_timesteps): row ``t`` says how much output step
        ``t`` drew on each input step; each row sums to 1.
    """
    try:
        layer = model.get_layer("attention")
    except ValueError:
        raise ValueError(
            "Expected a model built with attention='dot', 'additive' or 'bahdanau'."
        ) from None
    scores_model = keras.Model(model.inputs, layer.output[1])
    return keras.ops.convert_to_numpy(
        scores_model([np.asarray(encoder_inputs), np.asarray(decoder_inputs)])
    )
