"""Turning a series into (input window, target) pairs, and splitting it honestly.

A window that starts at step ``s`` reads ``series[s : s + window]`` and its
target is the next ``horizon`` steps, ``series[s + window : s + window + horizon]``.

For time series the split is chronological (train, then validation, then test)
and a scaler learns its mean and spread from the training part only: anything
fitted on later data would leak the future into the past.
"""

import json

import numpy as np

from common.quiet import import_tensorflow_quietly


def window_starts(length, window, horizon=1, stride=1):
    """Start index of every complete (input, target) window in a series.

    >>> window_starts(length=10, window=3, horizon=2, stride=2)
    array([0, 2, 4])
    """
    for name, value in (("window", window), ("horizon", horizon), ("stride", stride)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"Expected {name} to be a positive int. Received: {name}={value!r}")
    last_start = length - window - horizon
    if last_start < 0:
        raise ValueError(
            f"Expected a series of at least window + horizon = {window + horizon} steps. "
            f"Received: {length} steps"
        )
    return np.arange(0, last_start + 1, stride)


def make_windows(series, window, horizon=1, stride=1, targets=None):
    """Slice a series into input windows and the ``horizon`` steps after each.

    >>> inputs, next_steps = make_windows(np.arange(6.0), window=3, horizon=2)
    >>> inputs[:, :, 0]
    array([[0., 1., 2.],
           [1., 2., 3.]])
    >>> next_steps[:, :, 0]
    array([[3., 4.],
           [4., 5.]])

    Args:
        series: (timesteps,) or (timesteps, features).
        window: input steps per example.
        horizon: target steps per example.
        stride: steps between the starts of consecutive windows.
        targets: optional series of the same length to take targets from
            (e.g. the price while inputs hold several features). Defaults to ``series``.

    Returns:
        inputs (num_windows, window, features) and targets
        (num_windows, horizon, target_features).
    """
    series = _as_2d(series, "series")
    targets = series if targets is None else _as_2d(targets, "targets")
    if len(targets) != len(series):
        raise ValueError(
            f"Expected targets as long as series ({len(series)} steps). Received: {len(targets)} steps"
        )
    starts = window_starts(len(series), window, horizon, stride)
    input_index = starts[:, None] + np.arange(window)
    target_index = starts[:, None] + window + np.arange(horizon)
    return series[input_index], targets[target_index]


