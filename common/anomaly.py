"""Time-series anomaly detection: four detectors, one threshold rule, and honest scoring.

Every detector turns a series (timesteps, channels), already scaled by
statistics of its normal training part, into one score per point: higher
means stranger. None of them ever sees a label.

| detector                    | a point's score                                                        |
|-----------------------------|------------------------------------------------------------------------|
| ``RollingZScore``           | distance from the median of the previous ``window`` points, in MADs    |
| ``MatrixProfileDiscord``    | distance from each window covering it to its nearest normal window     |
| ``LSTMAutoencoder``         | its reconstruction error, averaged over the windows covering it        |
| ``LSTMForecaster``          | the error of predicting it from the ``window`` points before it        |

The threshold is chosen on normal data the detector was not fitted on
(:func:`threshold_from_normal`); labels are used only by the scoring functions:
event-level precision, recall and F1 (:func:`event_scores`), point-level ROC
AUC (:func:`roc_auc`) and the UCR archive's top-1 rule (:func:`ucr_top1`).

>>> windows = label_windows([0, 1, 1, 0, 0, 0, 1, 0])
>>> windows
[(1, 2), (6, 6)]
>>> event_scores([0, 0, 1, 0, 1, 1, 0, 0], windows)["recall"]
0.5
"""

import math

import keras
import numpy as np

from common.models import build_many_to_one
from common.seq2seq import build_encoder_decoder
from common.training import fit

# ---------------------------------------------------------------- events and windows


def label_windows(is_anomaly):
    """Contiguous runs of 1 in a 0/1 sequence, as inclusive ``(start, end)`` index pairs.

    >>> label_windows([1, 1, 0, 1])
    [(0, 1), (3, 3)]
    """
    flags = np.asarray(is_anomaly).astype(bool).astype(int)
    edges = np.diff(np.concatenate([[0], flags, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(int(start), int(end)) for start, end in zip(starts, ends)]


def windows_to_mask(windows, length):
    """The inverse of :func:`label_windows`: a boolean mask with each inclusive window set."""
    mask = np.zeros(length, dtype=bool)
    for start, end in windows:
        mask[start : end + 1] = True
    return mask


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
    outside = flags & ~windows_to_mask(windows, len(flags))
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


def flagged_events(flags, scores, offset=0):
    """Each contiguous run of flags as ``{"start", "end", "peak_score"}`` (indices shifted by ``offset``)."""
    scores = np.asarray(scores, dtype="float64")
    return [
        {"start": start + offset, "end": end + offset, "peak_score": float(np.nanmax(scores[start : end + 1]))}
        for start, end in label_windows(flags)
    ]


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


def evenly_spaced(examples, max_count):
    """At most ``max_count`` examples, evenly spaced in time, from ``(inputs, targets)`` arrays or lists of arrays."""
    inputs, targets = examples
    count = len(targets)
    if count <= max_count:
        return examples
    keep = np.linspace(0, count - 1, max_count).round().astype(int)

    def pick(arrays):
        return [array[keep] for array in arrays] if isinstance(arrays, list) else arrays[keep]

    return pick(inputs), pick(targets)


class _RecurrentDetector:
    """Shared training loop: fit on windows of the normal part, early-stop on a held-out normal tail.

    Neighbouring windows overlap almost entirely, so a long normal part is
    thinned to ``max_windows`` evenly spaced windows: the training time stays
    bounded and little is lost.
    """

    max_windows = 2000

    def __init__(self, window=64, units=32, epochs=30, batch_size=64, model=None):
        self.window, self.units, self.epochs, self.batch_size = int(window), units, epochs, batch_size
        self.model = model
        self.epochs_run = 0

    def fit(self, normal_series, validation_series=None, max_seconds=None):
        normal_series = _as_2d(normal_series)
        if self.model is None:
            self.model = self.build(normal_series.shape[1])
            self.model.compile(optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0), loss="mse")
        train = evenly_spaced(self.examples(normal_series), self.max_windows)
        validation = None
        if validation_series is not None:
            validation = evenly_spaced(self.examples(_as_2d(validation_series)), self.max_windows // 2)
        history = fit(self.model, train, validation, epochs=self.epochs, batch_size=self.batch_size, patience=5,
                      monitor="val_loss" if validation is not None else "loss", max_seconds=max_seconds)
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
    """Scores each point by the squared error of predicting it from the ``window`` points before it.

    ``smooth``: average the error over this many points (this one and those
    before it), so one unlucky prediction in noisy data is not yet an event.
    """

    name = "LSTM forecaster"

    def __init__(self, window=64, units=32, epochs=30, batch_size=64, model=None, smooth=1):
        super().__init__(window, units, epochs, batch_size, model)
        self.smooth = int(smooth)

    def build(self, channels):
        return build_lstm_forecaster(self.window, channels, self.units)

    def examples(self, series):
        windows = np.ascontiguousarray(sliding_windows(series[:-1], self.window))
        return windows, series[self.window :]

    def score(self, series, batch_size=1024):
        series = _as_2d(series)
        inputs, targets = self.examples(series)
        predicted = self.model.predict(inputs, batch_size=batch_size, verbose=0)
        errors = ((predicted - targets) ** 2).mean(axis=1)
        # Trailing mean over `smooth` points; the first few average over fewer.
        cumulative = np.concatenate([[0.0], np.cumsum(errors, dtype="float64")])
        ends = np.arange(1, len(errors) + 1)
        begins = np.maximum(ends - self.smooth, 0)
        scores = np.full(len(series), np.nan)
        scores[self.window :] = (cumulative[ends] - cumulative[begins]) / (ends - begins)
        return scores

