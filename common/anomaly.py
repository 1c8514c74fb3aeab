"""Time-series anomaly detection: four detectors behind one registry, and two ways to use them.

Every detector turns a series (timesteps, channels), already scaled, into one
score per point: higher means stranger. None of them ever sees a label. Each
has ``fit(values)`` and ``score(values) -> (timesteps,)``; :data:`DETECTORS`
names them and :func:`make_detector` builds one by name.

| name            | class                    | a point's score                                          |
|-----------------|--------------------------|----------------------------------------------------------|
| ``forecaster``  | ``LSTMForecaster``       | the error of predicting it from the ``window`` before it |
| ``autoencoder`` | ``LSTMAutoencoder``      | its reconstruction error, averaged over covering windows |
| ``zscore``      | ``RollingZScore``        | distance from the median of the previous ``window``, MADs|
| ``discord``     | ``MatrixProfileDiscord`` | distance from its windows to their nearest other window  |

Two ways to use a detector, each returning a :class:`Detection`:

- :func:`audit` a recorded series: fit on all of it and mark what stands out,
  with a threshold chosen from the scores (:mod:`common.alarms`).
- :func:`monitor`: fit on a normal prefix, set the threshold on a held-out part
  of it, and alarm only after it. :func:`rescore` applies a fitted detector,
  its scaler and its threshold to new data.

Labels are used only by the scoring functions: alarm intervals by overlap
(:func:`common.alarms.overlap_scores`), and, point by point, event-level
precision, recall and F1 with a tolerance (:func:`event_scores`), ROC AUC
(:func:`roc_auc`) and the UCR archive's top-1 rule (:func:`ucr_top1`).

>>> windows = label_windows([0, 1, 1, 0, 0, 0, 1, 0])
>>> windows
[(1, 2), (6, 6)]
>>> event_scores([0, 0, 1, 0, 1, 1, 0, 0], windows)["recall"]
0.5
"""

import math
import time
from dataclasses import dataclass

import keras
import numpy as np

from common.alarms import find_alarms, intervals_to_mask, runs_of_true, smooth
from common.data import StandardScaler
from common.models import build_many_to_one
from common.seq2seq import build_encoder_decoder
from common.training import fit, set_seed

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
            raise ValueError(f"Expected windows inside 0..{len(flags) - 1} with start <= end. Received: ({start}, {end})")
    found = sum(bool(flags[start : end + 1].any()) for start, end in windows)
    outside = flags & ~intervals_to_mask(windows, len(flags))
    false_alarms = len(label_windows(outside))
    precision = found / (found + false_alarms) if found + false_alarms else math.nan
    recall = found / len(windows) if windows else math.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else (0.0 if windows else math.nan)
    return {"windows": len(windows), "found": found, "false_alarms": false_alarms, "precision": precision, "recall": recall, "f1": f1}


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


def _as_2d(series):
    series = np.asarray(series, dtype="float32")
    return series[:, None] if series.ndim == 1 else series


