"""Seeding, the shared ``fit`` call (on one device or many), and the quantile (pinball) loss."""

import itertools
import json
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from common.scale.distribute import PEER_FAILURES, WorkerLost, gather, shard_by_data


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


class CosineDecayInTime(keras.callbacks.Callback):
    """Lower the learning rate along half a cosine over ``seconds`` of wall-clock time.

    The rate starts at ``initial_learning_rate`` and ends at ``final_fraction``
    of it: ``lr(t) = lr_0 * (f + (1 - f) * (1 + cos(pi * t / seconds)) / 2)``.
    Large steps early cover ground; small steps late settle into a minimum
    that large steps keep jumping across. Keras' own ``CosineDecay`` counts
    steps, but a run with a time budget does not know how many steps it will
    get, so this one reads the clock before each batch. The clock starts when
    training does: a multi-worker run resumed from a checkpoint starts the
    cosine again.

    >>> [round(cosine_factor(t, 0.1), 3) for t in (0.0, 0.5, 1.0, 2.0)]
    [1.0, 0.55, 0.1, 0.1]
    """

    def __init__(self, seconds, initial_learning_rate, final_fraction=0.1):
        super().__init__()
        if not seconds > 0 or not initial_learning_rate > 0 or not 0 <= final_fraction <= 1:
            raise ValueError(
                "Expected seconds > 0, initial_learning_rate > 0 and final_fraction in [0, 1]. "
                f"Received: seconds={seconds}, initial_learning_rate={initial_learning_rate}, "
                f"final_fraction={final_fraction}"
            )
        self.seconds, self.initial = seconds, initial_learning_rate
        self.final_fraction = final_fraction

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        progress = (time.perf_counter() - self.started) / self.seconds
        factor = cosine_factor(progress, self.final_fraction)
        self.model.optimizer.learning_rate.assign(self.initial * factor)


def cosine_factor(progress, final_fraction):
    """The share of the first learning rate at ``progress`` (0 to 1) along a cosine; flat after 1."""
    progress = min(max(progress, 0.0), 1.0)
    return final_fraction + (1 - final_fraction) * (1 + math.cos(math.pi * progress)) / 2


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
    distribution=None,
    name="model",
):
    """``model.fit`` with early stopping that restores the best weights.

    Training stops once ``monitor`` has not improved for ``patience`` epochs,
    and the model keeps the weights of its best epoch, not its last.

    Args:
        model: a compiled ``keras.Model`` (built inside ``distribution.scope()``
            when there is a distribution).
        train / validation: an ``(inputs, targets)`` tuple, or a ``tf.data.Dataset``
            that already yields batches (``batch_size`` is then ignored).
        epochs: upper bound on passes over ``train``.
        batch_size: the *global* batch: examples per gradient step on all replicas.
        max_seconds: optional wall-clock budget; training stops after the batch
            that exceeds it (the best weights are still restored).
        steps_per_epoch: batches per epoch, for a ``train`` dataset that repeats
            forever (e.g. random slices of a long text). Defaults to one pass.
        verbose: 0 silent, 1 a progress bar, 2 one line per epoch.
        distribution: a :class:`common.scale.distribute.Distribution`, or None for one
            device; with several replicas :func:`fit_distributed` trains (and,
            multi-worker, checkpoints in ``distribution.backup_for(name)``).
        name: the model's name among those a run trains (e.g. one per seed).

    Returns:
        The ``History`` object; ``history.history`` has per-epoch metrics.
    """
    if distribution is not None and distribution.custom_loop:
        if monitor != "val_loss":
            raise ValueError(
                f"Expected monitor='val_loss' with a distribution (the distributed loop tracks "
                f"the loss only). Received: {monitor!r}"
            )
        return fit_distributed(
            model,
            train,
            validation,
            strategy=distribution.strategy,
            epochs=epochs,
            batch_size=batch_size,
            patience=patience,
            max_seconds=max_seconds,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
            backup=distribution.backup_for(name),
            fingerprint=distribution.fingerprint,
        )
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


# ---------------------------------------------------------------- a training loop for any strategy


