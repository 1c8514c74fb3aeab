"""Time-series anomaly detection: detectors behind one registry, and two ways to use them.

Every detector turns a series (timesteps, channels), already scaled, into one
score per point: higher means stranger. None of them ever sees a label. Each
has ``fit(values)`` and ``score(values) -> (timesteps,)``; :data:`DETECTORS`
names them and :func:`make_detector` builds one by name.

| name              | class                    | a point's score                                       |
|-------------------|--------------------------|-------------------------------------------------------|
| ``bidirectional`` | ``BidirectionalLSTM``    | its error when predicted from both sides (AER-style)  |
| ``forecaster``    | ``LSTMForecaster``       | its error when predicted from the ``window`` before it|
| ``autoencoder``   | ``LSTMAutoencoder``      | its reconstruction error, mean over covering windows  |
| ``zscore``        | ``RollingZScore``        | distance from the median of the last ``window``, MADs |
| ``discord``       | ``MatrixProfileDiscord`` | distance from its windows to their nearest others     |
| ``holt-winters``  | ``HoltWinters``          | the error of exponential smoothing's one-step forecast|

Two ways to use a detector, each returning a :class:`Detection`:

- :func:`audit` a recorded series: fit on all of it and mark what stands out,
  with a threshold chosen from the scores (:mod:`common.tasks.alarms`).
- :func:`monitor`: fit on a normal prefix, set the threshold on a held-out part
  of it, and alarm only after it. :func:`rescore` applies a fitted detector,
  its scaler and its threshold to new data.

Labels are used only by the scoring functions: alarm intervals by overlap
(:func:`common.tasks.alarms.overlap_scores`), and, point by point, event-level
precision, recall and F1 with a tolerance (:func:`event_scores`), ROC AUC
(:func:`roc_auc`) and the UCR archive's top-1 rule (:func:`ucr_top1`).

>>> windows = label_windows([0, 1, 1, 0, 0, 0, 1, 0])
>>> windows
[(1, 2), (6, 6)]
>>> event_scores([0, 0, 1, 0, 1, 1, 0, 0], windows)["recall"]
0.5
"""

import hashlib
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from common.data.windows import StandardScaler, runs_of_true
from common.tasks.alarms import find_alarms, intervals_to_mask, overlap_scores, smooth
from common.scale.distribute import setup
from common.models.recurrent import build_many_to_one
from common.models.seq2seq import build_encoder_decoder
from common.models.training import fit, set_seed

# ---------------------------------------------------------------- events and windows


def label_windows(is_anomaly):
    """Contiguous runs of 1 in a 0/1 sequence, as inclusive ``(start, end)`` index pairs.

    >>> label_windows([1, 1, 0, 1])
    [(0, 1), (3, 3)]
    """
    return runs_of_true(is_anomaly)


