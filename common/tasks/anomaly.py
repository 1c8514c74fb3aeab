"""Time-series anomaly detection: a series in, alarm intervals out, in two ways.

The detectors (:mod:`common.tasks.detectors`) turn a scaled series into one
score per point; :mod:`common.tasks.alarms` turns scores into alarm intervals
and scores those against labels. This module runs them on a series, averaged
down to about 500 points first (:func:`aggregate`), each way returning a
:class:`Detection`:

- :func:`audit` a recorded series: fit on all of it and mark what stands out,
  with a threshold chosen from the scores by one of :data:`ALARM_RULES`.
- :func:`monitor`: fit on a normal prefix, set the threshold on a held-out part
  of it, and alarm only after it. :func:`rescore` applies a fitted detector,
  its scaler and its threshold to new data; :func:`save_detector` and
  :func:`rescore_saved` keep and reuse them. :func:`score_delay` says how many
  readings a monitor waits before a reading's score is final.

Around them, what an app needs: the series of a run (:func:`read_bundled`,
:func:`read_labelled`, :func:`plan_window`), the tables a person reads
(:func:`compare_detectors`, :func:`compare_files`) and the files a run saves
(:func:`save_series`, :func:`save_files`).
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.data.csv_series import read_label_windows, read_series_csv
from common.data.windows import StandardScaler, runs_of_true
from common.models.training import set_seed
from common.report.metrics import print_table
from common.report.plots import plot_alarms
from common.tasks.alarms import (
    find_alarms,
    hundman_alarms,
    intervals_to_mask,
    overlap_scores,
    pooled_scores,
    rate_alarms,
    roc_auc,
    smooth,
    threshold_from_normal,
)
from common.tasks.detectors import (
    DETECTORS,
    NAMES,
    RECURRENT,
    as_2d,
    dominant_period,
    make_detector,
    nonnegative_errors,
)

# name: (file in the repository's data/, length of its known normal prefix or None); see
# data/README.md.
BUNDLED = {
    "machine-temperature": ("anomaly_nab_machine_temperature.csv.gz", None),
    "internal-bleeding16": ("anomaly_internal_bleeding16.csv.gz", 1200),
    "ecg-diff-count-3": ("anomaly_ecg_diff_count_3.csv.gz", 10000),
    "daphnet-s06r02e0": ("anomaly_daphnet_s06r02e0.csv.gz", 3520),
}
BASELINES = ("zscore", "discord", "holt-winters")  # shown beside the chosen detector
# How an audit chooses alarms from the scores (Settings.rule): a threshold set for a rate of
# false alarms per 1,000 points (alarms.rate_alarms, the default), the strongest few above
# median + 3 MADs (alarms.find_alarms), or Hundman et al.'s rule (alarms.hundman_alarms).
ALARM_RULES = ("rate", "strongest", "hundman")
# The default rate, one alarm by chance per 2,000 readings, and Settings.base_z below were
# measured by leave-one-folder-out on NAB's development folders (bench/anomaly.py --lofo).
FALSE_ALARMS_PER_1000 = 0.5

# ---------------------------------------------------------------- the series of a run


def read_bundled(folder, name):
    """A bundled series from ``folder`` (data/) by its :data:`BUNDLED` name.

    Its ``normal_end`` is the length of its known normal prefix, or None.
    """
    file_name, normal_end = BUNDLED[name]
    found = read_series_csv(Path(folder) / file_name, name=name)
    found.normal_end = normal_end
    return found


def read_labelled(path, name, labels=None, one_series=True, **reading):
    """One CSV series (``reading``: :func:`read_series_csv`'s options), checked for scaling.

    ``labels``: a JSON or CSV file of ``[start, end]`` windows (NAB's
    ``combined_windows.json`` too); its windows for ``name`` become the series'
    ``label_windows`` and ``is_anomaly``; ``one_series=False`` when the labels file serves
    several series (then it must name them). Raises ValueError naming the file.
    """
    found = read_series_csv(path, **reading, name=name)
    windows = None
    if labels is not None:
        windows = read_label_windows(labels, name, found.times, one_series, found.dayfirst)
    if windows is not None:
        found.label_windows = windows
        found.is_anomaly = intervals_to_mask(windows, len(found))
    elif labels is not None:  # a labels file for other series: this one is scored unlabelled
        found.notes.append(f"{Path(labels).name} names no windows for this series: no labels")
    with np.errstate(all="ignore"):  # values near 1e308: their spread overflows
        spread = np.std(found.values, axis=0)
    if not np.isfinite(spread).all():
        raise ValueError(
            f"{name}: values up to {np.abs(found.values).max():.3g} are too large to scale; "
            "divide the series by a power of ten first"
        )
    return found


def injected_series(length=20_000, anomalies=20, period=250, seed=0):
    """A seasonal series with ``anomalies`` level shifts injected: ``(values, windows)``.

    A daily-like sine of ``period`` points plus noise; each anomaly raises
    ``length // 200`` points by 3 standard deviations of the noise-free wave,
    at non-overlapping places. ``anomalies=0`` gives the clean series. Long
    on purpose: an alarm rule must find many anomalies where there are many,
    and a budget of "the few strongest per file" cannot.

    >>> values, windows = injected_series(4000, anomalies=3, seed=1)
    >>> values.shape, len(windows), windows[0][1] - windows[0][0] + 1
    ((4000, 1), 3, 20)
    """
    rng = np.random.default_rng(seed)
    steps = np.arange(length)
    values = np.sin(2 * np.pi * steps / period) + 0.2 * rng.standard_normal(length)
    width = length // 200
    slots = rng.choice(np.arange(2, length // (2 * width) - 1), anomalies, replace=False)
    windows = sorted((int(slot * 2 * width), int(slot * 2 * width + width - 1)) for slot in slots)
    for start, end in windows:
        values[start : end + 1] += 3 * np.sqrt(0.5)  # the sine's standard deviation is sqrt(1/2)
    return values[:, None], windows


def plan_window(values, window=48, normal_end=None):
    """``(points, window, period)``: what a detector fits on, and the window it can read there.

    Detectors read the series averaged down to about 500 points; ``points``
    counts those in the part fitted on (all of it, or ``[0, normal_end)``),
    ``period`` is their seasonal period or None, and ``window`` is the given
    one when it fits, else shorter (:func:`choose_window`).
    """
    fitted = normal_end if normal_end else len(values)
    coarse = aggregate(values[:fitted], aggregation_factor(fitted))
    period = dominant_period(coarse, max_lag=len(coarse) // 8)
    return len(coarse), choose_window(len(coarse), window, period), period


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
    values = as_2d(values, "float64")
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
        z: the ``"strongest"`` rule's candidates lie this many robust standard deviations
            above the median score; the ``"rate"`` rule's clusters start at ``base_z``.
        max_alarms: the ``"strongest"`` rule keeps at most this many alarms, the strongest ...
        min_ratio: ... and both it and ``"rate"`` only those whose peak reaches this share of
            the strongest peak.
        floor: no threshold below this score.
        false_alarms: the ``"rate"`` rule's threshold allows about this many alarms by chance
            per 1,000 raw points (:func:`common.tasks.alarms.rate_alarms`).
        rule: how an audit chooses its alarms, one of :data:`ALARM_RULES`: ``"rate"``
            (false_alarms, base_z, min_ratio), ``"strongest"`` (z, max_alarms, min_ratio) or
            ``"hundman"`` (Hundman et al.'s dynamic threshold and pruning on the detector's
            errors, which become its scores; each interval padded by ``gap // 2`` points on
            both sides instead of merging).
    """

    factor: int = 1
    span: int = 5
    gap: int = 15
    z: float = 3.0
    max_alarms: int = 2
    min_ratio: float = 0.5
    floor: float = 0.0
    rule: str = "rate"
    false_alarms: float = FALSE_ALARMS_PER_1000
    base_z: float = 2.0  # lower lines score higher on overlap F1 by flagging far more points

    def __post_init__(self):
        if self.rule not in ALARM_RULES:
            raise ValueError(f"Expected rule in {ALARM_RULES}. Received: rule={self.rule!r}")

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


def audit(
    values,
    name="hybrid",
    window=48,
    settings=None,
    seed=42,
    rule="rate",
    false_alarms=FALSE_ALARMS_PER_1000,
    max_alarms=2,
    **training,
):
    """Audit a recorded series: fit on all of it, unsupervised, and mark what stands out.

    This is how the published pipelines (Hundman et al. 2018; sintel-dev/Orion)
    score a recorded series: the detector learns the series' usual behaviour
    from the whole of it (anomalies are rare, so they barely shape it), and the
    threshold comes from the scores themselves: by default the one at which
    about ``false_alarms`` per 1,000 points would pass by chance
    (:func:`common.tasks.alarms.rate_alarms`).

    Args:
        values: (timesteps, channels) raw values.
        name: a key of :data:`DETECTORS`.
        window: aggregated points per window.
        settings: a :class:`Settings`; default scaled to the series' length.
        rule, false_alarms, max_alarms: with the default settings, choose alarms by this
            rule (:data:`ALARM_RULES`): at this many false alarms per 1,000 points
            (``"rate"``), or at most this many alarms (``"strongest"``).
        training: ``units``, ``epochs``, ``batch_size``, ``verbose`` for the recurrent detectors.
    """
    values = as_2d(values, "float64")  # float32 would lose a spike on a level of 1e10
    detector = make_detector(name, window, **training)
    settings = settings or Settings.for_length(
        len(values),
        floor=detector.quiet_below,
        rule=rule,
        false_alarms=false_alarms,
        max_alarms=max_alarms,
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
    values = as_2d(values, "float64")
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
    threshold = max(threshold_from_normal(held_out, threshold_factor), settings.floor)
    detection = rescore(
        values, name, detector, scaler, settings, threshold, scored_from=prefix * settings.factor
    )
    detection.fitted_on, detection.fit_seconds = fit_end * settings.factor, fit_seconds
    return detection


def rescore(values, name, detector, scaler, settings, threshold, scored_from=0):
    """Score ``values`` with a fitted detector and scaler; alarm above ``threshold``.

    ``threshold=None`` chooses one from the scores (an audit) by ``settings.rule``;
    with ``"hundman"`` (set by an audit, or kept by a saved one) the scores are the
    detector's errors of at least 0
    (:func:`common.tasks.detectors.nonnegative_errors`). Alarms before
    ``scored_from`` (a raw index) are dropped: those points were the detector's
    training data.
    """
    values = as_2d(values, "float64")
    coarse = scaler.transform(aggregate(values, settings.factor)).astype("float32")
    # Hundman's rule reads errors, not scores; so does a saved run's threshold set by it.
    hundman = settings.rule == "hundman"
    started = time.perf_counter()
    scores = nonnegative_errors(detector, coarse) if hundman else detector.score(coarse)
    score_seconds = time.perf_counter() - started
    smoothed = smooth(scores, settings.span)
    counted = smoothed.copy()
    counted[: -(-scored_from // settings.factor)] = np.nan
    alarms, threshold = choose_alarms(counted, settings, threshold)
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


def choose_alarms(smoothed, settings, threshold=None):
    """``(intervals, threshold)`` on aggregated, smoothed scores: every run above a fixed
    ``threshold`` (a monitor's), or, with None, the audit's ``settings.rule``.

    NaN scores never alarm. Intervals are aggregated indices (:func:`expand_intervals`).
    """
    if threshold is not None:  # set on normal data: every interval above it alarms
        return find_alarms(smoothed, threshold, settings.gap, max_alarms=None)
    if settings.rule == "hundman":  # padded by half the gap: events then join at that distance
        return hundman_alarms(smoothed, padding=settings.gap // 2)
    if settings.rule == "rate":
        return rate_alarms(
            smoothed,
            settings.false_alarms,
            settings.factor,
            settings.gap,
            settings.base_z,
            settings.min_ratio,
            settings.floor,
        )
    return find_alarms(
        smoothed,
        None,
        settings.gap,
        settings.z,
        settings.max_alarms,
        settings.min_ratio,
        settings.floor,
    )


def detect(
    values,
    name="hybrid",
    window=48,
    normal_end=None,
    rule="rate",
    false_alarms=FALSE_ALARMS_PER_1000,
    max_alarms=2,
    **options,
):
    """An :func:`audit` of ``values``, or with a ``normal_end`` a :func:`monitor` of what follows it.

    ``rule``, ``false_alarms`` and ``max_alarms`` are the audit's; ``options``:
    ``seed`` and the training settings (``units``, ``epochs``, ...).
    """
    if normal_end is None:
        return audit(
            values,
            name,
            window,
            rule=rule,
            false_alarms=false_alarms,
            max_alarms=max_alarms,
            **options,
        )
    return monitor(values, normal_end, name, window, **options)


def lstm_alone(values, detection):
    """An audit by a hybrid detection's LSTM alone, from the same fit: what the mix adds shows.

    ``detection`` is a ``"hybrid"`` audit (:class:`common.tasks.detectors.LSTMHoltWinters`);
    its LSTM scores ``values`` again and the same rule chooses that score's alarms.
    """
    lstm = detection.detector.lstm
    alone = rescore(values, "bidirectional", lstm, detection.scaler, detection.settings, None)
    alone.fitted_on, alone.fit_seconds = detection.fitted_on, detection.fit_seconds
    return alone


def score_delay(detection):
    """Raw readings that may follow a reading before its score is final: a monitor's delay.

    A score reads the reading's block of ``settings.factor`` readings and the
    detector's ``looks_ahead`` blocks after it, so up to ``(looks_ahead + 1) *
    factor - 1`` readings after the reading itself. Until they arrive, the
    newest readings are scored from what there is (the bidirectional LSTM
    from the past alone), and their scores change as data arrives.
    """
    return (detection.detector.looks_ahead + 1) * detection.settings.factor - 1


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


def compare_detectors(series, detections, chosen):
    """Print one series' table (a row per detection) and how ``chosen`` fares; return the rows."""
    rows = {NAMES[name]: evaluate(found, series.is_anomaly) for name, found in detections.items()}
    labelled = series.is_anomaly is not None
    how = (
        " scored against labelled windows by overlap"
        if labelled
        else " (no labels: nothing to score against)"
    )
    print()
    print_table(rows, digits=3, title=f"{series.name}: alarm intervals{how}")
    mine = detections[chosen]
    origin = "from held-out normal data"
    if mine.scored_from == 0:
        origin = {
            "rate": f"set for {mine.settings.false_alarms:g} false alarms per 1,000 readings",
            "strongest": f"the {mine.settings.max_alarms} strongest above median + "
            f"{mine.settings.z:g} robust std",
            "hundman": "Hundman et al.'s dynamic threshold",
        }[mine.settings.rule]
    print(
        f"\n{len(mine.alarms)} alarm interval(s); threshold {mine.threshold:.4g} on the "
        f"smoothed score ({origin})"
    )
    if labelled and series.is_anomaly.any() and len(rows) > 1:
        f1 = rows[NAMES[chosen]]["f1"]
        best = max(rows[NAMES[name]]["f1"] for name in BASELINES if name in detections)
        verdict = "beats" if f1 > best else "ties with" if f1 == best else "does NOT beat"
        print(
            f"The {NAMES[chosen]} {verdict} the best baseline on overlap F1 ({f1:.3f} vs {best:.3f})."
        )
    return rows


def compare_files(results, name, seconds):
    """Print a table of one detector on several series (``(series, detection)`` pairs), pooled."""
    rows = {series.name: evaluate(found, series.is_anomaly) for series, found in results}
    labelled = [row for row in rows.values() if "tp" in row]
    if labelled:
        alarms = sum(row["alarms"] for row in rows.values())
        rows["pooled"] = pooled_scores(labelled) | {"alarms": alarms}
    print()
    print_table(
        rows,
        columns=["alarms", "tp", "fp", "fn", "precision", "recall", "f1"],
        digits=3,
        title=f"{NAMES[name]}: alarm intervals per file, scored by overlap with labelled windows "
        f"({seconds:.0f} s)",
    )
    return rows


# ---------------------------------------------------------------- what a run saves


def save_series(folder, series, detection, title):
    """``scores.csv``, ``anomalies.csv`` and ``anomalies.png`` of one series in ``folder``."""
    write = dict(index=False, float_format="%.9g")
    scores_table(series, detection).to_csv(folder / "scores.csv", **write)
    alarms_table(series, detection).to_csv(folder / "anomalies.csv", **write)
    plot_alarms(folder / "anomalies.png", series, detection, title)


def save_files(folder, results, rows):
    """Several series: a sub-folder of :func:`save_series` files each, and ``summary.csv``."""
    for series, detection in results:
        name = series.name.replace("/", "__").removesuffix(".gz").removesuffix(".csv")
        (folder / name).mkdir(parents=True, exist_ok=True)
        save_series(folder / name, series, detection, f"{series.name}: {NAMES[detection.name]}")
    pd.DataFrame.from_dict(rows, orient="index").to_csv(folder / "summary.csv", float_format="%.6g")


# ---------------------------------------------------------------- saved detectors


def save_detector(folder, detection, **extra):
    """Save what scoring new data needs: ``model.keras`` (recurrent detectors) and ``config.json``.

    ``config.json`` holds the detector's name, window, state (error scales,
    reference windows, smoothing weights), the scaler, the settings and the
    threshold, plus any JSON-ready ``extra`` (the app adds its name and columns).
    """
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


def read_saved_run(folder):
    """A saved run's ``config.json`` contents; ValueError when ``folder`` holds no anomaly run."""
    saved, app = {}, None
    try:
        saved = json.loads((Path(folder) / "config.json").read_text())
        app = saved["app"]
        if app == "anomaly" and saved["detector"] in DETECTORS:
            return saved
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    if isinstance(app, str) and app.isidentifier() and app != "anomaly":
        raise ValueError(f"a run of {app}.py, not of anomaly.py")
    if app == "anomaly" and isinstance(saved.get("files"), int):  # see the app's save_many
        raise ValueError(
            f"a run over {saved['files']} files keeps no detector (each file had its own); "
            "run one file to save a detector that can score new data"
        )
    scored_with = saved.get("scored_with") if app == "anomaly" else None
    if isinstance(scored_with, str):  # a run that scored new data holds no detector of its own
        raise ValueError(
            f"expected a run that fitted a detector; received scores made with the run in "
            f"{scored_with} (load that run instead)"
        )
    raise ValueError("no anomaly run there (config.json missing or damaged)")


def describe_step(step):
    """A series' sampling step in words, as saved with a run and compared when it scores new data.

    >>> describe_step(pd.Timedelta(minutes=5)), describe_step(pd.Timedelta(hours=1)), describe_step(1)
    ('5 minutes', '1 hour', '1 step')
    """
    if not hasattr(step, "total_seconds"):  # a series indexed by integer steps
        return f"{step} step{'s' if step != 1 else ''}"
    seconds = step.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


def step_warning(series, saved):
    """One line when ``series`` is sampled at another step than the saved run was fitted on, else None.

    A window of 48 readings is 4 hours of 5-minute data and 2 days of hourly
    data: the detector still scores, but what it learnt as normal no longer applies.
    """
    fitted = saved.get("sampling_step")
    if not isinstance(fitted, str):  # saved before runs kept their step
        return None
    now = describe_step(series.step)
    if now == fitted:
        return None
    return (
        f"{series.name}: readings {now} apart, but the saved detector was fitted on readings "
        f"{fitted} apart; its scores may mislead (resample the series to one reading every {fitted})"
    )


def rescore_saved(series, folder, saved, model=None):
    """Score ``series`` with the run saved in ``folder`` (``saved``: its config.json); nothing is refitted.

    ``model``: its loaded ``model.keras`` (recurrent detectors). Raises ValueError
    when the saved run is damaged or does not fit the series.
    """
    try:
        detector, scaler, settings, threshold = load_detector(folder, saved, model)
        channels = len(saved["value_cols"]) if isinstance(saved["value_cols"], list) else None
    except (ValueError, KeyError) as error:
        raise ValueError(f"config.json is damaged ({error})") from None
    if channels != len(series.columns):
        raise ValueError(
            f"{series.name}: the saved detector reads {channels} channel(s); "
            f"this series has {len(series.columns)}"
        )
    values, names = series.values, [str(name) for name in saved["value_cols"]]
    if channels > 1 and names != list(series.columns):  # one channel may be named anything
        if sorted(names) != sorted(series.columns):  # each scaler must meet its own channel
            raise ValueError(
                f"{series.name}: the saved detector reads the channels {', '.join(names)}; this "
                f"series has {', '.join(series.columns)}"
            )
        values = values[:, [series.columns.index(name) for name in names]]  # the saved order
    needed = (saved["window"] + 2) * settings.factor
    if len(series) < needed:
        raise ValueError(f"{series.name}: {len(series)} points; the saved detector needs {needed}")
    try:  # a saved run is a file like any other: a model and settings that do not match end here
        return rescore(values, saved["detector"], detector, scaler, settings, threshold)
    except Exception as error:  # noqa: BLE001  Keras and NumPy raise many types for a bad model
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise ValueError(f"model.keras and config.json do not match ({reason})") from None