def fit_distributed(
    model,
    train,
    validation,
    *,
    strategy=None,
    epochs=20,
    batch_size=64,
    patience=3,
    max_seconds=None,
    steps_per_epoch=None,
    callbacks=(),
    verbose=0,
    backup=None,
    fingerprint="",
    seed=None,
):
    """What :func:`fit` does, written out as a training loop that runs under any ``tf.distribute`` strategy.

    Keras 3.15's ``fit`` fails under ``MultiWorkerMirroredStrategy``, and under
    ``MirroredStrategy`` on any batch that does not split evenly over the
    replicas, such as an epoch's last (TensorFlow 2.21: "AddN ... must have the
    same size and shape"). So this is the loop TensorFlow's custom-training
    guides describe: each replica runs
    the forward and backward pass on its slice of the global batch inside
    ``strategy.run``; the optimizer sums the replicas' gradients (all-reduce)
    and every replica takes the same step. Early stopping with the best
    weights, ``TerminateOnNaN`` and the time budget are done by hand; the
    other ``callbacks`` (e.g. ``ReduceLROnPlateau``) are called as ``fit`` would.

    The loss of a step is the mean over the whole global batch, however its
    examples fall on the replicas (a last, smaller batch included), so on one
    device the losses match ``fit``'s.

    Args:
        strategy: a ``tf.distribute.Strategy``; None for the current one (one device).
        backup: this worker's folder for a checkpoint after every epoch (model,
            optimizer, best weights, history), with ``tf.train.CheckpointManager``.
            Started again with the same folder, training resumes after the last
            epoch every worker saved, or returns at once if it had finished.
            Each worker keeps its own copy, so no shared file system is needed;
            the caller deletes it once the run is saved.
        fingerprint: a string naming the run's settings; a backup made with
            other settings is refused rather than resumed.
        seed: shuffles an ``(inputs, targets)`` tuple each epoch (default: drawn
            from NumPy's generator, so :func:`set_seed` decides it).

    Other arguments are :func:`fit`'s.

    Returns:
        A ``keras.callbacks.History`` with ``loss`` and ``val_loss`` per epoch.
    """
    try:
        return _fit_distributed(
            model,
            train,
            validation,
            strategy=strategy,
            epochs=epochs,
            batch_size=batch_size,
            patience=patience,
            max_seconds=max_seconds,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
            backup=backup,
            fingerprint=fingerprint,
            seed=seed,
        )
    except PEER_FAILURES as error:
        where = f"the last epoch saved in {backup}" if backup else "the start"
        lines = str(error).splitlines()
        said = [line for line in lines if "heartbeat" in line or "unhealthy" in line]
        reason = (
            f"{type(error).__name__}: {said[0].strip()[:160]}" if said else type(error).__name__
        )
        raise WorkerLost(
            f"lost contact with another worker ({reason}); start every worker again with the "
            f"same command to resume from {where}"
        ) from None