def event_scores(flags, windows):
    """Event-level precision, recall and F1 of boolean ``flags`` against labelled ``windows``.

    A labelled window is *found* when any flagged point falls inside it.
    Flagged points outside every window are grouped into contiguous runs, and
    each run is one *false alarm*. Precision is found / (found + false alarms),
    recall is found / labelled windows. With no labelled window, recall and F1
    are undefined (NaN) and precision is 0 if anything was flagged.

    >>> event_scores([0, 1, 1, 0, 0, 1], [(1, 3)])
    {'windows': 1, 'found': 1, 'false_alarms': 1, 'precision': 0.5, 'recall': 1.0, 'f1': 0.6666666666666666}

    Args:
        flags: (timesteps,) booleans, True where the detector raised an alarm.
        windows: inclusive ``(start, end)`` index pairs, as from :func:`label_windows`.
    """
    flags = np.asarray(flags).astype(bool)
    for start, end in windows:
        if not 0 <= start <= end < len(flags):
            raise ValueError(
                f"Expected windows inside 0..{len(flags) - 1} with start <= end. Received: ({start}, {end})"
            )
    found = sum(bool(flags[start : end + 1].any()) for start, end in windows)
    outside = flags & ~intervals_to_mask(windows, len(flags))
    false_alarms = len(label_windows(outside))
    precision = found / (found + false_alarms) if found + false_alarms else math.nan
    recall = found / len(windows) if windows else math.nan
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision + recall > 0
        else (0.0 if windows else math.nan)
    )
    return {
        "windows": len(windows),
        "found": found,
        "false_alarms": false_alarms,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def roc_auc(scores, is_anomaly):
    """Point-level ROC AUC: the chance a random anomalous point outscores a random normal one.

    Computed from ranks (the Mann-Whitney statistic); ties count half. NaN
    scores are left out; NaN when either class is empty.

    >>> roc_auc([0.1, 0.9, 0.4, 0.4], [0, 1, 0, 1])
    0.875
    """
    scores, labels = np.asarray(scores, dtype="float64"), np.asarray(is_anomaly).astype(bool)
    known = ~np.isnan(scores)
    scores, labels = scores[known], labels[known]
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average rank (1-based) over each run of tied scores.
    _, first_index, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for first, count in zip(first_index, counts):
        ranks[order[first : first + count]] = first + (count + 1) / 2
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def ucr_top1(scores, windows, tolerance=100):
    """The UCR anomaly archive's rule: does the single highest score fall in the labelled anomaly?

    As in the archive's KDD Cup 2021 competition, a location within ``tolerance``
    points of the labelled window counts. Only defined (True/False) for a series
    with exactly one labelled window; otherwise None.

    >>> ucr_top1([0, 0, 5, 0, 0], [(2, 2)], tolerance=0)
    True
    """
    if len(windows) != 1:
        return None
    scores = np.asarray(scores, dtype="float64")
    peak = int(np.nanargmax(scores))
    start, end = windows[0]
    return bool(start - tolerance <= peak <= end + tolerance)


# ---------------------------------------------------------------- from window errors to point scores


def point_scores_from_window_errors(errors, starts, length):
    """Per-point score: the mean, over every window covering a point, of that window's error at it.

    >>> errors = np.array([[1.0, 3.0], [5.0, 7.0]])   # windows starting at 0 and 1, length 2
    >>> point_scores_from_window_errors(errors, np.array([0, 1]), length=4)
    array([ 1.,  4.,  7., nan])

    Args:
        errors: (num_windows, window) error of each window at each of its positions.
            A detector with one score per window repeats it along the window.
        starts: (num_windows,) start index of each window in the series.
        length: number of points in the series.

    Returns:
        (length,) scores; NaN where no window covers the point.
    """
    errors = np.asarray(errors, dtype="float64")
    window = errors.shape[1]
    positions = (np.asarray(starts)[:, None] + np.arange(window)).ravel()
    totals = np.bincount(positions, weights=errors.ravel(), minlength=length)
    counts = np.bincount(positions, minlength=length)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def threshold_from_normal(normal_scores, factor=1.5):
    """Alarm threshold: ``factor`` times the highest score on held-out normal data.

    The held-out part must be data the detector was *not* fitted on: a model's
    errors on its own training windows are smaller than on anything new.
    ``factor`` above 1 leaves a margin for normal data a little stranger than
    any seen so far.
    """
    normal_scores = np.asarray(normal_scores, dtype="float64")
    normal_scores = normal_scores[~np.isnan(normal_scores)]
    if normal_scores.size == 0:
        raise ValueError("Expected some scored points in the held-out normal part. Received: none")
    return float(factor * normal_scores.max())


def _as_2d(series, dtype="float32"):
    series = np.asarray(series, dtype=dtype)
    return series[:, None] if series.ndim == 1 else series


def _fit_scaler(values):
    """A StandardScaler on float64 values; refuses spreads no float can hold (values near 1e308)."""
    scaler = StandardScaler().fit(values)
    if not (np.isfinite(scaler.mean).all() and np.isfinite(scaler.scale).all()):
        largest = float(np.nanmax(np.abs(values)))
        raise ValueError(
            f"Expected values whose mean and spread fit in a float. Received values as large as "
            f"{largest:.3g}; divide the series by a power of ten first"
        )
    return scaler


def sliding_windows(series, window):
    """All windows of ``window`` consecutive points, (num_windows, window, channels), a read-only view."""
    series = _as_2d(series)
    if len(series) < window:
        raise ValueError(
            f"Expected a series of at least window = {window} points. Received: {len(series)} points"
        )
    return np.lib.stride_tricks.sliding_window_view(series, window, axis=0).transpose(0, 2, 1)


# ---------------------------------------------------------------- baselines


class RollingZScore:
    """How far each point lies from the median of the ``window`` points before it, in robust standard deviations.

    The median and the median absolute deviation (MAD, times 1.4826 so it
    matches the standard deviation for Gaussian data) ignore a few outliers, so
    one spike does not hide the next. With several channels a point scores its
    largest channel. Nothing is learned; ``fit`` does nothing.
    """

    name = "rolling z-score"
    quiet_below = (
        3.0  # robust standard deviations: closer than this to the recent median is never news
    )

    def __init__(self, window=64):
        self.window = int(window)

    def fit(self, normal_series, **unused):
        return self

    def state(self):
        return {}

    def set_state(self, state):
        return self

    def score(self, series):
        series = _as_2d(series).astype("float64")
        past = sliding_windows(series, self.window)[:-1]  # past[i] holds points i .. i + window - 1
        median = np.median(past, axis=1)
        spread = 1.4826 * np.median(np.abs(past - median[:, None]), axis=1)
        spread = np.maximum(
            spread, 1e-3
        )  # a flat stretch would divide by zero; series are scaled to unit variance
        current = series[self.window :]
        scores = np.full(len(series), np.nan)
        scores[self.window :] = (np.abs(current - median) / spread).max(axis=1)
        return scores

    def config(self):
        return {"window": self.window}


class MatrixProfileDiscord:
    """Distance from each window to its nearest neighbour among the normal training windows.

    The matrix profile (Yeh et al., 2016) gives every subsequence the distance
    to its most similar other subsequence, after z-normalising both (so only
    shape counts, not level or scale); a subsequence far from everything is a
    *discord*. Here the neighbours are searched in the normal training part
    only (an AB-join), so a strange shape that repeats in the test part is
    still strange. Channels are scored separately and averaged. A point's score
    is the mean over the windows covering it.

    Exact, in NumPy: windows become z-normalised rows, and one matrix product
    per block gives all their correlations; distance = sqrt(2 * window * (1 - correlation)).
    """

    name = "matrix-profile discord"
    quiet_below = 1.0  # about a correlation of 0.99 with the nearest window at window 64: a repeat

    def __init__(self, window=64, block_size=2048):
        self.window = int(window)
        self.block_size = block_size
        self.reference = None

    def fit(self, normal_series, **unused):
        self.reference = _as_2d(normal_series).astype("float64")
        if len(self.reference) < self.window + 1:
            raise ValueError(
                f"Expected a normal part longer than window = {self.window}. Received: {len(self.reference)} points"
            )
        return self

    @staticmethod
    def _znormalise(windows):
        centred = windows - windows.mean(axis=1, keepdims=True)
        spread = centred.std(axis=1, keepdims=True)
        return np.where(spread > 1e-8, centred / np.maximum(spread, 1e-8), 0.0)

    def state(self):
        return {"reference": self.reference.tolist()}

    def set_state(self, state):
        self.reference = np.asarray(state["reference"], dtype="float64")
        return self

    def window_scores(self, series, exclude_offset=None):
        """Nearest-neighbour distance of every window of ``series`` to the reference windows.

        ``exclude_offset``: when ``series`` starts at that index of the series the
        reference was cut from (e.g. 0: it *is* the reference), windows overlapping
        a reference window by more than half are not its neighbours (a trivial match).
        """
        series = _as_2d(series).astype("float64")
        distances = np.zeros(len(series) - self.window + 1)
        for channel in range(series.shape[1]):
            references = self._znormalise(
                sliding_windows(self.reference[:, channel], self.window)[..., 0]
            )
            queries = self._znormalise(sliding_windows(series[:, channel], self.window)[..., 0])
            nearest = np.empty(len(queries))
            for block_start in range(0, len(queries), self.block_size):
                block = queries[block_start : block_start + self.block_size]
                correlation = block @ references.T / self.window
                if exclude_offset is not None:
                    query_index = exclude_offset + block_start + np.arange(len(block))[:, None]
                    trivial = (
                        np.abs(query_index - np.arange(len(references))[None, :]) < self.window // 2
                    )
                    correlation = np.where(trivial, -np.inf, correlation)
                nearest[block_start : block_start + len(block)] = correlation.max(axis=1)
            distances += np.sqrt(np.maximum(2 * self.window * (1 - nearest), 0.0))
        return distances / series.shape[1]

    def score(self, series, exclude_offset=None):
        if exclude_offset is None and np.array_equal(_as_2d(series), self.reference):
            exclude_offset = 0  # an audit: the series is its own reference, so skip self-matches
        window_scores = self.window_scores(series, exclude_offset)
        errors = np.repeat(window_scores[:, None], self.window, axis=1)
        return point_scores_from_window_errors(
            errors, np.arange(len(window_scores)), len(_as_2d(series))
        )

    def config(self):
        return {"window": self.window}


class HoltWinters:
    """Baseline: the error of a Holt-Winters forecast of each point from the points before it.

    Classical exponential smoothing (statsmodels' ``ExponentialSmoothing``)
    with an additive trend, and an additive season when the fitted series has
    one (:func:`dominant_period`). Its smoothing weights are fitted once; new
    data is then run through the same weights, so scores of a monitored series
    use nothing learned from it.
    """

    name = "Holt-Winters"
    quiet_below = 0.1  # standard deviations of the scaled series, as for the LSTM forecaster

    def __init__(self, window=48):
        self.window = int(window)  # unused: exponential smoothing looks at the whole past
        self.period, self.params = None, None

    def _model(self, values, params=None):
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        seasonal = "add" if self.period else None
        if params is None:
            return ExponentialSmoothing(
                values,
                trend="add",
                seasonal=seasonal,
                seasonal_periods=self.period,
                initialization_method="estimated",
            )
        return ExponentialSmoothing(
            values,
            trend="add",
            seasonal=seasonal,
            seasonal_periods=self.period,
            initialization_method="known",
            initial_level=params["initial_level"],
            initial_trend=params["initial_trend"],
            initial_seasonal=params["initial_seasons"] if self.period else None,
        )

    def fit(self, normal_series, **unused):
        import statsmodels.tsa.holtwinters  # noqa: F401  before silencing: its import sets a filter

        series = _as_2d(normal_series).astype("float64")
        self.period = dominant_period(series, max_lag=len(series) // 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels warns about its optimiser's convergence
            fitted = [
                self._model(series[:, channel]).fit().params for channel in range(series.shape[1])
            ]
        keys = (
            "smoothing_level",
            "smoothing_trend",
            "smoothing_seasonal",
            "initial_level",
            "initial_trend",
            "initial_seasons",
        )
        self.params = [
            {key: np.asarray(p[key]).tolist() for key in keys if key in p} for p in fitted
        ]
        return self

    def score(self, series):
        series = _as_2d(series).astype("float64")
        errors = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for channel, params in enumerate(self.params):
                model = self._model(series[:, channel], params)
                weights = {key: params[key] for key in params if key.startswith("smoothing")}
                fitted = model.fit(optimized=False, **weights).fittedvalues
                errors.append(np.abs(series[:, channel] - fitted))
        return np.mean(errors, axis=0)

    def state(self):
        return {"period": self.period, "params": self.params}

    def set_state(self, state):
        self.period, self.params = state["period"], state["params"]
        return self


# ---------------------------------------------------------------- recurrent detectors


def build_lstm_autoencoder(window, channels, units=32, cell="lstm"):
    """An encoder-decoder that must squeeze a whole window through its final state, then rebuild it.

    Built by :func:`common.build_encoder_decoder`. The decoder reads zeros
    (an "unconditioned" decoder, Srivastava et al., 2015), not the shifted
    window that teacher forcing would give it: with the true previous value at
    every step it could simply copy, and would rebuild anomalies as well as
    normal data. Everything it knows about the window passes through the
    encoder's ``units``-wide state, which is fitted to normal shapes only.

    >>> model = build_lstm_autoencoder(window=16, channels=2, units=8)
    >>> [tuple(spec.shape) for spec in model.inputs], tuple(model.output.shape)
    ([(None, 16, 2), (None, 16, 1)], (None, 16, 2))
    """
    return build_encoder_decoder(
        (window, channels), (window, 1), channels, cell=cell, units=units, name="lstm_autoencoder"
    )


def build_lstm_forecaster(window, channels, units=32, cell="lstm"):
    """Many-to-one network predicting the next point of every channel from the ``window`` points before it."""
    return build_many_to_one(
        (window, channels), channels, cell=cell, units=units, name="lstm_forecaster"
    )


def _select(examples, keep):
    """Rows ``keep`` (a boolean mask or indices) of ``(inputs, targets)``; either may be a list."""

    def pick(arrays):
        return [array[keep] for array in arrays] if isinstance(arrays, list) else arrays[keep]

    return pick(examples[0]), pick(examples[1])


def _first(arrays):
    return arrays[0] if isinstance(arrays, list) else arrays


def evenly_spaced(examples, max_count):
    """At most ``max_count`` examples, evenly spaced in time, from ``(inputs, targets)`` arrays or lists of arrays."""
    targets = examples[1]
    count = len(targets[0] if isinstance(targets, list) else targets)
    if count <= max_count:
        return examples
    return _select(examples, np.linspace(0, count - 1, max_count).round().astype(int))


class _RecurrentDetector:
    """Shared training loop: fit on windows of the normal part, early-stop on a held-out normal tail.

    Neighbouring windows overlap almost entirely, so a long normal part is
    thinned to ``max_windows`` evenly spaced windows: the training time stays
    bounded and little is lost.

    Training is short on purpose (10 epochs, stopping after 2 without
    improvement): an audit fits on data that holds the anomalies, and a network
    trained longer learns them too. On the NAB development folders, 10 epochs
    and patience 2 gave pooled overlap F1 0.731 and 0.698 (seeds 42 and 0)
    where 20 and 3 gave 0.667 and 0.667, and 40 and 5 gave 0.635.
    """

    max_windows = 2000
    patience = 2
    quiet_below = 0.1  # standard deviations of the scaled series: an error this small is not news

    def __init__(
        self, window=48, units=32, epochs=10, batch_size=64, model=None, verbose=0, patience=None,
        distribution=None,
    ):  # fmt: skip
        self.window, self.units, self.epochs, self.batch_size = (
            int(window),
            units,
            epochs,
            batch_size,
        )
        self.model, self.verbose, self.distribution = model, verbose, distribution
        if patience is not None:  # e.g. longer training on data known to be normal
            self.patience = patience
        self.epochs_run = 0

    def fit(self, normal_series, validation_series=None, max_seconds=None):
        """Fit on windows of ``normal_series`` (timesteps, channels).

        Early stopping watches ``validation_series`` when given (a monitor's
        held-out normal tail); otherwise every tenth window is held out (an audit).
        """
        normal_series = _as_2d(normal_series)
        distribution = self.distribution or setup("none")
        if self.model is None:
            with distribution.scope():  # the weights are mirrored on every replica
                self.model = self.build(normal_series.shape[1])
                self.compile(self.model)
        examples = evenly_spaced(self.examples(normal_series), self.max_windows)
        if validation_series is not None:
            train = examples
            validation = evenly_spaced(
                self.examples(_as_2d(validation_series)), self.max_windows // 2
            )
        else:
            every_tenth = np.arange(len(_first(examples[1]))) % 10 == 9
            train, validation = _select(examples, ~every_tenth), _select(examples, every_tenth)
        history = fit(
            self.model,
            train,
            validation,
            epochs=self.epochs,
            batch_size=distribution.global_batch(self.batch_size),
            patience=self.patience,
            max_seconds=max_seconds,
            verbose=self.verbose,
            distribution=distribution,
            # one name per series, the same on every worker and after a restart
            name=hashlib.sha1(normal_series.tobytes()).hexdigest()[:16],
        )
        self.model = distribution.local_copy(self.model)  # scores are computed on one device
        self.epochs_run = len(history.history["loss"])
        self.history = history
        return self

    def compile(self, model):
        model.compile(optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0), loss="mse")

    def state(self):
        """What besides the model a saved run needs to score like this one (JSON-ready)."""
        return {}

    def set_state(self, state):
        return self


class LSTMAutoencoder(_RecurrentDetector):
    """Scores each point by how badly the autoencoder rebuilds it, averaged over the windows covering it."""

    name = "LSTM autoencoder"

    def build(self, channels):
        return build_lstm_autoencoder(self.window, channels, self.units)

    def _inputs(self, windows):
        return [windows, np.zeros(windows.shape[:2] + (1,), dtype="float32")]

    def examples(self, series):
        windows = np.ascontiguousarray(sliding_windows(series, self.window))
        return self._inputs(windows), windows

    def score(self, series, batch_size=1024):
        series = _as_2d(series)
        windows = np.ascontiguousarray(sliding_windows(series, self.window))
        rebuilt = self.model.predict(self._inputs(windows), batch_size=batch_size, verbose=0)
        errors = ((rebuilt - windows) ** 2).mean(
            axis=2
        )  # (num_windows, window): squared error, mean over channels
        return point_scores_from_window_errors(errors, np.arange(len(windows)), len(series))


class LSTMForecaster(_RecurrentDetector):
    """Scores each point by the absolute error of predicting it from the ``window`` points before it.

    With several channels, the error is averaged over channels. The first
    ``window`` points have no prediction and score NaN.
    """

    name = "LSTM forecaster"

    def build(self, channels):
        return build_lstm_forecaster(self.window, channels, self.units)

    def examples(self, series):
        windows = np.ascontiguousarray(sliding_windows(series[:-1], self.window))
        return windows, series[self.window :]

    def score(self, series, batch_size=1024):
        series = _as_2d(series)
        inputs, targets = self.examples(series)
        predicted = self.model.predict(inputs, batch_size=batch_size, verbose=0)
        scores = np.full(len(series), np.nan)
        scores[self.window :] = np.abs(predicted - targets).mean(axis=1)
        return scores


def build_lstm_aer(window, channels, units=32):
    """A bidirectional LSTM that predicts both neighbours of a window and rebuilds the window.

    After AER (Wong et al., IEEE BigData 2022), the best of the published
    pipelines on NAB: a bidirectional encoder reads ``window`` points; from its
    state one head predicts the point just after them (forward), one the point
    just before them (backward), and a decoder rebuilds the window itself. The
    reconstruction task regularises the encoder; the anomaly score uses the
    two predictions.

    >>> model = build_lstm_aer(window=16, channels=2, units=8)
    >>> [tuple(output.shape) for output in model.outputs]
    [(None, 2), (None, 2), (None, 16, 2)]
    """
    inputs = keras.Input((window, channels), name="window")
    state = keras.layers.Bidirectional(keras.layers.LSTM(units), name="encoder")(inputs)
    forward = keras.layers.Dense(channels, name="next_point")(state)
    backward = keras.layers.Dense(channels, name="previous_point")(state)
    repeated = keras.layers.RepeatVector(window)(state)
    decoded = keras.layers.LSTM(units, return_sequences=True, name="decoder")(repeated)
    rebuilt = keras.layers.TimeDistributed(keras.layers.Dense(channels), name="rebuilt")(decoded)
    return keras.Model(inputs, [forward, backward, rebuilt], name="lstm_aer")


def robust_center_and_scale(values):
    """Median and MAD (times 1.4826, the standard deviation for Gaussian data) of the finite values.

    >>> robust_center_and_scale([1.0, 2.0, 3.0, 100.0, np.nan])
    (2.5, 1.4826)
    """
    values = np.asarray(values, dtype="float64")
    values = values[np.isfinite(values)]
    center = float(np.median(values))
    scale = 1.4826 * float(np.median(np.abs(values - center)))
    if scale <= 1e-12:  # more than half the errors are equal: fall back to the spread
        scale = float(values.std()) or 1.0
    return center, scale


class BidirectionalLSTM(_RecurrentDetector):
    """Scores each point by how badly it is predicted from the window after it and the window before it.

    The forward head predicts a point from the ``window`` points before it, the
    backward head from the ``window`` points after it. Each head's absolute
    error becomes a robust z-score (median and MAD of that head's errors on the
    fitted data, so one head's scale does not drown the other's) and a point
    scores the mean of its two. The first and last points have one side only.
    """

    name = "bidirectional LSTM (AER)"
    quiet_below = 0.0  # robust z-scores: their typical size is known, so no floor is needed

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.centers, self.scales = None, None

    def build(self, channels):
        return build_lstm_aer(self.window, channels, self.units)

    def compile(self, model):
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0),
            loss=["mse", "mse", "mse"],
            loss_weights=[0.25, 0.25, 0.5],
        )

    def examples(self, series):
        """Segments of ``window + 2`` points: the middle ``window`` is read, the two ends predicted."""
        segments = np.ascontiguousarray(sliding_windows(series, self.window + 2))
        middle = segments[:, 1:-1]
        return middle, [segments[:, -1], segments[:, 0], middle]

    def fit(self, normal_series, validation_series=None, max_seconds=None):
        super().fit(normal_series, validation_series, max_seconds)
        errors = self._errors(_as_2d(normal_series))
        self.centers, self.scales = zip(*(robust_center_and_scale(e) for e in errors))
        return self

    def _errors(self, series):
        """(forward, backward) absolute errors per point, NaN where a head cannot reach."""
        inputs, (after, before, _) = self.examples(series)
        forward, backward, _ = self.model.predict(inputs, batch_size=1024, verbose=0)
        count = len(inputs)
        forward_errors = np.full(len(series), np.nan)
        forward_errors[self.window + 1 :] = np.abs(forward - after).mean(axis=1)
        backward_errors = np.full(len(series), np.nan)
        backward_errors[:count] = np.abs(backward - before).mean(axis=1)
        return forward_errors, backward_errors

    def score(self, series):
        errors = self._errors(_as_2d(series))
        z_scores = [(e - c) / s for e, c, s in zip(errors, self.centers, self.scales)]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a point no head reaches stays NaN
            return np.nanmean(np.stack(z_scores), axis=0)

    def state(self):
        return {"centers": list(self.centers), "scales": list(self.scales)}

    def set_state(self, state):
        self.centers, self.scales = tuple(state["centers"]), tuple(state["scales"])
        return self


