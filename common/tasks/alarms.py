"""From anomaly scores to alarm intervals, and how alarm intervals are scored.

A detector gives one score per point. A person acts on *intervals*: "the
disk misbehaved from 14:05 to 15:20". This module turns scores into intervals
in a few short steps, then scores intervals the way the field does.

1. :func:`smooth` the scores (an exponentially weighted mean), so one noisy
   point is not yet an event.
2. A threshold: fixed, from normal data (monitoring, :func:`threshold_from_normal`),
   or chosen from the scores themselves (an audit): :func:`robust_threshold`
   (median + z MADs, from :func:`robust_center_and_scale`), or
   :func:`dynamic_threshold` (Hundman et al., KDD 2018).
3. :func:`merge_intervals` closer than a gap into one alarm.
4. Keep the alarms that stand out: :func:`keep_strongest` (a budget of a few
   alarms, each at least half as strong as the strongest), or Hundman et al.'s
   :func:`prune_intervals`.

Two audit rules come out of these steps: :func:`find_alarms` (median + 3 MADs,
merge, keep the strongest; the app's default) and :func:`hundman_alarms`
(Hundman et al.'s rule as published: dynamic threshold, padded intervals,
pruning with p = 0.13). Hundman's rule reads *errors*, never below 0: its threshold is
chosen by relative drops in their mean, and a shifted score (a robust z-score,
centred on 0) moves that choice. ``bench/anomaly.py`` measures both rules on
the same fitted detectors.

Scoring (:func:`overlap_scores`): a labelled window is *found* when any alarm
interval overlaps it; an alarm interval that overlaps no window is a *false
positive*. This is the rule of the NAB-based comparisons in sintel-dev/Orion.

>>> scores = np.array([0, 0, 9, 8, 0, 0, 0, 1, 0, 0], dtype=float)
>>> intervals_above(scores, threshold=5)
[(2, 3)]
>>> overlap_scores([(2, 3), (7, 7)], windows=[(3, 5)])["precision"]
0.5
>>> event_scores([0, 0, 1, 0, 1, 1, 0, 0], runs_of_true([0, 1, 1, 0, 0, 0, 1, 0]))["recall"]
0.5
"""

import math

import numpy as np
import pandas as pd
from scipy.stats import genpareto, median_abs_deviation
from sklearn.metrics import roc_auc_score

from common.data.windows import runs_of_true

# ---------------------------------------------------------------- intervals


def intervals_above(scores, threshold):
    """Contiguous runs of ``scores > threshold`` as inclusive ``(start, end)`` index pairs.

    NaN scores (points a detector could not score) never alarm.

    >>> intervals_above([0, 3, 4, 0, 5], threshold=2)
    [(1, 2), (4, 4)]
    """
    scores = np.nan_to_num(np.asarray(scores, dtype="float64"), nan=-np.inf)
    return runs_of_true(scores > threshold)


def intervals_to_mask(intervals, length):
    """The inverse of :func:`runs_of_true`: a boolean mask with each inclusive interval set."""
    mask = np.zeros(length, dtype=bool)
    for start, end in intervals:
        mask[start : end + 1] = True
    return mask


def merge_intervals(intervals, gap):
    """Merge sorted intervals separated by at most ``gap`` points.

    >>> merge_intervals([(0, 2), (5, 6), (20, 21)], gap=3)
    [(0, 6), (20, 21)]
    """
    merged = []
    for start, end in sorted(intervals):
        if merged and start - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# ---------------------------------------------------------------- thresholds


def smooth(scores, span):
    """Exponentially weighted moving mean of ``scores`` over about ``span`` points; NaN stays NaN.

    >>> smooth([0.0, 0.0, 3.0, 0.0], span=1)
    array([0., 0., 3., 0.])
    """
    scores = np.asarray(scores, dtype="float64")
    if span <= 1:
        return scores.copy()
    smoothed = pd.Series(scores).ewm(span=span, ignore_na=True).mean().to_numpy()
    return np.where(np.isnan(scores), np.nan, smoothed)


# Hundman et al.'s minimum relative drop between neighbouring peaks (their p; telemanom's config).
HUNDMAN_MIN_DROP = 0.13