def _fit_distributed(
    model,
    train,
    validation,
    *,
    strategy,
    epochs,
    batch_size,
    patience,
    max_seconds,
    steps_per_epoch,
    callbacks,
    verbose,
    backup,
    fingerprint,
    seed,
):
    strategy = strategy or tf.distribute.get_strategy()
    optimizer = model.optimizer
    if seed is None:  # from NumPy's generator, which set_seed seeds alike on every worker
        seed = int(np.random.randint(2**31 - 1))
    train_data = _batched(train, batch_size, shuffle=True, seed=seed)
    # Variables must exist before the first step is traced: the optimizer's slots, and the
    # loss trackers Keras makes on the first loss it computes (one per output).
    with strategy.scope():
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        inputs, targets = next(iter(train_data.take(1)))
        model.compute_loss(x=inputs, y=targets, y_pred=model(inputs), training=False)
    distributed_train = strategy.experimental_distribute_dataset(shard_by_data(train_data))
    distributed_validation = strategy.experimental_distribute_dataset(
        shard_by_data(_batched(validation, batch_size, shuffle=False))
    )
    replicas = strategy.num_replicas_in_sync

    def batch_share(targets):
        """This replica's examples over the step's examples on every replica."""
        count = tf.cast(tf.shape(tf.nest.flatten(targets)[0])[0], "float32")
        total = tf.distribute.get_replica_context().all_reduce("SUM", count)
        return count, tf.math.divide_no_nan(count, total)

    inner = getattr(optimizer, "inner_optimizer", optimizer)  # inside a LossScaleOptimizer

    def clip(gradients):
        """The optimizer's own clipping (Keras' clipnorm, global_clipnorm or clipvalue)."""
        if inner.clipnorm:
            return [tf.clip_by_norm(g, inner.clipnorm) for g in gradients]
        if inner.global_clipnorm:
            return tf.clip_by_global_norm(gradients, inner.global_clipnorm)[0]
        if inner.clipvalue:
            return [tf.clip_by_value(g, -inner.clipvalue, inner.clipvalue) for g in gradients]
        return gradients

    def mean_loss(inputs, targets, predictions):
        # Keras divides a loss by the replicas when a strategy is in force; undo it to get this
        # replica's mean over its own examples.
        return model.compute_loss(x=inputs, y=targets, y_pred=predictions, training=True) * replicas

    def train_replica(inputs, targets, out_of_time):
        count, share = batch_share(targets)
        with tf.GradientTape() as tape:
            predictions = model(inputs, training=True)
            loss = mean_loss(inputs, targets, predictions) * share  # summed over replicas: the mean
            scaled = optimizer.scale_loss(loss)  # mixed precision multiplies it; otherwise as is
        weights = model.trainable_variables
        gradients = [
            tf.zeros_like(w) if g is None else g
            for g, w in zip(tape.gradient(scaled, weights), weights)
        ]
        # Keras' optimizer clips each replica's share *before* it sums the shares, so a clipped
        # step would grow with the replicas. Sum first, clip the sum (without the loss scale),
        # and hand the optimizer 1/replicas of it: its own clipping then has nothing to do, and
        # its sum over the replicas gives back the clipped whole.
        summed = tf.distribute.get_replica_context().all_reduce("SUM", gradients)
        loss_scale = optimizer.scale_loss(tf.constant(1.0))
        clipped = [_times(g, loss_scale) for g in clip([_times(g, 1 / loss_scale) for g in summed])]
        optimizer.apply_gradients(zip([_times(g, 1 / replicas) for g in clipped], weights))
        # Every worker must stop after the same step, so one worker out of time stops them all.
        # (tf.identity: all-reducing an argument as it came in fails with "destinations can not be empty")
        stop = tf.distribute.get_replica_context().all_reduce("SUM", tf.identity(out_of_time))
        return loss, count, stop

    def validate_replica(inputs, targets):
        count, _ = batch_share(targets)
        predictions = model(inputs, training=False)
        return mean_loss(inputs, targets, predictions) * count, count

    def reduce(values):
        return strategy.reduce("SUM", values, axis=None)

    spec = distributed_train.element_spec

    @tf.function(input_signature=[spec, tf.TensorSpec((), "float32")])
    def train_step(batch, out_of_time):
        loss, count, stop = strategy.run(train_replica, args=(*batch, out_of_time))
        # stop is already summed over replicas: every replica holds the same value.
        return reduce(loss), reduce(count), strategy.experimental_local_results(stop)[0]

    @tf.function(input_signature=[distributed_validation.element_spec])
    def validation_step(batch):
        total, count = strategy.run(validate_replica, args=batch)
        return reduce(total), reduce(count)

    def validation_loss():
        total = count = 0.0
        for batch in distributed_validation:
            batch_total, batch_count = validation_step(batch)
            total, count = total + float(batch_total), count + float(batch_count)
        return total / count if count else math.nan

    # Everything training needs to go on where it stopped; the best weights are copied out.
    with tf.init_scope():
        best_weights = [tf.Variable(w, trainable=False) for w in model.get_weights()]
    state = {"history": {"loss": [], "val_loss": []}, "best": math.inf, "waited": 0, "seconds": 0}
    checkpoints = (
        _Checkpoints(backup, strategy, model, optimizer, best_weights, fingerprint)
        if backup is not None
        else None
    )
    first_epoch = 0
    if checkpoints is not None:
        first_epoch, saved = checkpoints.resume()
        state = saved or state
        if first_epoch:
            done = "restoring the finished model" if state.get("finished") else "resuming"
            print(f"Checkpoint of epoch {first_epoch} found in {backup}: {done}", flush=True)

    history = keras.callbacks.History()
    history.set_model(model)
    history.history = {name: list(values) for name, values in state["history"].items()}
    steps = steps_per_epoch or _count_batches(train_data)
    callback_list = keras.callbacks.CallbackList(
        list(callbacks),
        model=model,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
    )
    model.stop_training = False
    started = time.perf_counter() - state["seconds"]  # a resumed run's time budget goes on
    callback_list.on_train_begin()
    iterator = iter(distributed_train) if steps_per_epoch else None
    for epoch in range(first_epoch, 0 if state.get("finished") else epochs):
        callback_list.on_epoch_begin(epoch)
        losses, counts, stop = [], [], False
        batches = (next(iterator) for _ in range(steps)) if iterator else distributed_train
        for step, batch in enumerate(batches):
            callback_list.on_train_batch_begin(step)
            out_of_time = max_seconds is not None and time.perf_counter() - started > max_seconds
            loss, count, stop = train_step(batch, tf.constant(float(out_of_time)))
            losses.append(float(loss))
            counts.append(float(count))
            stop = float(stop) > 0
            # As Keras reports it: the mean over the epoch's examples so far.
            running_loss = float(np.average(losses, weights=counts))
            callback_list.on_train_batch_end(step, {"loss": running_loss})
            if stop or not math.isfinite(losses[-1]):
                break
        if not losses:
            raise ValueError("Expected at least one training batch per epoch. Received: none")
        logs = {"loss": running_loss, "val_loss": validation_loss()}
        for name, value in logs.items():
            history.history[name].append(value)
        if math.isfinite(logs["val_loss"]) and logs["val_loss"] < state["best"]:
            state["best"], state["waited"] = logs["val_loss"], 0
            for variable, value in zip(best_weights, model.get_weights()):
                variable.assign(value)
        else:
            state["waited"] += 1
        callback_list.on_epoch_end(epoch, logs)
        diverged_now = not all(math.isfinite(value) for value in logs.values())
        finished = stop or diverged_now or state["waited"] >= patience or model.stop_training
        state["history"], state["finished"] = history.history, finished or epoch + 1 == epochs
        state["seconds"] = time.perf_counter() - started
        if checkpoints is not None:
            checkpoints.save(epoch + 1, state)
        if finished:
            break
    callback_list.on_train_end()
    if math.isfinite(state["best"]):
        model.set_weights([variable.numpy() for variable in best_weights])
    return history