# ---------------------------------------------------------------- one registry, one pipeline

DETECTORS = {
    "bidirectional": BidirectionalLSTM,
    "forecaster": LSTMForecaster,
    "autoencoder": LSTMAutoencoder,
    "zscore": RollingZScore,
    "discord": MatrixProfileDiscord,
    "holt-winters": HoltWinters,
}
RECURRENT = ("bidirectional", "forecaster", "autoencoder")


def make_detector(
    name, window=48, units=32, epochs=10, batch_size=64, model=None, verbose=0, distribution=None
):
    """A detector from :data:`DETECTORS` by name; the recurrent ones also take training settings.

    ``verbose`` is Keras' training progress: 0 silent, 1 a progress bar, 2 one line per epoch.
    ``distribution`` (a :class:`common.scale.distribute.Distribution`) trains data-parallel;
    ``batch_size`` is then per replica.

    >>> make_detector("zscore", window=16).window
    16
    """
    if name not in DETECTORS:
        raise ValueError(f"Expected a detector in {sorted(DETECTORS)}. Received: {name!r}")
    if name in RECURRENT:
        return DETECTORS[name](
            window, units, epochs, batch_size, model=model, verbose=verbose,
            distribution=distribution,
        )  # fmt: skip
    return DETECTORS[name](window)


