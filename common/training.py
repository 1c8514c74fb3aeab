"""Seeding, the shared ``fit`` call, and the quantile (pinball) loss."""

import itertools
import time

import keras
import numpy as np


def progress_verbosity():
    """Keras' ``verbose`` for training progress: a live bar in a terminal, one line per epoch in a log."""
    import sys

    return 1 if sys.stdout.isatty() else 2


def set_seed(seed, deterministic=False):
    """Seed Python, NumPy and the backend so a run can be repeated.

    Args:
        seed: any int.
        deterministic: also make TensorFlow pick deterministic kernels. Slower,
            and only needed when two runs must agree to the last bit.
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


class TimeBudget(keras.callbacks.Callback):
    """Stop training after ``seconds`` of wall-clock time (checked after each batch)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.started > self.seconds:
            self.model.stop_training = True


def fit(
    model,
    train,
    validation,
    *,
    epochs=20,
    batch_size=64,
    patience=3,
    monitor="val_loss",
    max_seconds=None,
    steps_per_epoch=None,
    callbacks=(),
    verbose=0,
):
    """``model.fit`` with early stopping that restores the best weights.

    Training stops once ``monitor`` has not improved for ``patience`` epochs,
    and the model keeps the weights of its best epoch, not its last.

    Args:
        model: a compiled ``keras.Model``.
        train / validation: an ``(inputs, targets)`` tuple, or a ``tf.data.Dataset``
            that already yields batches (``batch_size`` is then ignored).
        epochs: upper bound on passes over ``train``.
        max_seconds: optional wall-clock budget; training stops after the batch
            that exceeds it (the best weights are still restored).
        steps_per_epoch: batches per epoch, for a ``train`` dataset that repeats
            forever (e.g. random slices of a long text). Defaults to one pass.
        verbose: 0 silent, 2 one line per epoch.

    Returns:
        The ``History`` object; ``history.history`` has per-epoch metrics.
    """
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor=monitor, patience=patience, restore_best_weights=True
        ),
        keras.callbacks.TerminateOnNaN(),  # a diverged run stops at once; see diverged()
        *callbacks,
    ]
    if max_seconds is not None:
        callbacks.append(TimeBudget(max_seconds))
    fit_kwargs = dict(
        epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose
    )
    if isinstance(train, tuple):
        inputs, targets = train
        return model.fit(
            inputs, targets, validation_data=validation, batch_size=batch_size, **fit_kwargs
        )
    # A dataset shuffles itself (or must not be shuffled, like time-ordered windows).
    return model.fit(train, validation_data=validation, shuffle=False, **fit_kwargs)


def diverged(history):
    """The first epoch (1-based) whose training or validation loss is not finite, else None.

    A learning rate far too large sends the weights to infinity and the loss to
    NaN; :func:`fit` stops such a run, and this says whether it happened.

    >>> diverged({"loss": [0.9, 0.5], "val_loss": [1.0, float("nan")]})
    2
    >>> diverged({"loss": [0.9, 0.5]}) is None
    True
    """
    history = getattr(history, "history", history)
    losses = [history.get(name, []) for name in ("loss", "val_loss")]
    for epoch, values in enumerate(itertools.zip_longest(*losses, fillvalue=0.0), start=1):
        if not np.isfinite(values).all():
            return epoch
    return None


@keras.saving.register_keras_serializable(package="common")
class QuantileLoss(keras.losses.Loss):
    """Pinball loss averaged over several quantiles.

    For quantile ``q``, error ``e = y - prediction``, the loss is ``max(q e, (q - 1) e)``:
    under-predicting costs ``q`` per unit and over-predicting ``1 - q``, so the
    minimiser is the ``q``-th quantile of ``y``.  The model's last axis holds one
    output per quantile; ``y_true``'s last axis has size 1 and is broadcast.

    Registered with Keras, so a model compiled with it reloads with plain
    ``keras.models.load_model`` once ``common`` is imported.
    """

    def __init__(self, quantiles=(0.1, 0.5, 0.9), name="quantile_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.quantiles = tuple(float(q) for q in quantiles)

    def call(self, y_true, y_pred):
        quantiles = keras.ops.convert_to_tensor(np.array(self.quantiles, dtype="float32"))
        error = keras.ops.cast(y_true, y_pred.dtype) - y_pred
        loss = keras.ops.maximum(quantiles * error, (quantiles - 1.0) * error)
        return keras.ops.mean(loss, axis=-1)

    def get_config(self):
        return {**super().get_config(), "quantiles": list(self.quantiles)}