def _nonnegative(errors, what):
    """``errors`` as float64 with NaN dropped; ValueError if any is below 0."""
    values = np.asarray(errors, dtype="float64")
    values = values[~np.isnan(values)]
    if values.size and values.min() < 0:
        raise ValueError(
            f"Expected {what} of at least 0 (Hundman et al.'s rule compares relative drops, "
            f"which a shifted score changes). Received: a minimum of {values.min():.4g}"
        )
    return values


def dynamic_threshold(errors, z_values=np.arange(2.0, 10.5, 0.5)):
    """Choose a threshold from the errors alone (Hundman et al., KDD 2018, section 3.2).

    For each candidate ``epsilon = mean + z * std``, cutting off the errors
    above it lowers the mean and the standard deviation of what remains. The
    chosen ``epsilon`` maximises

        (drop in mean / mean + drop in std / std) / (errors above + runs above ** 2)

    so a few clear intervals beat many scattered points. No label is used.
    The relative drops assume errors measured from 0 (absolute or squared
    prediction errors): adding a constant to every error changes the choice.

    >>> round(dynamic_threshold([1.0] * 8 + [9.0, 1.0]), 6)  # mean 1.8, std 2.4; z = 2 cuts the 9
    6.6

    Args:
        errors: (timesteps,) smoothed errors, each at least 0; NaN is ignored.
        z_values: candidate numbers of standard deviations above the mean.

    Returns:
        The threshold, a float. With no candidate cutting anything off (a flat
        series of errors), the highest candidate.
    """
    values = _nonnegative(errors, "errors")
    if values.size == 0:
        raise ValueError("Expected some scored points to set a threshold on. Received: none")
    mean, std = values.mean(), values.std()
    best_gain, best = -np.inf, mean + z_values[-1] * std
    if std == 0:
        return float(best)
    for z in z_values:
        threshold = mean + z * std
        above = values > threshold
        if not above.any() or above.all():
            continue
        below = values[~above]
        gain = (mean - below.mean()) / mean + (std - below.std()) / std
        gain /= above.sum() + len(runs_of_true(above)) ** 2
        if gain > best_gain:  # on a tie the lower threshold, the first candidate, stays
            best_gain, best = gain, threshold
    return float(best)


def prune_intervals(intervals, errors, min_drop=HUNDMAN_MIN_DROP):
    """Keep the intervals whose peak stands out: Hundman et al.'s pruning.

    Sort the intervals' peak errors from the highest down, then append the
    highest error outside every interval. Walking down that list, each step
    drops by some fraction of the higher peak; every interval above the *last*
    drop bigger than ``min_drop`` (their p, 0.13) is kept, the rest were only a
    little above the crowd.

    >>> errors = np.array([0, 10, 0, 5, 0, 4.8, 0, 4.5])
    >>> prune_intervals([(1, 1), (3, 3), (5, 5)], errors)  # drops 50%, 4%, 6%
    [(1, 1)]
    >>> prune_intervals([(1, 1), (3, 3), (5, 5)], errors, min_drop=0.05)
    [(1, 1), (3, 3), (5, 5)]
    """
    if not intervals:
        return []
    errors = np.asarray(errors, dtype="float64")
    _nonnegative(errors, "errors")
    peaks = np.array([np.nanmax(errors[start : end + 1]) for start, end in intervals])
    outside = ~intervals_to_mask(intervals, len(errors)) & ~np.isnan(errors)
    highest_normal = errors[outside].max() if outside.any() else 0.0
    order = np.argsort(-peaks, kind="stable")
    ladder = np.concatenate([peaks[order], [highest_normal]])
    with np.errstate(divide="ignore", invalid="ignore"):  # a peak of 0 drops by nothing
        drops = np.where(ladder[:-1] > 0, (ladder[:-1] - ladder[1:]) / ladder[:-1], 0.0)
    big = np.flatnonzero(drops > min_drop)
    if big.size == 0:
        return []
    kept = order[: big[-1] + 1]
    return [intervals[i] for i in sorted(kept)]


def pad_intervals(intervals, padding, length):
    """Each interval widened by ``padding`` points on both sides (inside ``0..length - 1``);
    intervals that then overlap or touch become one.

    >>> pad_intervals([(3, 3), (8, 9), (20, 20)], padding=2, length=22)
    [(1, 11), (18, 21)]
    """
    widened = [
        (max(start - padding, 0), min(end + padding, length - 1)) for start, end in intervals
    ]
    return merge_intervals(widened, gap=1)