def dominant_period(values, max_lag=None, min_correlation=0.3):
    """The lag of the strongest repeating pattern (autocorrelation peak), or None.

    Args:
        values: (timesteps,) or (timesteps, channels); the first channel is used.
        max_lag: longest period considered (default: a third of the series).
        min_correlation: a peak weaker than this is no season.

    >>> day = np.sin(2 * np.pi * np.arange(960) / 48)
    >>> dominant_period(day)
    48
    """
    values = _as_2d(values, "float64")[:, 0]
    values = values - values.mean()
    if not values.any():
        return None
    max_lag = int(max_lag or len(values) // 3)
    spectrum = np.fft.rfft(values, 2 * len(values))
    correlation = np.fft.irfft(spectrum * np.conj(spectrum))[: max_lag + 1]
    correlation /= correlation[0]
    peaks = [
        lag
        for lag in range(2, max_lag)
        if correlation[lag] >= correlation[lag - 1] and correlation[lag] > correlation[lag + 1]
    ]
    peaks = [lag for lag in peaks if correlation[lag] >= min_correlation]
    return max(peaks, key=lambda lag: correlation[lag]) if peaks else None


def choose_window(length, default=48, period=None, min_window=2):
    """Window length for a series of ``length`` points: ``default`` when it fits, else shorter.

    A detector needs several windows to learn from, so a window is at most an
    eighth of the series; inside that limit a seasonal ``period`` is preferred
    (one whole cycle is the natural unit of normal behaviour).

    >>> choose_window(4000), choose_window(200), choose_window(200, period=24)
    (48, 25, 24)
    """
    longest = length // 8
    if longest < min_window:
        raise ValueError(
            f"Expected a series of at least {8 * min_window} points, enough for windows of "
            f"{min_window}. Received: {length} points"
        )
    if default <= longest:
        return default
    if period is not None and min_window <= period <= longest:
        return int(period)
    return int(longest)


# ---------------------------------------------------------------- a coarser view of long series


def aggregation_factor(length, points=500):
    """How many raw points to average into one so that about ``points`` remain.

    A window of a few dozen aggregated points then spans a tenth of the series,
    days of five-minute readings, which is the scale at which monitoring
    anomalies (a shift, a changed daily pattern) show.

    >>> aggregation_factor(4032), aggregation_factor(300)
    (8, 1)
    """
    return max(1, int(round(length / points)))


def aggregate(values, factor):
    """Block means of ``factor`` consecutive points; a shorter last block is averaged too.

    >>> aggregate(np.arange(8.0), 3)[:, 0]
    array([1. , 4. , 6.5])
    """
    values = _as_2d(values, "float64")
    if factor == 1:
        return values
    full = len(values) // factor * factor
    blocks = values[:full].reshape(-1, factor, values.shape[1]).mean(axis=1)
    if full < len(values):
        blocks = np.vstack([blocks, values[full:].mean(axis=0, keepdims=True)])
    return blocks


def expand(scores, factor, length):
    """Aggregated scores back to one per raw point: each block's score repeated over its points."""
    return np.repeat(np.asarray(scores, dtype="float64"), factor)[:length]


def expand_intervals(intervals, factor, length):
    """Aggregated ``(start, end)`` intervals as raw inclusive index ranges.

    >>> expand_intervals([(0, 1), (4, 4)], factor=3, length=14)
    [(0, 5), (12, 13)]
    """
    return [(start * factor, min((end + 1) * factor, length) - 1) for start, end in intervals]


# ---------------------------------------------------------------- audit and monitor


@dataclass(frozen=True)
class Settings:
    """How a series is looked at and how its scores become alarms; saved with a run.

    All lengths count aggregated points.

    Attributes:
        factor: raw points averaged into one before detecting (see :func:`aggregate`).
        span: points in the exponentially weighted mean that smooths the scores.
        gap: alarms at most this many points apart merge into one.
        z: an audit's candidates lie this many robust standard deviations above the median score.
        max_alarms: an audit keeps at most this many alarms, the strongest ...
        min_ratio: ... and only those whose peak reaches this share of the strongest peak.
        floor: no threshold below this score.
    """

    factor: int = 1
    span: int = 5
    gap: int = 15
    z: float = 3.0
    max_alarms: int = 2
    min_ratio: float = 0.5
    floor: float = 0.0

    @classmethod
    def for_length(cls, length, points=500, **overrides):
        """Settings for a series of ``length`` raw points: smooth over 1%, merge within 3%."""
        factor = aggregation_factor(length, points)
        aggregated = -(-length // factor)
        return cls(
            factor=factor,
            span=max(1, int(0.01 * aggregated)),
            gap=max(1, int(0.03 * aggregated)),
            **overrides,
        )


@dataclass
class Detection:
    """What one detector found in one series; every array has one entry per raw point.

    Attributes:
        scores: raw scores; NaN where the detector cannot score.
        smoothed: the scores after smoothing; alarms come from these.
        threshold: the smoothed score above which a point may alarm.
        alarms: inclusive ``(start, end)`` raw index pairs of alarm intervals.
        scored_from: first index that counts: 0 in an audit, the end of the
            normal prefix when monitoring (points before it were fitted on).
        fitted_on: raw points the detector was fitted on (0 when reloaded).
    """

    name: str
    detector: object
    scaler: StandardScaler
    settings: Settings
    scores: np.ndarray
    smoothed: np.ndarray
    threshold: float
    alarms: list
    scored_from: int = 0
    fitted_on: int = 0
    fit_seconds: float = 0.0
    score_seconds: float = 0.0

    @property
    def flagged(self):
        """(timesteps,) booleans: True inside an alarm interval."""
        return intervals_to_mask(self.alarms, len(self.scores))


def audit(
    values, name="bidirectional", window=48, settings=None, seed=42, max_alarms=2, **training
):
    """Audit a recorded series: fit on all of it, unsupervised, and mark what stands out.

    This is how the published pipelines (Hundman et al. 2018; sintel-dev/Orion)
    score a recorded series: the detector learns the series' usual behaviour
    from the whole of it (anomalies are rare, so they barely shape it), and the
    threshold comes from the scores themselves: candidates above a robust
    threshold, of which at most ``settings.max_alarms`` of the strongest are kept
    (:func:`common.tasks.alarms.find_alarms`).

    Args:
        values: (timesteps, channels) raw values.
        name: a key of :data:`DETECTORS`.
        window: aggregated points per window.
        settings: a :class:`Settings`; default scaled to the series' length.
        max_alarms: with the default settings, keep at most this many alarms.
        training: ``units``, ``epochs``, ``batch_size``, ``verbose`` for the recurrent detectors.
    """
    values = _as_2d(values, "float64")  # float32 would lose a spike on a level of 1e10
    detector = make_detector(name, window, **training)
    settings = settings or Settings.for_length(
        len(values), floor=detector.quiet_below, max_alarms=max_alarms
    )
    coarse = aggregate(values, settings.factor)
    scaler = _fit_scaler(coarse)
    set_seed(seed)
    started = time.perf_counter()
    detector.fit(scaler.transform(coarse).astype("float32"))
    fit_seconds = time.perf_counter() - started
    detection = rescore(values, name, detector, scaler, settings, threshold=None)
    detection.fitted_on, detection.fit_seconds = len(values), fit_seconds
    return detection


def monitor(
    values,
    normal_end,
    name="bidirectional",
    window=48,
    settings=None,
    seed=42,
    holdout_fraction=0.25,
    threshold_factor=1.5,
    **training,
):
    """Monitor: fit on a normal prefix, then alarm only on the points after it.

    The prefix ``[0, normal_end)`` is assumed free of anomalies. The detector is
    fitted on its first part; its last ``holdout_fraction`` is held out, and the
    threshold is ``threshold_factor`` times the highest smoothed score there:
    a margin above the strangest normal behaviour the detector has not fitted.
    Every interval above it alarms: new data has no "strongest two".

    Returns:
        A :class:`Detection` whose alarms all lie at or after the prefix.
    """
    values = _as_2d(values, "float64")
    detector = make_detector(name, window, **training)
    settings = settings or Settings.for_length(normal_end, floor=detector.quiet_below)
    coarse = aggregate(values, settings.factor)
    prefix = normal_end // settings.factor
    fit_end = prefix - int(round(prefix * holdout_fraction))
    if fit_end < 2 * window or prefix - fit_end < window or len(coarse) - prefix < 1:
        raise ValueError(
            f"Expected a normal prefix of at least 3 windows of {window} points (2 to fit, 1 held "
            f"out) and points after it. Received: a prefix of {prefix} of {len(coarse)} points"
            + (f" (averaged {settings.factor} to 1)" if settings.factor > 1 else "")
        )
    scaler = _fit_scaler(coarse[:fit_end])
    scaled = scaler.transform(coarse).astype("float32")
    set_seed(seed)
    started = time.perf_counter()
    detector.fit(scaled[:fit_end], validation_series=scaled[fit_end:prefix])
    fit_seconds = time.perf_counter() - started
    # Score the prefix on its own, so no window reaching past it shapes the threshold.
    held_out = smooth(detector.score(scaled[:prefix]), settings.span)[fit_end:]
    held_out = held_out[np.isfinite(held_out)]
    if held_out.size == 0:
        raise ValueError("Expected scored points in the held-out normal part. Received: none")
    threshold = max(threshold_factor * float(held_out.max()), settings.floor)
    detection = rescore(
        values, name, detector, scaler, settings, threshold, scored_from=prefix * settings.factor
    )
    detection.fitted_on, detection.fit_seconds = fit_end * settings.factor, fit_seconds
    return detection


def rescore(values, name, detector, scaler, settings, threshold, scored_from=0):
    """Score ``values`` with a fitted detector and scaler; alarm above ``threshold``.

    ``threshold=None`` chooses one from the scores (an audit). Alarms before
    ``scored_from`` (a raw index) are dropped: those points were the detector's
    training data.
    """
    values = _as_2d(values, "float64")
    coarse = scaler.transform(aggregate(values, settings.factor)).astype("float32")
    started = time.perf_counter()
    scores = detector.score(coarse)
    score_seconds = time.perf_counter() - started
    smoothed = smooth(scores, settings.span)
    counted = smoothed.copy()
    counted[: -(-scored_from // settings.factor)] = np.nan
    if threshold is None:
        alarms, threshold = find_alarms(
            counted,
            None,
            settings.gap,
            settings.z,
            settings.max_alarms,
            settings.min_ratio,
            settings.floor,
        )
    else:  # a fixed threshold, set on normal data: every interval above it alarms
        alarms, threshold = find_alarms(counted, threshold, settings.gap, max_alarms=None)
    length, factor = len(values), settings.factor
    return Detection(
        name,
        detector,
        scaler,
        settings,
        expand(scores, factor, length),
        expand(smoothed, factor, length),
        threshold,
        expand_intervals(alarms, factor, length),
        scored_from=scored_from,
        score_seconds=score_seconds,
    )


# ---------------------------------------------------------------- what a person reads


# Why a figure in :func:`evaluate`'s row can be undefined; ``metrics.json`` says so beside the null.
NULL_REASONS = {
    "precision": "no alarms were raised, so none can be right or wrong",
    "recall": "the scored part holds no labelled anomaly",
    "f1": "no alarms were raised and the scored part holds no labelled anomaly",
    "ROC AUC": "needs both anomalous and normal labelled points among the scored ones",
}


def evaluate(detection, is_anomaly=None):
    """One table row for a detection: its alarm count, and, with labels, overlap scores and ROC AUC.

    Only the points from ``detection.scored_from`` on count: a monitor's
    normal prefix was its training data.

    Args:
        is_anomaly: (timesteps,) booleans, or None for an unlabelled series.
    """
    row = {"alarms": len(detection.alarms)}
    if is_anomaly is None:
        return row
    first = detection.scored_from
    windows = runs_of_true(is_anomaly[first:])
    shifted = [(start - first, end - first) for start, end in detection.alarms]
    row |= overlap_scores(shifted, windows)
    row["ROC AUC"] = roc_auc(detection.scores[first:], is_anomaly[first:])
    return row


def scores_table(series, detection):
    """Every point: time, values, raw and smoothed score, ``flagged`` (1 inside an alarm), labels."""
    columns = {"time": series.times}
    columns |= {column: series.values[:, channel] for channel, column in enumerate(series.columns)}
    columns |= {"score": detection.scores, "smoothed_score": detection.smoothed}
    columns["flagged"] = detection.flagged.astype(int)
    if series.is_anomaly is not None:
        columns["is_anomaly"] = series.is_anomaly.astype(int)
    return pd.DataFrame(columns)  # built at once: hundreds of channels, no fragmented frame


def alarms_table(series, detection):
    """One row per alarm interval: start and end times and indices, and its peak smoothed score."""
    rows = [
        {
            "start": series.times[start],
            "end": series.times[end],
            "start_index": start,
            "end_index": end,
            "peak_score": float(np.nanmax(detection.smoothed[start : end + 1])),
        }
        for start, end in detection.alarms
    ]
    return pd.DataFrame(rows, columns=["start", "end", "start_index", "end_index", "peak_score"])


# ---------------------------------------------------------------- saved detectors


def save_detector(folder, detection, **extra):
    """Save what scoring new data needs: ``model.keras`` (recurrent detectors) and ``config.json``.

    ``config.json`` holds the detector's name, window, state (error scales,
    reference windows, smoothing weights), the scaler, the settings and the
    threshold, plus any JSON-ready ``extra`` (the app adds its name and columns).
    """
    import json

    folder = Path(folder)
    if detection.name in RECURRENT:
        detection.detector.model.save(folder / "model.keras")
    saved = {
        "detector": detection.name,
        "window": detection.detector.window,
        "units": getattr(detection.detector, "units", None),
        "threshold": detection.threshold,
        "scaler": detection.scaler.to_dict(),
        "settings": asdict(detection.settings),
        "state": detection.detector.state(),
        **extra,
    }
    (folder / "config.json").write_text(json.dumps(saved, indent=2, allow_nan=False))
    return saved


def load_detector(folder, saved, model=None):
    """``(detector, scaler, settings, threshold)`` from a saved run's ``config.json`` contents.

    ``model`` is the loaded ``model.keras`` for the recurrent detectors.
    Raises ``ValueError`` when ``saved`` lacks a field or holds a wrong one.
    """
    try:
        detector = make_detector(
            saved["detector"], saved["window"], saved["units"] or 32, model=model
        )
        detector.set_state(saved["state"])
        scaler = StandardScaler.from_dict(saved["scaler"])
        return detector, scaler, Settings(**saved["settings"]), float(saved["threshold"])
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"Expected a complete saved detector in {folder}. Received: {error!r}"
        ) from None
