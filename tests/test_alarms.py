"""common/tasks/alarms.py: from scores to alarm intervals, and overlap event scoring, worked by hand."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.tasks import alarms
from conftest import examples

# ---------------------------------------------------------------- the overlap rule, by hand


def test_an_alarm_overlapping_a_window_finds_it():
    # Window 10..20; alarm 18..30 overlaps it by three points: found, and no false positive.
    assert alarms.overlap_scores([(18, 30)], [(10, 20)]) == {
        "tp": 1,
        "fp": 0,
        "fn": 0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
    }


def test_touching_counts_as_overlap_and_a_gap_of_one_does_not():
    assert alarms.overlap_scores([(20, 25)], [(10, 20)])["tp"] == 1  # shares point 20
    missed = alarms.overlap_scores([(21, 25)], [(10, 20)])
    assert (missed["tp"], missed["fp"], missed["fn"]) == (0, 1, 1)


def test_one_long_alarm_finds_two_windows_and_is_no_false_positive():
    scores = alarms.overlap_scores([(5, 50)], [(10, 20), (30, 40)])
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 0, 0)


def test_two_alarms_in_one_window_find_it_once_and_neither_is_false():
    scores = alarms.overlap_scores([(11, 12), (15, 16)], [(10, 20)])
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 0, 0)


def test_mixed_case_precision_recall_f1():
    # Windows A 0..9, B 20..29, C 40..49. Alarms: 5..6 (finds A), 12..14 (false), 45..60 (finds C),
    # 70..71 (false). TP 2, FP 2, FN 1: precision 1/2, recall 2/3, F1 = 2 * (1/2)(2/3) / (7/6) = 4/7.
    scores = alarms.overlap_scores(
        [(5, 6), (12, 14), (45, 60), (70, 71)], [(0, 9), (20, 29), (40, 49)]
    )
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 2, 1)
    assert scores["precision"] == 0.5 and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(4 / 7)


def test_undefined_figures_are_nan_not_zero_division():
    quiet = alarms.overlap_scores([], [])
    assert (
        math.isnan(quiet["precision"]) and math.isnan(quiet["recall"]) and math.isnan(quiet["f1"])
    )
    false_only = alarms.overlap_scores([(1, 2)], [])
    assert false_only["fp"] == 1 and false_only["precision"] == 0.0 and false_only["f1"] == 0.0
    missed = alarms.overlap_scores([], [(1, 2)])
    assert math.isnan(missed["precision"]) and missed["recall"] == 0.0 and missed["f1"] == 0.0


def test_pooled_scores_add_counts_before_dividing():
    rows = [
        alarms.overlap_scores([(0, 1)], [(0, 5)]),
        alarms.overlap_scores([(9, 9), (20, 21)], [(30, 31)]),
    ]
    pooled = alarms.pooled_scores(rows)
    # TP 1, FP 2, FN 1: precision 1/3, recall 1/2 (not the mean of the files' figures).
    assert (pooled["tp"], pooled["fp"], pooled["fn"]) == (1, 2, 1)
    assert pooled["precision"] == pytest.approx(1 / 3) and pooled["recall"] == 0.5


# ---------------------------------------------------------------- intervals


def test_intervals_above_a_threshold_skip_nan():
    scores = [0, 5, 6, np.nan, 7, 0, 9]
    assert alarms.intervals_above(scores, 4) == [(1, 2), (4, 4), (6, 6)]


def test_merge_joins_alarms_within_the_gap_only():
    assert alarms.merge_intervals([(30, 31), (0, 2), (5, 6)], gap=3) == [(0, 6), (30, 31)]
    assert alarms.merge_intervals([(0, 2), (6, 7)], gap=3) == [(0, 2), (6, 7)]  # 4 apart


@given(st.lists(st.booleans(), max_size=60))
@settings(max_examples=examples(100), deadline=None)
def test_runs_and_masks_are_inverse(flags):
    runs = alarms.runs_of_true(flags)
    assert alarms.intervals_to_mask(runs, len(flags)).tolist() == [bool(f) for f in flags]
    assert all(end + 1 < next_start for (_, end), (next_start, _) in zip(runs, runs[1:]))


# ---------------------------------------------------------------- thresholds


def test_smoothing_is_an_exponential_mean():
    # span 3 -> alpha 0.5, pandas' adjusted weights: y1 = (0 + 0.5 * 4) / 1.5 ... check point 1 by hand.
    smoothed = alarms.smooth([4.0, 0.0, 0.0], span=3)
    assert smoothed[0] == 4.0
    assert smoothed[1] == pytest.approx((0.0 + 0.5 * 4.0) / (1 + 0.5))
    assert np.isnan(alarms.smooth([1.0, np.nan, 1.0], span=3)[1])


def test_dynamic_threshold_cuts_off_the_one_clear_interval():
    rng = np.random.default_rng(0)
    scores = 1 + 0.1 * rng.standard_normal(1000)
    scores[600:610] = 5.0
    threshold = alarms.dynamic_threshold(scores)
    assert 1.5 < threshold < 5.0
    assert alarms.intervals_above(scores, threshold) == [(600, 609)]


def test_dynamic_threshold_of_flat_scores_cuts_nothing():
    threshold = alarms.dynamic_threshold(np.ones(50))
    assert alarms.intervals_above(np.ones(50), threshold) == []
    with pytest.raises(ValueError, match="Expected some scored points"):
        alarms.dynamic_threshold([np.nan, np.nan])


def test_dynamic_threshold_by_hand():
    # Fourteen zeros, then 3, 0, 6, 0: 18 errors, mean 9/18 = 0.5, mean square 45/18 = 2.5,
    # so std = sqrt(2.5 - 0.25) = 1.5. Candidates z = 1 (epsilon 2.0) and z = 2 (epsilon 3.5):
    # z = 1 cuts the 3 and the 6, two points in two runs; what is left is all 0:
    #   gain = (0.5 / 0.5 + 1.5 / 1.5) / (2 + 2 ** 2) = 1/3.
    # z = 2 cuts the 6 alone; what is left has mean 3/17 and std 12/17:
    #   gain = ((0.5 - 3/17) / 0.5 + (1.5 - 12/17) / 1.5) / (1 + 1 ** 2) = (11/17 + 9/17) / 2 = 10/17.
    errors = np.array([0.0] * 14 + [3.0, 0.0, 6.0, 0.0])
    assert alarms.dynamic_threshold(errors, z_values=np.array([1.0, 2.0])) == pytest.approx(3.5)
    # The default candidates (z from 2 to 10) choose z = 2 too; the 6 is then one alarm, and
    # pruning keeps it: it drops (6 - 3) / 6 = 50% to the highest error outside it.
    intervals, threshold = alarms.hundman_alarms(errors)
    assert threshold == pytest.approx(3.5) and intervals == [(16, 16)]


def test_hundman_rule_refuses_centred_scores_and_ignores_the_unit():
    with pytest.raises(ValueError, match="Expected errors of at least 0"):
        alarms.dynamic_threshold([-0.5, 0.0, 0.5, 4.0])
    with pytest.raises(ValueError, match="Expected errors of at least 0"):
        alarms.prune_intervals([(3, 3)], [-0.5, 0.0, 0.5, 4.0])
    # Relative drops have no unit: errors in other units give the same alarms.
    rng = np.random.default_rng(2)
    errors = np.abs(rng.normal(size=300))
    errors[[50, 51, 200]] += [6.0, 6.5, 4.0]
    found, threshold = alarms.hundman_alarms(errors, padding=3)
    again, scaled_threshold = alarms.hundman_alarms(7.0 * errors, padding=3)
    assert found == again and scaled_threshold == pytest.approx(7.0 * threshold)


def test_padding_keeps_a_peak_from_being_pruned_against_its_own_shoulder():
    errors = np.ones(20)
    errors[5:8] = [4.5, 5.0, 4.5]  # one event: a peak and its shoulders
    errors[12] = 4.0  # another, lower
    # Only the 5 lies above the threshold. Unpadded, the highest error outside it is its own
    # shoulder: (5 - 4.5) / 5 = 10%, under p = 13%, so it is pruned and nothing alarms.
    intervals, threshold = alarms.hundman_alarms(errors)
    assert 4.5 < threshold < 5.0 and intervals == []
    # Padded by one point, the shoulders belong to the event; the highest error outside is
    # the 4: (5 - 4) / 5 = 20%, so it stays.
    assert alarms.hundman_alarms(errors, padding=1)[0] == [(5, 7)]
    assert alarms.pad_intervals([(6, 6), (9, 9)], padding=1, length=20) == [(5, 10)]  # touching


def test_pruning_by_hand_with_hundmans_p():
    errors = np.zeros(100)
    errors[[10, 30, 50]] = [10.0, 5.0, 4.8]
    errors[90] = 4.5  # the highest error outside every interval
    intervals = [(10, 10), (30, 30), (50, 50)]
    # Ladder 10, 5, 4.8, 4.5: drops 50%, 4%, 6.25%. With p = 0.13 (the default) the last drop
    # above it is the first: only the 10 stands out. With 0.05 the last is 4.8 -> 4.5: all three.
    assert alarms.HUNDMAN_MIN_DROP == 0.13
    assert alarms.prune_intervals(intervals, errors) == [(10, 10)]
    assert alarms.prune_intervals(intervals, errors, min_drop=0.05) == intervals


def test_pruning_keeps_peaks_above_the_last_big_drop():
    scores = np.zeros(100)
    scores[[10, 30, 50]] = [10.0, 9.8, 5.0]
    scores[90] = 4.9  # the highest score outside every interval
    intervals = [(10, 10), (30, 30), (50, 50)]
    # Ladder 10, 9.8, 5.0, 4.9: drops 2%, 49%, 2%. The last drop above 5% is after 9.8.
    assert alarms.prune_intervals(intervals, scores, min_drop=0.05) == [(10, 10), (30, 30)]
    # With no drop above 60%, nothing stands out: everything is pruned.
    assert alarms.prune_intervals(intervals, scores, min_drop=0.6) == []


def test_find_alarms_with_a_fixed_threshold_keeps_every_interval():
    scores = np.array([0, 3, 0, 0, 3.2, 0, 0, 0, 0, 3.1])
    found, threshold = alarms.find_alarms(scores, threshold=2.0, gap=3, max_alarms=None)
    assert threshold == 2.0 and found == [(1, 4), (9, 9)]


def test_robust_threshold_by_hand_and_unmoved_by_the_anomalies():
    # Median 2.5; absolute deviations 1.5, 0.5, 0.5, 97.5 -> MAD 1.0; 2.5 + 3 * 1.4826.
    assert alarms.robust_threshold([1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.5 + 3 * 1.4826)
    assert alarms.robust_threshold([1.0, 2.0, 3.0, 1e6]) == pytest.approx(2.5 + 3 * 1.4826)
    # More than half the scores equal: the MAD is 0, so the standard deviation stands in.
    flat = [1.0] * 9 + [11.0]
    assert alarms.robust_threshold(flat, z=1) == pytest.approx(1.0 + np.std(flat))


def test_robust_center_and_scale_by_hand_and_along_an_axis():
    # Row 0: median 2.5, absolute deviations 1.5, 0.5, 0.5, 97.5 -> MAD 1.0.
    # Row 1: median 0.5, every absolute deviation 0.5 -> MAD 0.5.
    rows = np.array([[1.0, 2.0, 3.0, 100.0], [0.0, 0.0, 1.0, 1.0]])
    centers, scales = alarms.robust_center_and_scale(rows, axis=1)
    assert centers.tolist() == [2.5, 0.5]
    assert scales.tolist() == [1.4826, 0.5 * 1.4826]
    assert alarms.robust_center_and_scale(rows[0]) == (2.5, 1.4826)


def test_keep_strongest_is_a_budget_of_alarms_that_stand_out():
    scores = np.zeros(50)
    scores[[5, 15, 25, 35]] = [10.0, 4.0, 7.0, 6.0]
    intervals = [(5, 5), (15, 15), (25, 25), (35, 35)]
    assert alarms.keep_strongest(intervals, scores, max_alarms=2) == [(5, 5), (25, 25)]
    assert alarms.keep_strongest(intervals, scores, max_alarms=4, min_ratio=0.5) == [
        (5, 5),
        (25, 25),
        (35, 35),
    ]
    assert alarms.keep_strongest(intervals, scores, max_alarms=4, min_ratio=0.0) == intervals
    assert alarms.keep_strongest([], scores) == []


def test_an_audit_alarms_on_the_strongest_candidates_only():
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 1, 600)
    scores[[100, 300, 500]] = [20.0, 8.0, 15.0]
    found, threshold = alarms.find_alarms(scores, gap=5)
    assert found == [(100, 100), (500, 500)]  # 8 is less than half of 20
    assert 2 < threshold < 5


# ---------------------------------------------------------------- alarms at a rate a person chose


def test_rate_threshold_by_hand_with_a_generalised_pareto_tail():
    from scipy.stats import genpareto

    # 40 peaks of different heights on a flat floor of 0, 2,000 points: u = 0 (base_z = 0),
    # 40 clusters = 20 per 1,000; at 2 per 1,000 a tenth of them may pass.
    rng = np.random.default_rng(0)
    heights = rng.pareto(3.0, 40) + 0.1
    scores = np.zeros(2000)
    scores[np.arange(40) * 50 + 25] = heights
    shape, _, scale = genpareto.fit(heights, floc=0)
    expected = scale / shape * (0.1**-shape - 1)
    assert alarms.rate_threshold(scores, rate=2.0, base_z=0) == pytest.approx(expected)
    # Averaged 4 to 1, the same scores stand for 8,000 readings: 5 clusters per 1,000.
    by_hand = scale / shape * (0.4**-shape - 1)
    assert alarms.rate_threshold(scores, 2.0, points_per_score=4, base_z=0) == pytest.approx(
        by_hand
    )


def test_rate_threshold_keeps_its_rate_on_noise_with_no_anomaly():
    # White noise holds no anomaly: every alarm is false, and there should be about `rate`.
    # One draw of 200,000 points varies by up to a third at base_z = 1; the mean of five, less.
    rng = np.random.default_rng(1)
    for rate in (0.2, 1.0, 5.0):
        per_1000 = []
        for _ in range(5):
            noise = rng.standard_normal(200_000)
            threshold = alarms.rate_threshold(noise, rate)
            per_1000.append(1000 * len(alarms.intervals_above(noise, threshold)) / len(noise))
        assert rate / 1.25 < np.mean(per_1000) < rate * 1.25, (rate, per_1000)


def test_rate_threshold_with_clusters_rarer_than_the_rate_is_the_base():
    scores = [0.0] * 98 + [5.0, 0.0]  # one cluster in 100 points: 10 per 1,000
    assert alarms.rate_threshold(scores, rate=20.0, base_z=0) == 0.0


def test_rate_threshold_refuses_no_scores_and_a_rate_of_zero():
    with pytest.raises(ValueError, match="Received: none"):
        alarms.rate_threshold([np.nan, np.nan], rate=1.0)
    with pytest.raises(ValueError, match="rate of alarms above 0. Received: 0"):
        alarms.rate_threshold([1.0, 2.0], rate=0)


def test_rate_alarms_find_many_where_there_are_many():
    # 20 equal bumps on noise, far apart: every one alarms, at any reasonable rate; "the two
    # strongest per file" would find 2.
    rng = np.random.default_rng(4)
    scores = 0.1 * rng.standard_normal(20_000)
    starts = np.arange(20) * 1000 + 500
    for start in starts:
        scores[start : start + 20] += 3.0
    found, threshold = alarms.rate_alarms(scores, rate=0.5, gap=10)
    assert found == [(s, s + 19) for s in starts]
    assert 0.5 < threshold < 3.0
    # A shadow: one bump four times higher drops every other under min_ratio = 0.5.
    scores[starts[0] : starts[0] + 20] += 9.0
    assert alarms.rate_alarms(scores, rate=0.5, gap=10)[0] == [(starts[0], starts[0] + 19)]
    assert len(alarms.rate_alarms(scores, rate=0.5, gap=10, min_ratio=0)[0]) == 20