def _times(gradient, factor):
    """``gradient * factor``, keeping an embedding's sparse gradient (``tf.IndexedSlices``) sparse."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor


def _batched(data, batch_size, shuffle, seed=0):
    """A tuple of arrays as a batched dataset (shuffled afresh each pass for training); a dataset as is."""
    if not isinstance(data, tuple):
        return data

    def tuples(value):  # tf.data reads a list as one tensor; a model's several inputs are a tuple
        return tuple(tuples(item) for item in value) if isinstance(value, (list, tuple)) else value

    dataset = tf.data.Dataset.from_tensor_slices(tuples(data))
    if shuffle:
        dataset = dataset.shuffle(len(tf.nest.flatten(data)[0]), seed=seed)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _count_batches(dataset):
    count = int(dataset.cardinality())
    if count < 0:  # unknown (e.g. after bucketing): count one pass
        count = int(dataset.reduce(0, lambda total, _: total + 1))
    return count


class ResumeError(ValueError):
    """Checkpoints that cannot be resumed: other settings, damaged, or not what the other workers have."""


class _Checkpoints:
    """Per-epoch checkpoints of one worker, with ``tf.train.CheckpointManager``, and resuming from them.

    Resuming is one decision taken together: every worker says which epochs it
    has, all restore the newest that every one of them saved, and a problem on
    any worker stops them all (rather than leaving the others waiting for it).
    """

    def __init__(self, folder, strategy, model, optimizer, best_weights, fingerprint):
        self.folder, self.strategy = Path(folder), strategy
        self.fingerprint = str(fingerprint)
        with tf.init_scope():
            self.state = tf.Variable("", dtype=tf.string, trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, best=best_weights, state=self.state
        )
        self._open()

    def _open(self):
        # Two kept: after a crash between two workers' saves, all can go back to the older one.
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.folder, max_to_keep=2)

    def _epochs(self):
        return sorted(int(path.rsplit("-", 1)[1]) for path in self.manager.checkpoints)

    def _path(self, epoch):
        return str(self.folder / f"ckpt-{epoch}")

    def resume(self):
        """Restore the newest epoch every worker saved: ``(epoch, state)``, or ``(0, None)`` to start."""
        mine = self._epochs()
        newest = min(gather(self.strategy, mine[-1] if mine else 0))
        self._stop_together(self._problem(newest, mine), "find its checkpoints resumable")
        self._forget_after(newest, mine)  # a newer epoch here would not match the others'
        if newest == 0:
            return 0, None
        problem = ""
        try:
            self.checkpoint.restore(self._path(newest)).expect_partial()
        except Exception as error:  # noqa: BLE001  a damaged file fails in many ways (IndexError...)
            reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            problem = (
                f"Expected a checkpoint at {self._path(newest)} that fits this model. Received: "
                f"{reason}; delete {self.folder} to start afresh"
            )
        self._stop_together(problem, "restore its checkpoint")
        return newest, json.loads(self.state.numpy().decode())

    def _stop_together(self, problem, what):
        """Raise on every worker if any has a ``problem``: alone, the others would wait for it forever."""
        troubled = [
            index for index, flag in enumerate(gather(self.strategy, int(bool(problem)))) if flag
        ]
        if troubled:
            raise ResumeError(
                problem
                or f"Expected every worker to {what}. Received: a problem on "
                f"worker(s) {troubled}, which say(s) what it is"
            )

    def _problem(self, epoch, mine):
        """Why this worker cannot resume at ``epoch``, or ``""``."""
        if epoch == 0:
            return ""
        if epoch not in mine:
            return (
                f"Expected the checkpoints in {self.folder} to hold epoch {epoch}, like the other "
                f"workers'. Received: epochs {mine}; delete every worker's checkpoints to start afresh"
            )
        try:  # the settings first: restoring a model of another shape would fail on its own terms
            text = tf.train.load_checkpoint(self._path(epoch)).get_tensor(
                "state/.ATTRIBUTES/VARIABLE_VALUE"
            )
            saved = json.loads(text).get("fingerprint")
        except (tf.errors.OpError, ValueError, AttributeError) as error:
            return (
                f"Expected a readable checkpoint at {self._path(epoch)}. Received: "
                f"{type(error).__name__}; delete {self.folder} to start afresh"
            )
        if saved != self.fingerprint:
            return (
                f"Expected the checkpoints in {self.folder} to come from a run with the same "
                f"settings. Received: settings {saved!r}; delete that folder to start afresh"
            )
        return ""

    def _forget_after(self, epoch, mine):
        newer = [number for number in mine if number > epoch]
        if not newer:
            return
        for number in newer:
            for path in self.folder.glob(f"ckpt-{number}.*"):
                path.unlink()
        kept = [self._path(number) for number in mine if number <= epoch]
        if kept:
            tf.compat.v1.train.update_checkpoint_state(str(self.folder), kept[-1], kept)
        else:
            (self.folder / "checkpoint").unlink(missing_ok=True)
        self._open()

    def save(self, epoch, state):
        self.state.assign(json.dumps({**state, "fingerprint": self.fingerprint}))
        try:
            self.manager.save(checkpoint_number=epoch)
        except tf.errors.OpError as error:  # a full disk, a folder that is a file, no permission
            raise ResumeError(
                f"Expected to write checkpoints in {self.folder}. Received: "
                f"{str(error).splitlines()[0][:160]}"
            ) from None


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
