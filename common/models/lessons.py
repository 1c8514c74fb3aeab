"""Small pieces that more than one teaching notebook uses.

Notebook 01 writes the NumPy recurrence out in full and checks it against
Keras; notebooks 03 and 04 then import :func:`simple_rnn_forward` from here
instead of copying it, so they never drift apart. The rest keeps set-up code
out of the notebooks so that each shows only the idea it teaches:
:func:`gradient_norm_by_distance` and :func:`remember_first_symbol` (notebook 04,
and its exercises), :func:`sigmoid` (notebook 05's hand-written gates).

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