def hundman_alarms(errors, padding=0, min_drop=HUNDMAN_MIN_DROP):
    """Alarm intervals by Hundman et al.'s rule: dynamic threshold, padding, pruning.

    The points above :func:`dynamic_threshold` become intervals, each padded by
    ``padding`` points on both sides as Hundman et al.'s code (telemanom's
    ``error_buffer``) and sintel-dev/Orion (``anomaly_padding``) do: a peak's
    shoulders belong to its event, so pruning compares the peak with the
    highest error *away* from every event, not with its own shoulder.

    Args:
        errors: (timesteps,) smoothed errors, each at least 0; NaN never alarms.
        padding: points added on each side of an interval; intervals that then touch merge.
        min_drop: pruning's minimum relative drop, their p.

    Returns:
        ``(intervals, threshold)``, as :func:`find_alarms` returns them.

    >>> hundman_alarms([1.0] * 8 + [9.0, 1.0])[0]
    [(8, 8)]
    """
    threshold = dynamic_threshold(errors)
    intervals = pad_intervals(intervals_above(errors, threshold), padding, len(errors))
    return prune_intervals(intervals, errors, min_drop), threshold


# A Gaussian's median absolute deviation times this is its standard deviation.
MAD_TO_STD = 1.4826


def robust_center_and_scale(values, axis=None):
    """Median and robust standard deviation (MAD times 1.4826) of ``values`` along ``axis``.

    Unlike the mean and the standard deviation, a few extreme values (the
    anomalies themselves) barely move either.

    >>> [float(x) for x in robust_center_and_scale(np.array([1.0, 2.0, 3.0, 100.0]))]
    [2.5, 1.4826]
    """
    return np.median(values, axis=axis), MAD_TO_STD * median_abs_deviation(values, axis=axis)


def robust_threshold(scores, z=3.0):
    """``median + z * MAD`` of the finite scores (MAD times 1.4826: :func:`robust_center_and_scale`).

    Unlike ``mean + z * std``, a few very high scores (the anomalies themselves)
    barely move it.

    >>> round(robust_threshold([1.0, 2.0, 3.0, 100.0], z=2), 4)  # 2.5 + 2 * 1.4826 * 1.0
    5.4652
    """
    values = np.asarray(scores, dtype="float64")
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("Expected some scored points to set a threshold on. Received: none")
    median, spread = robust_center_and_scale(values)
    if spread == 0:
        spread = values.std()
    return float(median + z * spread)


def threshold_from_normal(normal_scores, factor=1.5):
    """Alarm threshold: ``factor`` times the highest score on held-out normal data.

    The held-out part must be data the detector was *not* fitted on: a model's
    errors on its own training windows are smaller than on anything new.
    ``factor`` above 1 leaves a margin for normal data a little stranger than
    any seen so far.

    >>> threshold_from_normal([1.0, np.nan, 2.0])
    3.0
    """
    normal_scores = np.asarray(normal_scores, dtype="float64")
    normal_scores = normal_scores[np.isfinite(normal_scores)]
    if normal_scores.size == 0:
        raise ValueError("Expected some scored points in the held-out normal part. Received: none")
    return float(factor * normal_scores.max())


def keep_strongest(intervals, scores, max_alarms=2, min_ratio=0.5):
    """At most ``max_alarms`` intervals with the highest peaks, each at least ``min_ratio`` of the top one.

    A budget for a person's attention: the few events that stand out most, and
    none that is only a shadow of the strongest.

    >>> scores = np.array([0, 9, 0, 4, 0, 6, 0, 5])
    >>> keep_strongest([(1, 1), (3, 3), (5, 5), (7, 7)], scores, max_alarms=2, min_ratio=0.5)
    [(1, 1), (5, 5)]
    """
    if not intervals:
        return []
    scores = np.asarray(scores, dtype="float64")
    peaks = np.array([np.nanmax(scores[start : end + 1]) for start, end in intervals])
    order = np.argsort(-peaks, kind="stable")[:max_alarms]
    kept = [i for i in order if peaks[i] >= min_ratio * peaks[order[0]]]
    return [intervals[i] for i in sorted(kept)]