def windows_dataset(
    series, window, horizon=1, stride=1, targets=None, batch_size=32, shuffle=False, seed=None
):
    """The same pairs as :func:`make_windows`, streamed as a ``tf.data.Dataset``.

    Windows are cut on the fly, so a long series never has to exist as a
    (num_windows, window, features) array in memory. Shuffle training data
    only; evaluation must see windows in time order.

    Returns:
        A dataset of (inputs, targets) batches shaped (batch, window, features)
        and (batch, horizon, target_features).
    """
    tf = import_tensorflow_quietly()  # here, not at the top: the apps load it after their options
    series = _as_2d(series, "series").astype("float32")
    targets = series if targets is None else _as_2d(targets, "targets").astype("float32")
    starts = window_starts(len(series), window, horizon, stride)
    series_tensor, target_tensor = tf.constant(series), tf.constant(targets)

    def cut(start):
        return (
            series_tensor[start : start + window],
            target_tensor[start + window : start + window + horizon],
        )

    dataset = tf.data.Dataset.from_tensor_slices(starts)
    if shuffle:
        dataset = dataset.shuffle(len(starts), seed=seed, reshuffle_each_iteration=True)
    return (
        dataset.map(cut, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def chronological_split(length, validation_fraction=0.15, test_fraction=0.15):
    """Split ``range(length)`` into consecutive train, validation and test slices.

    >>> chronological_split(20, validation_fraction=0.25, test_fraction=0.25)
    (slice(0, 10, None), slice(10, 15, None), slice(15, 20, None))
    """
    if validation_fraction < 0 or test_fraction <= 0 or validation_fraction + test_fraction >= 1:
        raise ValueError(
            "Expected 0 <= validation_fraction, 0 < test_fraction and their sum below 1. "
            f"Received: validation_fraction={validation_fraction}, test_fraction={test_fraction}"
        )
    test_start = length - int(round(length * test_fraction))
    validation_start = test_start - int(round(length * validation_fraction))
    if validation_start < 1 or test_start >= length:
        raise ValueError(
            f"Expected a series long enough to split three ways. Received: {length} steps"
        )
    return (
        slice(0, validation_start),
        slice(validation_start, test_start),
        slice(test_start, length),
    )


def assign_windows(starts, window, horizon, split):
    """Which windows belong to train, validation and test, with no target crossing a boundary.

    A window belongs to a part when *all* its targets lie inside that part.
    Its inputs may reach back into earlier parts, which is fair (the past is
    known when forecasting), but a training target never lies in the
    validation or test part.  Windows whose targets straddle a boundary are
    dropped.

    Returns:
        Three boolean masks over ``starts``.
    """
    first_target = np.asarray(starts) + window
    last_target = first_target + horizon - 1
    return tuple((first_target >= part.start) & (last_target < part.stop) for part in split)


class StandardScaler:
    """Scale to zero mean and unit variance, per feature, with statistics from ``fit`` only.

    >>> scaler = StandardScaler().fit(np.array([[1.0], [3.0]]))
    >>> scaler.transform(np.array([[5.0]]))
    array([[3.]])
    """

    def __init__(self, mean=None, scale=None):
        self.mean = None if mean is None else np.asarray(mean, dtype="float64")
        self.scale = None if scale is None else np.asarray(scale, dtype="float64")

    def fit(self, values):
        values = _as_2d(values, "values")
        self.mean = values.mean(axis=0)
        std = values.std(axis=0)
        self.scale = np.where(std > 0, std, 1.0)  # a constant feature stays finite
        return self

    def _check_fitted(self):
        if self.mean is None:
            raise ValueError("Expected a fitted scaler: call fit(training_values) first.")

    def transform(self, values):
        self._check_fitted()
        return (np.asarray(values) - self.mean) / self.scale

    def inverse_transform(self, values):
        self._check_fitted()
        return np.asarray(values) * self.scale + self.mean

    def to_dict(self):
        self._check_fitted()
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, state):
        return cls(state["mean"], state["scale"])

    def save(self, path):
        with open(path, "w") as file:
            json.dump(self.to_dict(), file, indent=2)

    @classmethod
    def load(cls, path):
        with open(path) as file:
            return cls.from_dict(json.load(file))


def _as_2d(values, name):
    values = np.asarray(values)
    if values.ndim == 1:
        return values[:, None]
    if values.ndim != 2:
        raise ValueError(
            f"Expected {name} of shape (timesteps,) or (timesteps, features). Received: shape {values.shape}"
        )
    return values


def runs_of_true(flags):
    """Contiguous runs of True in a boolean sequence, as inclusive ``(start, end)`` pairs.

    >>> runs_of_true([1, 1, 0, 1])
    [(0, 1), (3, 3)]
    """
    flags = np.asarray(flags).astype(bool).astype(int)
    edges = np.diff(np.concatenate([[0], flags, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(int(start), int(end)) for start, end in zip(starts, ends)]


def sliding_windows(series, window):
    """Every run of ``window`` consecutive steps, (num_windows, window, features): a view, no copy.

    Unlike :func:`make_windows`, there is no target: the last window ends at the last step.

    >>> sliding_windows(np.arange(4.0), 3)[:, :, 0]
    array([[0., 1., 2.],
           [1., 2., 3.]])
    """
    series = _as_2d(series, "series")
    if len(series) < window:
        raise ValueError(
            f"Expected a series of at least window = {window} points. Received: {len(series)} points"
        )
    return np.lib.stride_tricks.sliding_window_view(series, window, axis=0).transpose(0, 2, 1)