def sliding_windows(series, window):
    """All windows of ``window`` consecutive points, (num_windows, window, channels), a read-only view."""
    series = _as_2d(series)
    if len(series) < window:
        raise ValueError(f"Expected a series of at least window = {window} points. Received: {len(series)} points")
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
    quiet_below = 3.0  # robust standard deviations: closer than this to the recent median is never news

    def __init__(self, window=64):
        self.window = int(window)

    def fit(self, normal_series, **unused):
        return self

    def score(self, series):
        series = _as_2d(series).astype("float64")
        past = sliding_windows(series, self.window)[:-1]  # past[i] holds points i .. i + window - 1
        median = np.median(past, axis=1)
        spread = 1.4826 * np.median(np.abs(past - median[:, None]), axis=1)
        spread = np.maximum(spread, 1e-3)  # a flat stretch would divide by zero; series are scaled to unit variance
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
            raise ValueError(f"Expected a normal part longer than window = {self.window}. Received: {len(self.reference)} points")
        return self

    @staticmethod
    def _znormalise(windows):
        centred = windows - windows.mean(axis=1, keepdims=True)
        spread = centred.std(axis=1, keepdims=True)
        return np.where(spread > 1e-8, centred / np.maximum(spread, 1e-8), 0.0)

    def window_scores(self, series, exclude_offset=None):
        """Nearest-neighbour distance of every window of ``series`` to the reference windows.

        ``exclude_offset``: when ``series`` starts at that index of the series the
        reference was cut from (e.g. 0: it *is* the reference), windows overlapping
        a reference window by more than half are not its neighbours (a trivial match).
        """
        series = _as_2d(series).astype("float64")
        distances = np.zeros(len(series) - self.window + 1)
        for channel in range(series.shape[1]):
            references = self._znormalise(sliding_windows(self.reference[:, channel], self.window)[..., 0])
            queries = self._znormalise(sliding_windows(series[:, channel], self.window)[..., 0])
            nearest = np.empty(len(queries))
            for block_start in range(0, len(queries), self.block_size):
                block = queries[block_start : block_start + self.block_size]
                correlation = block @ references.T / self.window
                if exclude_offset is not None:
                    query_index = exclude_offset + block_start + np.arange(len(block))[:, None]
                    trivial = np.abs(query_index - np.arange(len(references))[None, :]) < self.window // 2
                    correlation = np.where(trivial, -np.inf, correlation)
                nearest[block_start : block_start + len(block)] = correlation.max(axis=1)
            distances += np.sqrt(np.maximum(2 * self.window * (1 - nearest), 0.0))
        return distances / series.shape[1]

    def score(self, series, exclude_offset=None):
        if exclude_offset is None and np.array_equal(_as_2d(series), self.reference):
            exclude_offset = 0  # an audit: the series is its own reference, so skip self-matches
        window_scores = self.window_scores(series, exclude_offset)
        errors = np.repeat(window_scores[:, None], self.window, axis=1)
        return point_scores_from_window_errors(errors, np.arange(len(window_scores)), len(_as_2d(series)))

    def config(self):
        return {"window": self.window}


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
    return build_encoder_decoder((window, channels), (window, 1), channels, cell=cell, units=units, name="lstm_autoencoder")


def build_lstm_forecaster(window, channels, units=32, cell="lstm"):
    """Many-to-one network predicting the next point of every channel from the ``window`` points before it."""
    return build_many_to_one((window, channels), channels, cell=cell, units=units, name="lstm_forecaster")


def _select(examples, keep):
    """Rows ``keep`` (a boolean mask or indices) of ``(inputs, targets)``; inputs may be a list."""
    inputs, targets = examples
    inputs = [array[keep] for array in inputs] if isinstance(inputs, list) else inputs[keep]
    return inputs, targets[keep]


def evenly_spaced(examples, max_count):
    """At most ``max_count`` examples, evenly spaced in time, from ``(inputs, targets)`` arrays or lists of arrays."""
    count = len(examples[1])
    if count <= max_count:
        return examples
    return _select(examples, np.linspace(0, count - 1, max_count).round().astype(int))