def find_alarms(scores, threshold=None, gap=0, z=3.0, max_alarms=2, min_ratio=0.5, floor=0.0):
    """Alarm intervals from smoothed scores.

    With a fixed ``threshold`` (a monitor's, set on normal data), every
    interval above it alarms, after merging. With ``threshold=None`` (an
    audit), candidates are the intervals above :func:`robust_threshold`; nearby
    ones merge, and :func:`keep_strongest` keeps the few that stand out.

    Args:
        scores: (timesteps,) smoothed scores; NaN never alarms.
        threshold: a fixed threshold, or None to choose from these scores.
        gap: intervals at most this many points apart become one.
        z, max_alarms, min_ratio: the audit's rule (see above); ``max_alarms=None`` keeps all.
        floor: the threshold is never below this.

    Returns:
        ``(intervals, threshold)``: inclusive ``(start, end)`` index pairs, and the threshold used.
    """
    if threshold is None:
        threshold = robust_threshold(scores, z)
    threshold = max(float(threshold), floor)
    intervals = merge_intervals(intervals_above(scores, threshold), gap)
    if max_alarms is not None:
        intervals = keep_strongest(intervals, scores, max_alarms, min_ratio)
    return intervals, threshold


def rate_threshold(scores, rate, points_per_score=1, gap=0, base_z=2.0):
    """The threshold at which about ``rate`` alarms per 1,000 points are expected by chance.

    Peaks over threshold (Siffer et al., KDD 2017; Coles, 2001, chapter 4),
    on the scores themselves, so no labels and no normal stretch are needed:

    1. A low base threshold ``u``: the median plus ``base_z`` robust standard
       deviations. The runs above it (merged within ``gap``) are *clusters*;
       one cluster is one would-be alarm, so they are counted, not points.
    2. How far each cluster's peak rises above ``u`` is fitted with a
       generalised Pareto distribution (the law of excesses over a high
       threshold, whatever the scores' own distribution); with fewer than 5
       peaks, an exponential (its special case) with their mean excess.
    3. Clusters occur at ``c`` per 1,000 points; a fraction ``P(excess > t - u)``
       of them rise above ``t``. The threshold is the ``t`` at which
       ``c * P(excess > t - u) = rate``.

    Where anomalies are rare, the fit is the scores' normal tail: a series
    with no anomaly raises about ``rate`` alarms per 1,000 points or fewer, and
    a few anomalies rise above that tail. Where anomalies are many, they are
    the tail that is fitted, and only about ``rate`` per 1,000 points alarm.

    Five peaks of 2 in 100 points are 50 clusters per 1,000 above ``u = 0``; at 10 per
    1,000, a fifth of them may pass; excesses of mean 2, exponential: ``t = 2 ln 5``.

    >>> scores = [0.0] * 90 + [2.0, 0.0] * 5
    >>> round(rate_threshold(scores, rate=10.0, base_z=0), 4), round(2 * math.log(5), 4)
    (3.2189, 3.2189)

    Args:
        scores: (timesteps,) smoothed scores; NaN is ignored.
        rate: alarms per 1,000 points the threshold allows by chance.
        points_per_score: raw points each score stands for (the averaging factor):
            the rate counts raw points.
        gap: runs at most this many scores apart are one cluster.
        base_z: where clusters start, in robust standard deviations above the median.

    Returns:
        The threshold, a float; ``u`` itself when clusters are already rarer than ``rate``.
    """
    values = np.asarray(scores, dtype="float64")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("Expected some scored points to set a threshold on. Received: none")
    if not rate > 0:
        raise ValueError(f"Expected a rate of alarms above 0. Received: {rate}")
    median, spread = robust_center_and_scale(finite)
    base = float(median + base_z * (spread if spread > 0 else finite.std()))
    clusters = merge_intervals(intervals_above(values, base), gap)
    per_1000 = 1000 * len(clusters) / (finite.size * points_per_score)
    if per_1000 <= rate:
        return base
    excess = np.array([np.nanmax(values[start : end + 1]) - base for start, end in clusters])
    shape, scale = 0.0, float(excess.mean())
    if len(excess) >= 5 and np.ptp(excess) > 0:
        with np.errstate(all="ignore"):
            shape, _, scale = genpareto.fit(excess, floc=0)
        # Few peaks: keep the shape where the fit is stable (heavy tails up to a finite mean).
        shape = float(np.clip(shape, -0.5, 0.9))
    chance = rate / per_1000  # the share of clusters allowed above the threshold
    if abs(shape) < 1e-6:
        return base + scale * math.log(1 / chance)
    return float(base + scale / shape * (chance**-shape - 1))


