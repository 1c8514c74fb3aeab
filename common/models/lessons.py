"""Small pieces that more than one teaching notebook uses.

Notebook 01 writes the NumPy recurrence out in full and checks it against
Keras; notebooks 03 and 04 then import :func:`simple_rnn_forward` from here
instead of copying it, so they never drift apart. The rest keeps set-up code
out of the notebooks so that each shows only the idea it teaches:
:func:`gradient_norm_by_distance` (notebook 04, and its exercises), the long-range
task :func:`remember_first_symbol` with :func:`set_keep_gate_bias` and
:func:`train_remember_first_symbol` (notebook 04 trains SimpleRNN, LSTM and GRU on
it; notebook 05 compares LSTM and GRU on it with the same recipe), :func:`sigmoid`
(notebook 05's hand-written gates), :func:`exact_float32` (before a NumPy-equals-Keras
check on a GPU).

>>> import numpy as np
>>> inputs = np.ones((2, 5, 3))
>>> kernel, recurrent_kernel, bias = np.zeros((3, 4)), np.zeros((4, 4)), np.zeros(4)
>>> simple_rnn_forward(inputs, kernel, recurrent_kernel, bias).shape
(2, 5, 4)
"""

import numpy as np

ACTIVATIONS = {"tanh": np.tanh, "relu": lambda values: np.maximum(values, 0.0)}


def simple_rnn_forward(
    inputs, kernel, recurrent_kernel, bias, initial_state=None, activation="tanh"
):
    """Run ``h(t) = f(x(t) W + h(t-1) U + b)`` over every step; return all states.

    Row-vector convention, as Keras stores the weights: ``W`` is ``kernel``
    (features, units), ``U`` is ``recurrent_kernel`` (units, units), ``b`` is
    ``bias`` (units,).  ``keras.layers.SimpleRNN`` with the same weights and
    ``return_sequences=True`` returns the same numbers.

    Args:
        inputs: (batch, timesteps, features).
        initial_state: (batch, units); zeros by default, as in Keras.
        activation: ``"tanh"`` (the Keras default) or ``"relu"``.

    Returns:
        (batch, timesteps, units): the hidden state after each step.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f'Expected activation in {set(ACTIVATIONS)}. Received: activation="{activation}"'
        )
    inputs = np.asarray(inputs)
    if inputs.ndim != 3:
        raise ValueError(
            f"Expected inputs of shape (batch, timesteps, features). Received: shape {inputs.shape}"
        )
    batch, timesteps, _ = inputs.shape
    units = recurrent_kernel.shape[0]
    state = np.zeros((batch, units), dtype=inputs.dtype) if initial_state is None else initial_state
    states = []
    for step in range(timesteps):
        state = ACTIVATIONS[activation](inputs[:, step] @ kernel + state @ recurrent_kernel + bias)
        states.append(state)
    return np.stack(states, axis=1)


def sigmoid(values):
    """The logistic function 1 / (1 + exp(-x)), the gates' activation."""
    return 1.0 / (1.0 + np.exp(-values))


def gradient_norm_by_distance(layer, inputs):
    """How strongly the last output depends on each earlier input step.

    Returns ``norms[d]`` = mean over the batch of ``|| d sum(h(T)) / d x(T - d) ||``,
    the size of the gradient that reaches the input ``d`` steps before the end.
    ``layer`` is a recurrent layer with ``return_sequences=False``.

    Returns:
        NumPy array of shape (timesteps,); index 0 is the last step.
    """
    import tensorflow as tf

    inputs = tf.convert_to_tensor(np.asarray(inputs, dtype="float32"))
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        last_state = layer(inputs)
        total = tf.reduce_sum(last_state)
    gradient = tape.gradient(total, inputs).numpy()  # (batch, timesteps, features)
    norm_per_step = np.linalg.norm(gradient, axis=-1).mean(axis=0)  # (timesteps,)
    return norm_per_step[::-1]


def remember_first_symbol(num_examples, length, num_symbols=4, seed=0):
    """A task with a long-range dependency: name the symbol shown at step 0.

    Step 0 shows one of ``num_symbols`` symbols (one-hot); every later step is
    noise the network must ignore (a random one-hot in the same channels, so it
    looks just like a symbol). The label is the first symbol, so the gradient
    that teaches it has to travel back ``length - 1`` steps.

    >>> inputs, labels = remember_first_symbol(3, length=10, num_symbols=4)
    >>> inputs.shape, labels.shape, bool((inputs[:, 0].argmax(-1) == labels).all())
    ((3, 10, 5), (3,), True)

    Returns:
        inputs (num_examples, length, num_symbols + 1) float32, the last channel
        flagging step 0, and labels (num_examples,) ints in ``[0, num_symbols)``.
    """
    if length < 2:
        raise ValueError(f"Expected length of at least 2. Received: length={length}")
    generator = np.random.default_rng(seed)
    labels = generator.integers(0, num_symbols, size=num_examples)
    symbols = generator.integers(0, num_symbols, size=(num_examples, length))
    symbols[:, 0] = labels
    inputs = np.zeros((num_examples, length, num_symbols + 1), dtype="float32")
    inputs[np.arange(num_examples)[:, None], np.arange(length), symbols] = 1.0
    inputs[:, 0, num_symbols] = 1.0  # "this is the first step"
    return inputs, labels