class _RecurrentDetector:
    """Shared training loop: fit on windows of the normal part, early-stop on a held-out normal tail.

    Neighbouring windows overlap almost entirely, so a long normal part is
    thinned to ``max_windows`` evenly spaced windows: the training time stays
    bounded and little is lost.
    """

    max_windows = 2000
    quiet_below = 0.1  # standard deviations of the scaled series: an error this small is not news

    def __init__(self, window=64, units=32, epochs=30, batch_size=64, model=None):
        self.window, self.units, self.epochs, self.batch_size = int(window), units, epochs, batch_size
        self.model = model
        self.epochs_run = 0

    def fit(self, normal_series, validation_series=None, max_seconds=None):
        """Fit on windows of ``normal_series`` (timesteps, channels).

        Early stopping watches ``validation_series`` when given (a monitor's
        held-out normal tail); otherwise every tenth window is held out (an audit).
        """
        normal_series = _as_2d(normal_series)
        if self.model is None:
            self.model = self.build(normal_series.shape[1])
            self.model.compile(optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0), loss="mse")
        examples = evenly_spaced(self.examples(normal_series), self.max_windows)
        if validation_series is not None:
            train = examples
            validation = evenly_spaced(self.examples(_as_2d(validation_series)), self.max_windows // 2)
        else:
            every_tenth = np.arange(len(examples[1])) % 10 == 9
            train, validation = _select(examples, ~every_tenth), _select(examples, every_tenth)
        history = fit(self.model, train, validation, epochs=self.epochs, batch_size=self.batch_size,
                      patience=5, max_seconds=max_seconds)
        self.epochs_run = len(history.history["loss"])
        self.history = history
        return self

    def config(self):
        return {"window": self.window, "units": self.units}


class LSTMAutoencoder(_RecurrentDetector):
    """Scores each point by how badly the autoencoder rebuilds it, averaged over the windows covering it.
    """

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
        errors = ((rebuilt - windows) ** 2).mean(axis=2)  # (num_windows, window): squared error, mean over channels
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


# ---------------------------------------------------------------- one registry, one pipeline

DETECTORS = {
    "forecaster": LSTMForecaster,
    "autoencoder": LSTMAutoencoder,
    "zscore": RollingZScore,
    "discord": MatrixProfileDiscord,
}
RECURRENT = ("forecaster", "autoencoder")


def make_detector(name, window=64, units=32, epochs=30, batch_size=64, model=None):
    """A detector from :data:`DETECTORS` by name; the recurrent ones also take training settings.

    >>> make_detector("zscore", window=16).window
    16
    """
    if name not in DETECTORS:
        raise ValueError(f"Expected a detector in {sorted(DETECTORS)}. Received: {name!r}")
    if name in RECURRENT:
        return DETECTORS[name](window, units, epochs, batch_size, model=model)
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
    values = _as_2d(values)[:, 0].astype("float64")
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


def choose_window(length, default=64, period=None, min_window=4):
    """Window length for a series of ``length`` points: ``default`` when it fits, else shorter.

    A detector needs several windows to learn from, so a window is at most an
    eighth of the series; inside that limit a seasonal ``period`` is preferred
    (one whole cycle is the natural unit of normal behaviour).

    >>> choose_window(4000), choose_window(200), choose_window(200, period=24)
    (64, 25, 24)
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


@dataclass(frozen=True)
class AlarmSettings:
    """How scores become alarm intervals; stored with a saved run so new data is treated alike.

    Attributes:
        span: points in the exponentially weighted mean that smooths the scores.
        gap: alarms at most this many points apart merge into one.
        min_drop: pruning strength (see :func:`common.alarms.prune_intervals`).
        floor: no threshold below this; a score this small (in the scaled
            series' standard deviations) is never anomalous, however flat the rest.
    """

    span: int = 20
    gap: int = 40
    min_drop: float = 0.05
    floor: float = 0.1

    @classmethod
    def for_length(cls, length, **overrides):
        """Settings scaled to a series' length: smoothing over 0.5% of it, merging within 1%."""
        return cls(span=max(1, round(0.005 * length)), gap=max(1, round(0.01 * length)), **overrides)


@dataclass
class Detection:
    """What one detector found in one series.

    Attributes:
        scores: (timesteps,) raw scores; NaN where the detector cannot score.
        smoothed: (timesteps,) the scores after smoothing; alarms come from these.
        threshold: the smoothed score above which a point alarms.
        alarms: inclusive ``(start, end)`` index pairs of alarm intervals.
        scored_from: first index that counts: 0 in an audit, the end of the
            normal prefix when monitoring (points before it were fitted on).
        fitted_on: points the detector was fitted on (0 when reloaded).
    """

    name: str
    detector: object
    scaler: StandardScaler
    settings: AlarmSettings
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


def audit(values, name="forecaster", window=64, settings=None, seed=42, **training):
    """Audit a recorded series: fit on all of it, unsupervised, and mark what stands out.

    This is how the published pipelines (Hundman et al. 2018; sintel-dev/Orion)
    score a recorded series: the detector learns the series' usual behaviour
    from the whole of it (anomalies are rare, so they barely shape it), and the
    threshold comes from the scores themselves (:func:`common.alarms.dynamic_threshold`).

    Args:
        values: (timesteps, channels) raw values.
        name: a key of :data:`DETECTORS`.
        window: points per window.
        settings: an :class:`AlarmSettings`; default scaled to the series' length.
        training: ``units``, ``epochs``, ``batch_size`` for the recurrent detectors.
    """
    values = _as_2d(values).astype("float64")
    detector = make_detector(name, window, **training)
    settings = settings or AlarmSettings.for_length(len(values), floor=detector.quiet_below)
    scaler = StandardScaler().fit(values)
    scaled = scaler.transform(values).astype("float32")
    set_seed(seed)
    started = time.perf_counter()
    detector.fit(scaled)
    fit_seconds = time.perf_counter() - started
    detection = rescore(values, name, detector, scaler, settings, threshold=None)
    detection.fitted_on, detection.fit_seconds = len(values), fit_seconds
    return detection


def monitor(values, normal_end, name="forecaster", window=64, settings=None, seed=42,
            holdout_fraction=0.25, threshold_factor=1.5, **training):
    """Monitor: fit on a normal prefix, then alarm only on the points after it.

    The prefix ``[0, normal_end)`` is assumed free of anomalies. The detector is
    fitted on its first part; its last ``holdout_fraction`` is held out, and the
    threshold is ``threshold_factor`` times the highest smoothed score there:
    a margin above the strangest normal behaviour the detector has not fitted.

    Returns:
        A :class:`Detection` whose alarms all lie at or after ``normal_end``.
    """
    values = _as_2d(values).astype("float64")
    detector = make_detector(name, window, **training)
    settings = settings or AlarmSettings.for_length(normal_end, floor=detector.quiet_below)
    fit_end = normal_end - int(round(normal_end * holdout_fraction))
    if fit_end < 2 * window or normal_end - fit_end < window or len(values) - normal_end < 1:
        raise ValueError(
            f"Expected a normal prefix of at least 3 windows of {window} points (2 to fit, 1 held "
            f"out) and points after it. Received: a prefix of {normal_end} of {len(values)} points"
        )
    scaler = StandardScaler().fit(values[:fit_end])
    scaled = scaler.transform(values).astype("float32")
    set_seed(seed)
    started = time.perf_counter()
    detector.fit(scaled[:fit_end], validation_series=scaled[fit_end:normal_end])
    fit_seconds = time.perf_counter() - started
    # Score the prefix on its own, so no window reaching past it shapes the threshold.
    held_out = smooth(detector.score(scaled[:normal_end]), settings.span)[fit_end:]
    held_out = held_out[~np.isnan(held_out)]
    if held_out.size == 0:
        raise ValueError("Expected scored points in the held-out normal part. Received: none")
    threshold = max(threshold_factor * float(held_out.max()), settings.floor)
    detection = rescore(values, name, detector, scaler, settings, threshold, scored_from=normal_end)
    detection.fitted_on, detection.fit_seconds = fit_end, fit_seconds
    return detection


def rescore(values, name, detector, scaler, settings, threshold, scored_from=0):
    """Score ``values`` with a fitted detector and scaler; alarm above ``threshold``.

    ``threshold=None`` chooses one from the scores (an audit). Alarms before
    ``scored_from`` are dropped: those points were the detector's training data.
    """
    values = _as_2d(values).astype("float64")
    scaled = scaler.transform(values).astype("float32")
    started = time.perf_counter()
    scores = detector.score(scaled)
    score_seconds = time.perf_counter() - started
    smoothed = smooth(scores, settings.span)
    counted = smoothed.copy()
    counted[:scored_from] = np.nan
    if threshold is None:
        alarms, threshold = find_alarms(counted, None, settings.gap, settings.min_drop)
        if threshold < settings.floor:  # a near-perfect fit: its tiny errors are not anomalies
            alarms, threshold = find_alarms(counted, settings.floor, settings.gap, settings.min_drop)
    else:  # a fixed threshold was set on normal data: every interval above it alarms
        alarms, threshold = find_alarms(counted, threshold, settings.gap, min_drop=None)
    return Detection(name, detector, scaler, settings, scores, smoothed, threshold, alarms,
                     scored_from=scored_from, score_seconds=score_seconds)