def rate_alarms(scores, rate, points_per_score=1, gap=0, base_z=2.0, min_ratio=0.5, floor=0.0):
    """Alarm intervals at about ``rate`` false alarms per 1,000 points: the audit's default rule.

    The runs above :func:`rate_threshold` (never below ``floor``) merge when at
    most ``gap`` points apart; of those, the ones whose peak reaches
    ``min_ratio`` of the strongest stay (a shadow of a big event is not
    another event). The count of alarms follows the data: as many as rise
    above the normal tail, whatever the series' length.

    Returns:
        ``(intervals, threshold)``, as :func:`find_alarms` returns them.
    """
    threshold = max(rate_threshold(scores, rate, points_per_score, gap, base_z), floor)
    intervals = merge_intervals(intervals_above(scores, threshold), gap)
    if min_ratio:
        intervals = keep_strongest(intervals, scores, len(intervals), min_ratio)
    return intervals, threshold


# ---------------------------------------------------------------- scoring alarm intervals


def overlap_scores(alarms, windows):
    """Event scores of alarm intervals against labelled windows, by overlap.

    A window is found (a true positive) when any alarm overlaps it, and missed
    (a false negative) otherwise; an alarm overlapping no window is a false
    positive. Precision = TP / (TP + FP), recall = TP / (TP + FN). Undefined
    figures (nothing alarmed, or nothing labelled) are NaN.

    >>> overlap_scores([(0, 2), (10, 12)], [(2, 4), (6, 8)])
    {'tp': 1, 'fp': 1, 'fn': 1, 'precision': 0.5, 'recall': 0.5, 'f1': 0.5}

    Args:
        alarms, windows: inclusive ``(start, end)`` pairs, in the same units (indices or times).
    """
    found = sum(any(a <= w_end and b >= w_start for a, b in alarms) for w_start, w_end in windows)
    false = sum(
        not any(a <= w_end and b >= w_start for w_start, w_end in windows) for a, b in alarms
    )
    return precision_recall_f1(found, false, len(windows) - found)


def precision_recall_f1(tp, fp, fn):
    """Counts and their precision, recall and F1; NaN where a ratio is 0 / 0.

    >>> precision_recall_f1(3, 1, 0)["f1"]
    0.8571428571428571
    """
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    if tp == 0:
        f1 = 0.0 if (fp or fn) else math.nan
    else:
        f1 = 2 * precision * recall / (precision + recall)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def pooled_scores(rows):
    """Add up the TP/FP/FN of several files' :func:`overlap_scores` and score the totals."""
    totals = [sum(row[key] for row in rows) for key in ("tp", "fp", "fn")]
    return precision_recall_f1(*totals)


# ---------------------------------------------------------------- scoring points against labels


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
        windows: inclusive ``(start, end)`` index pairs, as from :func:`runs_of_true`.
    """
    flags = np.asarray(flags).astype(bool)
    for start, end in windows:
        if not 0 <= start <= end < len(flags):
            raise ValueError(
                f"Expected windows inside 0..{len(flags) - 1} with start <= end. Received: ({start}, {end})"
            )
    found = sum(bool(flags[start : end + 1].any()) for start, end in windows)
    outside = flags & ~intervals_to_mask(windows, len(flags))
    false_alarms = len(runs_of_true(outside))
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

    ``sklearn.metrics.roc_auc_score`` (ties count half), with NaN scores left
    out; NaN when either class is empty.

    >>> roc_auc([0.1, 0.9, 0.4, 0.4], [0, 1, 0, 1])
    0.875
    """
    scores, labels = np.asarray(scores, dtype="float64"), np.asarray(is_anomaly).astype(bool)
    known = ~np.isnan(scores)
    scores, labels = scores[known], labels[known]
    if labels.all() or not labels.any():
        return math.nan
    return float(roc_auc_score(labels, scores))


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