def set_keep_gate_bias(layer, value):
    """Start the gate that keeps the state (LSTM forget gate, GRU update gate) at bias ``value``.

    A gate is ``sigmoid(... + bias)``, so a large bias starts it near 1: the state,
    and the gradient along it, pass from step to step almost unchanged. Keras
    starts the LSTM's forget bias at 1 (``unit_forget_bias=True``) and the GRU's
    update bias at 0. ``layer`` must be built; its other biases are left alone,
    except the GRU's recurrent update bias, set to 0 so that ``value`` is the
    whole bias.

    >>> import keras
    >>> layer = keras.layers.GRU(2)
    >>> layer.build((None, 3, 1))
    >>> set_keep_gate_bias(layer, 5.0)
    >>> layer.cell.bias.numpy()[:, :2].tolist()  # row 0 input bias, row 1 recurrent bias
    [[5.0, 5.0], [0.0, 0.0]]
    >>> set_keep_gate_bias(keras.layers.SimpleRNN(2), 5.0)
    Traceback (most recent call last):
    ValueError: Expected an LSTM or GRU layer. Received: SimpleRNN
    """
    import keras

    if not isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
        raise ValueError(f"Expected an LSTM or GRU layer. Received: {type(layer).__name__}")
    if not layer.built:
        raise ValueError(f"Expected a built layer. Received: {layer.name}, not built yet")
    bias = layer.cell.bias.numpy()
    units = layer.cell.units
    if isinstance(layer, keras.layers.LSTM):
        bias[units : 2 * units] = value  # Keras order: input, forget, cell, output
    elif bias.ndim == 2:  # GRU, reset_after=True: row 0 input bias, row 1 recurrent bias
        bias[:, :units] = 0.0  # Keras order: update z, reset r, candidate
        bias[0, :units] = value
    else:  # GRU, reset_after=False: one bias
        bias[:units] = value
    layer.cell.bias.assign(bias)


def train_remember_first_symbol(
    cell,
    length,
    num_examples,
    epochs,
    *,
    units=32,
    keep_gate_bias=None,
    seed=42,
    validation_examples=500,
):
    """Train one recurrent layer on :func:`remember_first_symbol`; the recipe notebooks 04 and 05 share.

    ``common.build_many_to_one`` with one layer of ``units`` and a softmax over the
    four symbols, Adam at 2e-3 with the gradient norm clipped at 1 (without the
    clipping an LSTM's training swings back and forth on this task), batches of
    64. The training set is ``remember_first_symbol(num_examples, length, seed=0)``,
    validation ``remember_first_symbol(validation_examples, length, seed=1)``, the
    same data whatever ``seed`` is; ``seed`` sets the weights and the batch order.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        keep_gate_bias: for LSTM and GRU, the starting bias of the gate that keeps
            the state (:func:`set_keep_gate_bias`); ``None`` keeps Keras's default.

    Returns:
        The trained model and its validation accuracy after each epoch (a list).

    >>> model, accuracy = train_remember_first_symbol(
    ...     "gru", 5, 64, epochs=2, units=4, keep_gate_bias=5.0, validation_examples=32
    ... )
    >>> len(accuracy), model.get_layer("rnn_1").units
    (2, 4)
    >>> train_remember_first_symbol("rnn", 5, 64, epochs=1, keep_gate_bias=5.0)
    Traceback (most recent call last):
    ValueError: Expected cell "lstm" or "gru" with a keep_gate_bias (a SimpleRNN has no gate). Received: cell='rnn', keep_gate_bias=5.0
    """
    import keras

    from common.models.recurrent import build_many_to_one, check_cell
    from common.models.training import set_seed

    cell = check_cell(cell)
    if keep_gate_bias is not None and cell == "rnn":
        raise ValueError(
            f'Expected cell "lstm" or "gru" with a keep_gate_bias (a SimpleRNN has no gate). '
            f"Received: cell={cell!r}, keep_gate_bias={keep_gate_bias}"
        )
    train_inputs, train_labels = remember_first_symbol(num_examples, length, seed=0)
    validation = remember_first_symbol(validation_examples, length, seed=1)
    set_seed(seed)
    model = build_many_to_one(
        (length, train_inputs.shape[-1]),
        4,
        cell=cell,
        units=(units,),
        output_activation="softmax",
    )
    if keep_gate_bias is not None:
        set_keep_gate_bias(model.get_layer("rnn_1"), keep_gate_bias)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        train_inputs,
        train_labels,
        validation_data=validation,
        epochs=epochs,
        batch_size=64,
        verbose=0,
    )
    return model, history.history["val_accuracy"]


def exact_float32():
    """Make float32 matrix products exact on GPUs with TensorFloat-32 (TF32); return if it was on.

    On Ampere and later NVIDIA GPUs (Colab's A100 and L4), TensorFlow multiplies
    float32 matrices in TF32 by default: inputs rounded to 10 bits of mantissa,
    about 1e-3 relative error. A notebook check that NumPy equals Keras to
    ``atol=1e-5`` would then fail though both are right, so notebooks 01, 05 and
    07 call this before their checks. Training speed is all it costs; on a CPU it
    changes nothing.
    """
    import tensorflow as tf

    was_on = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return was_on
