"""apps/anomaly.py, common/tasks/anomaly.py and detectors.py: scoring by hand, detectors, audit and
monitor, the app end to end, bad input."""

import errno
import json
import math

from common.tasks import alarms, anomaly, detectors  # first: imports TensorFlow quietly

import keras
import numpy as np
import pandas as pd
import pytest
from common.cli import run_folder
from common.models.training import set_seed

# ---------------------------------------------------------------- event-level scoring, worked by hand


def flags_at(length, *runs):
    flags = np.zeros(length, dtype=bool)
    for start, end in runs:
        flags[start : end + 1] = True
    return flags


def test_label_windows_are_inclusive_runs():
    assert alarms.runs_of_true([0, 1, 1, 0, 1]) == [(1, 2), (4, 4)]
    assert alarms.runs_of_true([0, 0, 0]) == []
    assert alarms.runs_of_true([1, 1]) == [(0, 1)]


def test_flag_overlapping_a_window_finds_it_and_its_spill_is_one_false_alarm():
    # Window 2..4; alarms 3..6: the window is found, points 5..6 lie outside it: one false alarm.
    scores = alarms.event_scores(flags_at(10, (3, 6)), [(2, 4)])
    assert scores == {
        "windows": 1,
        "found": 1,
        "false_alarms": 1,
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
    }


def test_one_alarm_run_across_adjacent_windows_finds_both():
    windows = [(2, 4), (5, 7)]
    inside = alarms.event_scores(flags_at(12, (4, 5)), windows)
    assert (inside["found"], inside["false_alarms"], inside["precision"], inside["recall"]) == (
        2,
        0,
        1.0,
        1.0,
    )
    # Spilling past the second window: points 8..9 are one false alarm; precision 2 / (2 + 1).
    spilled = alarms.event_scores(flags_at(12, (3, 9)), windows)
    assert (spilled["found"], spilled["false_alarms"]) == (2, 1)
    assert spilled["precision"] == pytest.approx(2 / 3)


def test_separate_false_alarm_runs_and_a_missed_window():
    scores = alarms.event_scores(flags_at(20, (0, 1), (5, 5), (9, 10)), [(9, 9), (15, 17)])
    # (9, 10) finds window 9..9; point 10 is outside every window: false alarms are 0..1, 5, 10.
    assert (scores["found"], scores["false_alarms"]) == (1, 3)
    assert scores["precision"] == pytest.approx(1 / 4)
    assert scores["recall"] == 0.5
    assert scores["f1"] == pytest.approx(2 * 0.25 * 0.5 / 0.75)


def test_no_labels_gives_undefined_recall_and_counts_false_alarms():
    scores = alarms.event_scores(flags_at(8, (1, 2), (5, 5)), [])
    assert scores["false_alarms"] == 2 and scores["precision"] == 0.0
    assert math.isnan(scores["recall"]) and math.isnan(scores["f1"])
    quiet = alarms.event_scores(np.zeros(8, dtype=bool), [])
    assert quiet["false_alarms"] == 0 and math.isnan(quiet["precision"])


def test_nothing_flagged_with_labels_is_f1_zero():
    scores = alarms.event_scores(np.zeros(10, dtype=bool), [(3, 4)])
    assert (scores["found"], scores["recall"], scores["f1"]) == (0, 0.0, 0.0)
    assert math.isnan(scores["precision"])


def test_windows_outside_the_series_are_rejected():
    with pytest.raises(ValueError, match="Expected windows inside"):
        alarms.event_scores(np.zeros(5, dtype=bool), [(3, 7)])


def test_roc_auc_counts_ties_half_and_skips_unscored_points():
    # Anomalous 0.9 and 0.4 against normal 0.1 and 0.4: pairs won 1 + 1 + 1 + 0.5 of 4.
    assert alarms.roc_auc([0.1, 0.9, 0.4, 0.4, np.nan], [0, 1, 0, 1, 1]) == pytest.approx(0.875)
    assert math.isnan(alarms.roc_auc([0.1, 0.2], [0, 0]))


def test_ucr_top1_rule_with_tolerance():
    scores = np.zeros(300)
    scores[150] = 5.0
    assert alarms.ucr_top1(scores, [(100, 110)], tolerance=50) is True
    assert alarms.ucr_top1(scores, [(100, 110)], tolerance=0) is False
    assert alarms.ucr_top1(scores, [(1, 2), (100, 110)]) is None


def test_point_scores_average_the_windows_covering_each_point():
    errors = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])  # windows start at 0 and 1, length 3
    scores = detectors.point_scores_from_window_errors(errors, np.array([0, 1]), length=5)
    np.testing.assert_allclose(scores, [1.0, (2 + 10) / 2, (3 + 20) / 2, 30.0, np.nan])


def test_threshold_uses_held_out_scores_only():
    assert alarms.threshold_from_normal([1.0, np.nan, 2.0], factor=1.5) == 3.0


def test_matrix_profile_finds_a_distorted_cycle_and_ignores_a_repeat_of_normal():
    steps = np.arange(1200)
    series = np.sin(2 * np.pi * steps / 40)
    series[900:920] = np.sign(series[900:920])  # one cycle squared off
    detector = detectors.MatrixProfileDiscord(window=40).fit(series[:600])
    scores = detector.score(series, exclude_offset=0)
    assert 880 <= np.nanargmax(scores) <= 940
    assert (
        np.nanmax(scores[600:850]) < 0.01 < 1 < np.nanmax(scores)
    )  # later normal cycles match the reference (to rounding)


def test_rolling_zscore_flags_a_spike():
    rng = np.random.default_rng(0)
    series = rng.normal(size=500)
    series[400] = 12.0
    scores = detectors.RollingZScore(window=50).score(series)
    assert np.all(np.isnan(scores[:50])) and np.nanargmax(scores) == 400


# ---------------------------------------------------------------- audit and monitor, in common


def seasonal_series(length=2400, period=48, seed=0):
    """A clean daily-like cycle with a little noise."""
    rng = np.random.default_rng(seed)
    steps = np.arange(length)
    return (
        np.sin(2 * np.pi * steps / period)
        + 0.5 * np.sin(4 * np.pi * steps / period)
        + rng.normal(0, 0.05, length)
    )


def test_window_choice_and_period():
    assert detectors.dominant_period(seasonal_series()) == 48
    assert detectors.dominant_period(np.random.default_rng(0).normal(size=500)) is None
    assert detectors.dominant_period(np.ones(100)) is None
    assert anomaly.choose_window(4000) == 48
    assert anomaly.choose_window(300, period=30) == 30  # one cycle fits in an eighth of 300
    assert anomaly.choose_window(300, period=100) == 37  # it does not: an eighth
    with pytest.raises(ValueError, match="at least 16 points"):
        anomaly.choose_window(10)
    assert anomaly.choose_window(16) == 2  # the smallest series the reader accepts


def test_holt_winters_learns_the_season_and_scores_new_data_with_the_same_weights():
    values = seasonal_series(1200)[:, None]
    values[900, 0] += 3.0
    detector = detectors.HoltWinters().fit(values[:600])
    assert detector.period == 48
    scores = detector.score(values)
    assert np.argmax(scores[100:]) + 100 == 900
    again = (
        detectors.HoltWinters().set_state(json.loads(json.dumps(detector.state()))).score(values)
    )
    np.testing.assert_allclose(again, scores)


def test_bidirectional_lstm_scores_both_sides_and_reloads_its_error_scales():
    values = seasonal_series(400)[:, None].astype("float32")
    detector = detectors.BidirectionalLSTM(window=16, units=8, epochs=2).fit(values)
    scores = detector.score(values)
    # The forward head reaches points 17.., the backward head points ..383: every point has a score.
    assert scores.shape == (400,) and np.isfinite(scores).all()
    twin = detectors.BidirectionalLSTM(window=16, units=8, model=detector.model)
    twin.set_state(json.loads(json.dumps(detector.state())))
    np.testing.assert_allclose(twin.score(values), scores, rtol=1e-5)
    # Its errors for Hundman's rule: the same standardised heads, not centred, never below 0.
    errors = detectors.nonnegative_errors(detector, values)
    assert (errors >= 0).all()
    shift = np.mean(np.divide(detector.centers, detector.scales))
    both_sides = slice(17, 400 - 17)
    np.testing.assert_allclose(errors[both_sides] - scores[both_sides], shift, rtol=1e-4)
    # A point's score reads the 16 points after it, in segments cut with one more: the newest
    # 17 scores change when more data arrives, no older one does.
    assert detector.looks_ahead == 17
    part = detector.score(values[:300])
    np.testing.assert_allclose(part[: 300 - 17], scores[: 300 - 17], rtol=1e-5)
    assert not np.isclose(part[300 - 17 :], scores[300 - 17 : 300], rtol=1e-5).any()


def test_holt_winters_scores_a_new_file_that_starts_elsewhere_in_the_cycle():
    values = seasonal_series(1200)[:, None]
    detector = detectors.HoltWinters().fit(values[:600])
    # statsmodels often fits a season that never adapts (weight 0); pin it so, as on NAB files.
    detector.params[0] |= {"smoothing_seasonal": 0.0, "smoothing_level": 0.05}
    in_context = detector.score(values)[600:].mean()  # the fitted start, carried through
    # A new file from point 600, half a cycle on from where the fit began: started from the fitted season it would be out of phase
    # for good; its own starting state (the fitted weights kept) scores it as in context.
    new_file = detector.score(values[600:])
    assert new_file[48:].mean() < 2 * in_context
    saved = json.loads(json.dumps(detector.state()))
    twin = detectors.HoltWinters().set_state(saved)
    np.testing.assert_allclose(twin.score(values[600:]), new_file)
    np.testing.assert_allclose(twin.score(values), detector.score(values))
    # A saved run from before the start was kept scores as it did: from the fitted start.
    old = detectors.HoltWinters().set_state({k: v for k, v in saved.items() if k != "start"})
    assert old.score(values[600:])[48:].mean() > 5 * in_context


def test_hybrid_ignores_round_off_on_a_noise_free_series():
    values = np.sin(2 * np.pi * np.arange(960) / 48)[:, None].astype("float32")
    hybrid = detectors.LSTMHoltWinters(window=16, units=4, epochs=1).fit(values)
    _, holt_winters = hybrid.parts(values)
    assert holt_winters[48:].max() < 1e-5  # a perfect forecast, up to round-off
    assert hybrid.scales[1] == hybrid.min_scale  # not the round-off's own spread
    assert np.abs((holt_winters[48:] - hybrid.centers[1]) / hybrid.scales[1]).max() < 1e-2


def test_hybrid_mixes_the_lstm_and_holt_winters_in_robust_units_and_reloads():
    values = seasonal_series(400)[:, None].astype("float32")
    values[250:256, 0] += 3.0  # a jump both parts see
    set_seed(0)
    hybrid = detectors.LSTMHoltWinters(window=16, units=8, epochs=2).fit(values)
    lstm, holt_winters = hybrid.parts(values)
    # By hand: each part's median and MAD * 1.4826 on the fitted data, then 0.4 and 0.6.
    scaled = []
    for part in (lstm, holt_winters):
        median = np.median(part)
        scaled.append((part - median) / (1.4826 * np.median(np.abs(part - median))))
    np.testing.assert_allclose(hybrid.score(values), 0.4 * scaled[0] + 0.6 * scaled[1], rtol=1e-6)
    np.testing.assert_allclose(hybrid.score(values, weight=0.0), scaled[0], rtol=1e-6)
    # Holt-Winters is the same as on its own; the LSTM part is the bidirectional detector's score.
    np.testing.assert_allclose(
        holt_winters, detectors.HoltWinters().fit(values).score(values), rtol=1e-6
    )
    assert hybrid.looks_ahead == 17 and hybrid.model is hybrid.lstm.model and hybrid.units == 8
    assert 250 <= np.argmax(hybrid.score(values)) <= 256 + 16
    # A saved run: the Keras model and the JSON state score identically.
    twin = detectors.make_detector("hybrid", window=16, units=8, model=hybrid.model)
    twin.set_state(json.loads(json.dumps(hybrid.state())))
    for weight in ("nan", float("nan"), 1.5, -0.1, None):  # a hand-edited config.json
        with pytest.raises(ValueError, match="Expected a weight between 0 and 1"):
            detectors.LSTMHoltWinters().set_state(hybrid.state() | {"weight": weight})
    np.testing.assert_allclose(twin.score(values), hybrid.score(values), rtol=1e-5)
    # For Hundman's rule: the same mix not centred, never below 0 (where both LSTM heads reach,
    # the score shifted by a constant).
    errors = detectors.nonnegative_errors(hybrid, values)
    shift = errors[17:-17] - hybrid.score(values)[17:-17]
    assert (errors >= 0).all() and np.ptp(shift) < 1e-4 * np.abs(shift).max()
    # A saved run whose threshold Hundman's rule set on those errors is rescored on errors too.
    scaler = anomaly.StandardScaler().fit(values)
    settings = anomaly.Settings.for_length(len(values), rule="hundman")
    audited = anomaly.rescore(values, "hybrid", hybrid, scaler, settings, threshold=None)
    again = anomaly.rescore(values, "hybrid", twin, scaler, settings, audited.threshold)
    np.testing.assert_allclose(again.smoothed, audited.smoothed, rtol=1e-4, atol=1e-5)


def test_each_detector_says_how_far_ahead_it_looks_and_older_scores_are_final():
    values = seasonal_series(900)[:, None]
    fitted = {
        name: detectors.make_detector(name, window=24).fit(values[:400])
        for name in ("zscore", "discord", "holt-winters")
    }
    assert {name: detector.looks_ahead for name, detector in fitted.items()} == {
        "zscore": 0,
        "discord": 23,
        "holt-winters": 0,
    }
    assert detectors.make_detector("forecaster", window=24).looks_ahead == 0
    assert detectors.make_detector("autoencoder", window=24).looks_ahead == 23
    for name, detector in fitted.items():
        final = len(values) - 100 - detector.looks_ahead  # scored with 100 points still to come
        # atol: a repeat's distance is the square root of round-off (about 1e-7), which may
        # change with the number of windows in the matrix product.
        np.testing.assert_allclose(
            detector.score(values[:-100])[:final],
            detector.score(values)[:final],
            atol=1e-6,
            err_msg=name,
        )


def test_holt_winters_without_a_season_saves_and_reloads_to_the_same_scores(tmp_path):
    # No season: statsmodels reports NaN for the seasonal weight, which no JSON file can hold.
    values = np.cumsum(np.random.default_rng(0).normal(size=(600, 1)), axis=0)
    detection = anomaly.audit(values, "holt-winters", window=16)
    assert detection.detector.period is None
    saved = anomaly.save_detector(tmp_path, detection, app="anomaly", value_cols=["value"])
    assert json.loads((tmp_path / "config.json").read_text()) == saved
    again = anomaly.rescore(values, "holt-winters", *anomaly.load_detector(tmp_path, saved))
    np.testing.assert_array_equal(again.scores, detection.scores)


def test_make_detector_names_what_it_knows():
    assert isinstance(detectors.make_detector("forecaster", window=8), detectors.LSTMForecaster)
    with pytest.raises(ValueError, match="Expected a detector in"):
        detectors.make_detector("lstn")


def test_aggregation_and_its_inverse():
    values = np.arange(10.0)
    assert anomaly.aggregate(values, 4)[:, 0].tolist() == [1.5, 5.5, 8.5]
    assert anomaly.expand([1.0, 2.0, 3.0], 4, 10).tolist() == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3]
    assert anomaly.expand_intervals([(1, 1), (2, 2)], 4, 10) == [(4, 7), (8, 9)]
    settings = anomaly.Settings.for_length(4032)
    assert (settings.factor, settings.span, settings.gap) == (
        8,
        5,
        15,
    )  # 504 points after averaging


def test_audit_finds_an_injected_anomaly_in_a_seasonal_series_with_no_false_alarm():
    values = seasonal_series(period=96)
    values[1700:1740] = (
        values[1700:1740][::-1] + 0.8
    )  # a stretch of the cycle played backwards, raised
    detection = anomaly.audit(values, window=24, units=16, epochs=20, seed=1)
    assert len(detection.alarms) == 1, detection.alarms
    start, end = detection.alarms[0]
    assert start <= 1724 and end >= 1700
    assert detection.flagged.sum() == end - start + 1
    # The threshold was chosen from the scores; it sits above every smoothed score outside the alarm.
    outside = np.delete(detection.smoothed, np.arange(start, end + 1))
    assert np.nanmax(outside) <= detection.threshold


def test_audit_of_a_clean_series_raises_no_alarm():
    detection = anomaly.audit(seasonal_series(1200), "zscore", window=48)
    assert detection.alarms == []


def test_monitor_alarms_only_after_the_normal_prefix_and_rescore_repeats_it():
    values = seasonal_series(1600)
    values[1300] += 4.0
    detection = anomaly.monitor(values, 800, "discord", window=48)
    assert detection.scored_from == 800 and detection.alarms
    assert all(start >= 800 for start, _ in detection.alarms)
    assert any(start <= 1300 + 48 and end >= 1300 for start, end in detection.alarms)
    again = anomaly.rescore(
        values,
        "discord",
        detection.detector,
        detection.scaler,
        detection.settings,
        detection.threshold,
        scored_from=800,
    )
    np.testing.assert_array_equal(again.scores, detection.scores)
    # 800 readings averaged 2 to 1; a score reads its pair and the 47 pairs after it.
    assert detection.settings.factor == 2 and anomaly.score_delay(detection) == 48 * 2 - 1
    with pytest.raises(ValueError, match="Expected a normal prefix of at least 3 windows"):
        anomaly.monitor(values, 100, "zscore", window=48)


def test_an_audit_by_hundmans_rule_scores_errors_and_finds_the_spike():
    values = seasonal_series(1600)
    values[1200:1204] += 4.0
    detection = anomaly.audit(values, "zscore", window=48, rule="hundman")
    assert detection.settings.rule == "hundman" and np.nanmin(detection.smoothed) >= 0
    assert len(detection.alarms) == 1 and detection.alarms[0][0] <= 1203 <= detection.alarms[0][1]
    with pytest.raises(ValueError, match="Expected rule in"):
        anomaly.Settings(rule="hundmann")


def test_an_audit_finds_the_twenty_anomalies_of_a_long_series_and_few_on_it_clean():
    values, windows = anomaly.injected_series(anomalies=20, seed=3)
    _, window, _ = anomaly.plan_window(values, 48)
    found = anomaly.audit(values, "holt-winters", window)  # the default rule: a rate
    scores = alarms.overlap_scores(found.alarms, windows)
    assert scores["tp"] >= 18 and scores["fp"] <= 3, scores
    # The old budget, "the two strongest per series", cannot report twenty incidents.
    strongest = anomaly.audit(values, "holt-winters", window, rule="strongest")
    assert len(strongest.alarms) <= 2
    clean, _ = anomaly.injected_series(anomalies=0, seed=3)
    quiet = anomaly.audit(clean, "holt-winters", window)
    assert 1000 * len(quiet.alarms) / len(clean) <= anomaly.FALSE_ALARMS_PER_1000
    rarer = anomaly.audit(clean, "holt-winters", window, false_alarms=0.1)
    assert len(rarer.alarms) < len(quiet.alarms) and len(rarer.alarms) <= 4


# ---------------------------------------------------------------- the app


def write_series(path, values, start="2024-01-01", freq="5min", labels=None):
    times = pd.date_range(start, periods=len(values), freq=freq)
    frame = pd.DataFrame(
        {"timestamp": times.strftime("%Y-%m-%d %H:%M:%S"), "value": np.round(values, 6)}
    )
    if labels is not None:
        frame["is_anomaly"] = labels
    frame.to_csv(path, index=False)
    return path


def strict_json(path):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_quick_default_run_on_the_bundled_nab_series(run_app, tmp_path):
    status, out, err = run_app("anomaly", "--quick", "--seed", 3, "--out", tmp_path)
    assert status == 0, err
    for name in (
        "model.keras",
        "config.json",
        "scores.csv",
        "anomalies.csv",
        "metrics.json",
        "anomalies.png",
    ):
        assert (tmp_path / name).is_file(), name
    assert "duplicate timestamps" in out and "bidirectional LSTM" in out and "MP discord" in out
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert {"time", "value", "score", "flagged", "is_anomaly"} <= set(scores.columns)
    assert len(scores) == 22683 and scores["is_anomaly"].sum() > 0
    intervals = pd.read_csv(tmp_path / "anomalies.csv")
    assert list(intervals.columns) == ["start", "end", "start_index", "end_index", "peak_score"]
    flagged = np.zeros(len(scores), dtype=int)
    for start, end in zip(intervals["start_index"], intervals["end_index"]):
        flagged[start : end + 1] = 1
    assert (scores["flagged"].to_numpy() == flagged).all()
    metrics = strict_json(tmp_path / "metrics.json")
    assert metrics["mode"] == "audit"
    # The default mixes the LSTM with Holt-Winters; its LSTM alone is shown beside it.
    assert list(metrics["table"]) == [
        "LSTM + Holt-Winters",
        "bidirectional LSTM",
        "rolling z-score",
        "MP discord",
        "Holt-Winters",
    ]
    assert metrics["table"]["LSTM + Holt-Winters"]["alarms"] == len(intervals) >= 1
    config = strict_json(tmp_path / "config.json")
    assert (config["app"], config["detector"], config["state"]["weight"]) == (
        "anomaly",
        "hybrid",
        0.6,
    )
    assert (config["settings"]["rule"], config["settings"]["false_alarms"]) == ("rate", 0.5)
    assert "set for 0.5 false alarms per 1,000 readings" in out
    model = keras.models.load_model(tmp_path / "model.keras")  # plain Keras, no custom objects
    assert [tuple(output.shape[1:]) for output in model.outputs] == [(1,), (1,), (32, 1)]


def test_monitor_then_reload_gives_identical_scores_and_alarms(run_app, tmp_path):
    values = seasonal_series(1200)
    values[1000:1006] += 3.0
    csv = write_series(tmp_path / "cpu.csv", values)
    run = tmp_path / "run"
    status, out, err = run_app(
        "anomaly", "--csv", csv, "--quick", "--train-fraction", 0.5, "--out", run
    )
    assert status == 0, err
    assert "monitor (fit on the first 600" in out
    # A monitor's default reads only the past: a score is final as its reading arrives.
    assert strict_json(run / "config.json")["detector"] == "forecaster"
    delay = "cpu.csv: monitor delay: none, a reading's score is final as it arrives"
    assert delay in out
    first = pd.read_csv(run / "scores.csv")
    assert not first["flagged"][:600].any()
    status, out, err = run_app("anomaly", "--load", run, "--csv", csv, "--out", tmp_path / "again")
    assert status == 0, err
    assert delay in out
    second = pd.read_csv(tmp_path / "again" / "scores.csv")
    np.testing.assert_allclose(second["score"], first["score"], rtol=1e-6)
    assert second["flagged"][600:].tolist() == first["flagged"][600:].tolist()
    before = (run / "scores.csv").read_bytes()
    status, _, err = run_app("anomaly", "--load", run, "--csv", csv, "--out", run)
    assert status == 2 and "overwritten" in err and (run / "scores.csv").read_bytes() == before
    # A detector that reads ahead says how long its scores wait: the discord's 47 points after.
    status, out, err = run_app(
        "anomaly",
        "--csv",
        csv,
        "--detector",
        "discord",
        "--train-fraction",
        0.5,
        "--out",
        tmp_path / "discord",
    )
    assert status == 0, err
    assert (
        "monitor delay: a reading's score is final after up to 47 later reading(s), 3.9 hours"
        in out
    )
    assert "(--detector forecaster never waits on later readings)" in out


def test_folder_mode_with_nab_layout_labels(run_app, tmp_path):
    data = tmp_path / "nab" / "data"
    (data / "realA").mkdir(parents=True)
    (data / "artificialB").mkdir()
    spiky = seasonal_series(1200)
    spiky[900:905] += 5.0
    write_series(data / "realA" / "spiky.csv", spiky)
    write_series(data / "artificialB" / "clean.csv", seasonal_series(1200, seed=3))
    # 900 five-minute steps after 2024-01-01 00:00 is 2024-01-04 03:00.
    labels = {
        "realA/spiky.csv": [["2024-01-04 02:00:00.000000", "2024-01-04 04:00:00.000000"]],
        "artificialB/clean.csv": [],
    }
    (tmp_path / "nab" / "combined_windows.json").write_text(json.dumps(labels))
    status, out, err = run_app(
        "anomaly",
        "--csv",
        data,
        "--labels",
        tmp_path / "nab" / "combined_windows.json",
        "--detector",
        "holt-winters",
        "--out",
        tmp_path / "run",
    )
    assert status == 0, err
    files = strict_json(tmp_path / "run" / "metrics.json")["files"]
    assert files["realA/spiky.csv"]["tp"] == 1 and files["artificialB/clean.csv"]["fp"] == 0
    assert files["pooled"]["tp"] == 1 and files["pooled"]["fn"] == 0
    assert "pooled" in out
    summary = pd.read_csv(tmp_path / "run" / "summary.csv", index_col=0)
    assert list(summary.index) == ["artificialB/clean.csv", "realA/spiky.csv", "pooled"]
    for folder in ("realA__spiky", "artificialB__clean"):
        assert (tmp_path / "run" / folder / "anomalies.png").is_file()


def test_a_short_series_gets_a_shorter_window_not_a_refusal(run_app, tmp_path):
    csv = write_series(tmp_path / "short.csv", seasonal_series(200, period=24))
    status, out, err = run_app(
        "anomaly", "--csv", csv, "--detector", "zscore", "--out", tmp_path / "run"
    )
    assert status == 0, err
    assert "too few for --window 48; using 24 (its seasonal period)" in out


def test_the_alarm_rule_is_an_option_saved_with_the_run(run_app, tmp_path):
    values = seasonal_series(1600)
    values[1200:1204] += 4.0
    csv = write_series(tmp_path / "spiky.csv", values)
    run = tmp_path / "run"
    status, out, err = run_app(
        "anomaly", "--csv", csv, "--detector", "zscore", "--alarm-rule", "hundman", "--out", run
    )
    assert status == 0, err
    assert strict_json(run / "config.json")["settings"]["rule"] == "hundman"
    assert strict_json(run / "metrics.json")["table"]["rolling z-score"]["alarms"] == 1
    status, _, err = run_app("anomaly", "--load", run, "--csv", csv, "--alarm-rule", "strongest")
    assert status == 2 and "--alarm-rule: not used with --load" in err


def test_the_false_alarm_rate_is_an_option_saved_with_the_run(run_app, tmp_path):
    clean, _ = anomaly.injected_series(length=8000, anomalies=0, seed=5)
    csv = write_series(tmp_path / "clean.csv", clean[:, 0])
    run = tmp_path / "run"
    status, out, err = run_app(
        "anomaly",
        "--csv",
        csv,
        "--detector",
        "holt-winters",
        "--false-alarms",
        "0.1",
        "--out",
        run,
    )
    assert status == 0, err
    settings = strict_json(run / "config.json")["settings"]
    assert (settings["rule"], settings["false_alarms"]) == ("rate", 0.1)
    # A monitor sets its threshold on normal data: the audit's rule is refused, not ignored.
    status, _, err = run_app(
        "anomaly",
        "--csv",
        csv,
        "--train-fraction",
        0.5,
        "--false-alarms",
        "0.1",
        "--out",
        tmp_path / "monitor",
    )
    assert status == 2 and err.startswith("anomaly: error: --false-alarms: only an audit")
    assert strict_json(run / "metrics.json")["table"]["Holt-Winters"]["alarms"] <= 2


def test_messy_timestamps_are_repaired_and_reported(run_app, tmp_path):
    values = seasonal_series(600)
    times = pd.date_range("2024-03-01", periods=600, freq="5min", tz="UTC")
    stamps = [
        t.tz_convert("Europe/Paris").isoformat() if i % 2 else t.strftime("%Y-%m-%dT%H:%M:%SZ")
        for i, t in enumerate(times)
    ]
    frame = pd.DataFrame({"timestamp": stamps, "value": values})
    frame = pd.concat([frame, frame.iloc[[10, 20]]]).drop(index=[300, 301])  # duplicates and a gap
    frame.sample(frac=1, random_state=0).to_csv(tmp_path / "messy.csv", index=False)
    status, out, err = run_app(
        "anomaly",
        "--csv",
        tmp_path / "messy.csv",
        "--detector",
        "zscore",
        "--out",
        tmp_path / "run",
    )
    assert status == 0, err
    assert "UTC" in out and "duplicate" in out and "2 missing steps" in out
    scores = pd.read_csv(tmp_path / "run" / "scores.csv")
    assert len(scores) == 600 and scores["time"].iloc[0] == "2024-03-01 00:00:00"


# ---------------------------------------------------------------- refusals: one line, exit 2, nothing written


@pytest.fixture
def guarded_out(tmp_path):
    out = tmp_path / "out"
    with run_folder(out) as folder:  # a saved run: --overwrite may replace it
        (folder / "config.json").write_text('{"app": "anomaly"}')
        (folder / "scores.csv").write_text("precious")
    return out


def expect_user_error(run_app, guarded_out, *argv, match):
    before = sorted(p.name for p in guarded_out.iterdir())
    # A --load run takes its detector from the saved run, so naming one is an error of its own.
    detector = [] if "--load" in argv else ["--detector", "zscore"]
    status, out, err = run_app("anomaly", *detector, *argv, "--out", guarded_out, "--overwrite")
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anomaly: error:"), err
    assert match in lines[0], lines[0]
    assert (guarded_out / "scores.csv").read_text() == "precious"
    assert sorted(p.name for p in guarded_out.iterdir()) == before
    return lines[0]


def test_refusals(run_app, tmp_path, guarded_out):
    good = write_series(tmp_path / "good.csv", seasonal_series(400))
    expect_user_error(run_app, guarded_out, "--csv", tmp_path / "nope.csv", match="no such file")
    (tmp_path / "empty").mkdir()
    expect_user_error(
        run_app, guarded_out, "--csv", tmp_path / "empty", match="expected .csv files"
    )
    texts = pd.read_csv(good).astype(str)
    texts.loc[[5, 9], "value"] = ["abc", "1,5"]
    texts.to_csv(tmp_path / "text.csv", index=False)
    expect_user_error(
        run_app, guarded_out, "--csv", tmp_path / "text.csv", match="expected numbers"
    )
    infinite = pd.read_csv(good).astype(str)
    infinite.loc[[3], "value"] = "1e400"
    infinite.to_csv(tmp_path / "inf.csv", index=False)
    expect_user_error(run_app, guarded_out, "--csv", tmp_path / "inf.csv", match="finite")
    write_series(tmp_path / "tiny.csv", np.arange(10.0))
    expect_user_error(run_app, guarded_out, "--csv", tmp_path / "tiny.csv", match="16")
    (tmp_path / "bad.json").write_text("{ not json")
    expect_user_error(
        run_app, guarded_out, "--csv", good, "--labels", tmp_path / "bad.json", match="JSON"
    )
    expect_user_error(
        run_app, guarded_out, "--csv", good, "--train-fraction", 1.5, match="between 0 and 1"
    )
    expect_user_error(
        run_app, guarded_out, "--csv", good, "--series", "machine-temperature", match="not both"
    )
    doubled = pd.concat([pd.read_csv(good), pd.read_csv(good).iloc[:3]])
    doubled.to_csv(tmp_path / "doubled.csv", index=False)
    expect_user_error(
        run_app, guarded_out, "--csv", tmp_path / "doubled.csv", "--duplicates", "error", match="3"
    )
    other_app = tmp_path / "forecast_run"
    other_app.mkdir()
    (other_app / "config.json").write_text(json.dumps({"app": "forecast"}))
    expect_user_error(
        run_app,
        guarded_out,
        "--load",
        other_app,
        "--csv",
        good,
        match="a run of forecast.py, not of anomaly.py",
    )


def test_csv_repeated_reads_every_file(run_app, tmp_path):
    (tmp_path / "data").mkdir()
    first = write_series(tmp_path / "data" / "a.csv", seasonal_series(400))
    second = write_series(tmp_path / "data" / "b.csv", seasonal_series(400, seed=1))
    run = tmp_path / "run"
    status, out, err = run_app(
        "anomaly", "--csv", first, "--csv", second, "--detector", "zscore", "--out", run
    )
    assert status == 0, err
    files = strict_json(run / "metrics.json")["files"]  # keyed by path
    assert {str(first), str(second)} <= set(files)
    # A run over several files keeps no detector: --load says so, not "config.json damaged".
    status, _, err = run_app("anomaly", "--load", run, "--csv", first, "--out", tmp_path / "r2")
    assert status == 2 and "a run over 2 files keeps no detector" in err, err
    # The same file twice (or through a folder and by name) is read once.
    status, _, err = run_app(
        "anomaly", "--csv", first, first.parent, "--detector", "zscore", "--out", tmp_path / "r3"
    )
    assert status == 0, err
    assert len(strict_json(tmp_path / "r3" / "metrics.json")["files"]) == 2
    # One list of windows names no series: with two files it is refused, not given to both.
    labels = tmp_path / "windows.json"
    labels.write_text('[["2024-01-01 01:00:00", "2024-01-01 02:00:00"]]')
    status, _, err = run_app(
        "anomaly", "--csv", first, second, "--labels", labels, "--out", tmp_path / "r4"
    )
    assert status == 2 and err.count("\n") == 1
    assert "expected windows by series name for several series" in err


def test_load_warns_of_another_sampling_step_and_names_the_run_behind_saved_scores(
    run_app, tmp_path
):
    five_minutes = write_series(tmp_path / "cpu.csv", seasonal_series(400))
    hourly = write_series(tmp_path / "hourly.csv", seasonal_series(400), freq="h")
    run_a, run_b = tmp_path / "runA", tmp_path / "runB"
    status, _, err = run_app(
        "anomaly", "--csv", five_minutes, "--detector", "zscore", "--out", run_a
    )
    assert status == 0, err
    assert strict_json(run_a / "config.json")["sampling_step"] == "5 minutes"
    status, _, err = run_app("anomaly", "--load", run_a, "--csv", five_minutes, "--out", run_b)
    assert status == 0 and err == ""
    status, _, err = run_app("anomaly", "--load", run_a, "--csv", hourly, "--out", tmp_path / "c")
    assert status == 0 and err.count("\n") == 1
    assert "readings 1 hour apart, but the saved detector was fitted on readings 5 minutes" in err
    # runB holds scores made with runA, not a detector: say so, and which run to load.
    status, _, err = run_app(
        "anomaly", "--load", run_b, "--csv", five_minutes, "--out", tmp_path / "d"
    )
    assert status == 2 and err.count("\n") == 1
    assert f"received scores made with the run in {run_a} (load that run instead)" in err


def test_a_run_is_saved_whole_and_never_over_an_earlier_one(run_app, tmp_path, monkeypatch):
    csv = write_series(tmp_path / "cpu.csv", seasonal_series(600))
    run = tmp_path / "run"
    assert run_app("anomaly", "--csv", csv, "--detector", "zscore", "--out", run)[0] == 0
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    modes = {oct(path.stat().st_mode & 0o777) for path in run.iterdir()}
    assert len(modes) == 1, modes  # every file, the model too, shares one permission mode
    status, _, err = run_app("anomaly", "--csv", csv, "--detector", "zscore", "--out", run)
    assert status == 2 and "holds files" in err and "--overwrite" in err

    # A save that fails midway leaves the earlier run byte-identical and no debris beside it.
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(anomaly, "save_series", broken)
    status, _, err = run_app(
        "anomaly", "--csv", csv, "--detector", "zscore", "--out", run, "--overwrite"
    )
    assert status == 2 and "disk full" in err and err.count("\n") == 1
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cpu.csv", "run"]
    monkeypatch.undo()

    # A full disk names the run it could not write, in one line.
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "scores.csv")

    monkeypatch.setattr(anomaly, "save_series", disk_full)
    status, _, err = run_app(
        "anomaly", "--csv", csv, "--detector", "zscore", "--out", tmp_path / "new"
    )
    assert status == 2 and err.count("\n") == 1
    expected = (
        f"could not write the run to {tmp_path / 'new'} (No space left on device); nothing was"
    )
    assert expected in err and not (tmp_path / "new").exists()
    monkeypatch.undo()

    # --overwrite replaces the run whole once the new one is complete.
    status, _, err = run_app(
        "anomaly", "--csv", csv, "--detector", "discord", "--out", run, "--overwrite"
    )
    assert status == 0, err
    assert json.loads((run / "config.json").read_text())["detector"] == "discord"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cpu.csv", "run"]


def test_a_spike_on_a_huge_level_is_found_and_values_too_large_to_scale_are_refused(
    run_app, tmp_path
):
    values = 1e10 + seasonal_series(2000)
    values[1200:1230] += 200.0  # float32 steps by 1024 at 1e10: scaling must come first
    csv = write_series(tmp_path / "bytes.csv", values)
    status, out, err = run_app(
        "anomaly", "--csv", csv, "--detector", "zscore", "--out", tmp_path / "a"
    )
    assert status == 0, err
    flagged = pd.read_csv(tmp_path / "a" / "scores.csv")["flagged"].to_numpy()
    assert flagged[1200:1230].any()
    huge = tmp_path / "huge.csv"  # finite, but their spread overflows a float
    huge.write_text("timestamp,value\n" + "".join(f"{i},{(-1) ** i * 1e308}\n" for i in range(400)))
    status, _, err = run_app(
        "anomaly", "--csv", huge, "--detector", "zscore", "--out", tmp_path / "b"
    )
    assert status == 2 and err.count("\n") == 1 and "too large to scale" in err


def test_a_saved_run_is_never_inside_or_around_the_output_and_damage_is_one_line(
    run_app, tmp_path, monkeypatch
):
    csv = write_series(tmp_path / "cpu.csv", seasonal_series(800))
    runs = tmp_path / "runs"
    assert run_app("anomaly", "--csv", csv, "--quick", "--out", runs / "saved")[0] == 0
    for out in (runs, runs / "saved" / "inside"):
        status, _, err = run_app(
            "anomaly", "--load", runs / "saved", "--csv", csv, "--out", out, "--overwrite"
        )
        assert status == 2 and "apart from the loaded run" in err
    assert (runs / "saved" / "model.keras").is_file()
    monkeypatch.chdir(runs)
    status, _, err = run_app(
        "anomaly", "--csv", csv, "--detector", "zscore", "--out", ".", "--overwrite"
    )
    assert (
        status == 2
        and "a folder of its own" in err
        and sorted(p.name for p in runs.iterdir()) == ["saved"]
    )
    config = json.loads((runs / "saved" / "config.json").read_text())
    for damage in (
        {"settings": config["settings"] | {"factor": 0}},
        {"window": 16},
        {"value_cols": "value"},
    ):
        damaged = tmp_path / f"damaged{len(list(tmp_path.iterdir()))}"
        damaged.mkdir()
        (damaged / "model.keras").write_bytes((runs / "saved" / "model.keras").read_bytes())
        (damaged / "config.json").write_text(json.dumps(config | damage))
        status, _, err = run_app(
            "anomaly", "--load", damaged, "--csv", csv, "--out", tmp_path / "x"
        )
        assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_labels_file_for_other_series_leaves_this_one_unlabelled_and_says_so(tmp_path):
    times = pd.date_range("2020-01-01", periods=300, freq="5min")
    for name in ("a.csv", "b.csv"):
        values = np.sin(np.arange(300) / 10.0)
        pd.DataFrame({"timestamp": times, "value": values}).to_csv(tmp_path / name, index=False)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"a.csv": [[str(times[100]), str(times[110])]]}))
    a = anomaly.read_labelled(tmp_path / "a.csv", "a.csv", labels)
    b = anomaly.read_labelled(tmp_path / "b.csv", "b.csv", labels)
    assert a.label_windows == [(100, 110)] and a.is_anomaly.sum() == 11
    assert b.is_anomaly is None and not b.label_windows
    assert "labels.json names no windows for this series" in b.notes[-1]


def test_label_dates_are_read_day_first_like_the_series_they_label(tmp_path):
    times = pd.date_range("2024-01-01", periods=3000, freq="h")
    frame = pd.DataFrame({"timestamp": times.strftime("%d/%m/%Y %H:%M"), "value": np.arange(3000)})
    frame.to_csv(tmp_path / "eu.csv", index=False)
    (tmp_path / "labels.csv").write_text("start,end\n02/03/2024 00:00,04/03/2024 00:00\n")
    found = anomaly.read_labelled(tmp_path / "eu.csv", "eu.csv", tmp_path / "labels.csv")
    ((start, end),) = found.label_windows  # 2 to 4 March, not 3 February to 3 April
    assert (str(found.times[start]), str(found.times[end])) == (
        "2024-03-02 00:00:00",
        "2024-03-04 00:00:00",
    )
    # ISO dates stay ISO (NAB's labels file): pandas swaps "2024-03-02" under dayfirst.
    (tmp_path / "labels.json").write_text('[["2024-03-02 00:00:00.000000", "2024-03-04"]]')
    found = anomaly.read_labelled(tmp_path / "eu.csv", "eu.csv", tmp_path / "labels.json")
    assert str(found.times[found.label_windows[0][0]]) == "2024-03-02 00:00:00"


def test_a_saved_run_scores_channels_by_name(run_app, tmp_path):
    times = pd.date_range("2024-01-01", periods=600, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    temp, pressure = np.sin(np.arange(600) / 10), 100 + np.cos(np.arange(600) / 7)
    for name, columns in {
        "train": {"temp": temp, "pressure": pressure},
        "swapped": {"pressure": pressure, "temp": temp},  # the same channels, other order
        "other": {"rpm": temp, "humidity": pressure},
    }.items():
        pd.DataFrame({"timestamp": times, **columns}).to_csv(tmp_path / f"{name}.csv", index=False)
    run = tmp_path / "run"
    status, _, err = run_app(
        "anomaly", "--csv", tmp_path / "train.csv", "--detector", "zscore", "--out", run
    )
    assert status == 0, err
    status, _, err = run_app(
        "anomaly", "--load", run, "--csv", tmp_path / "swapped.csv", "--out", tmp_path / "s"
    )
    assert status == 0, err
    original = pd.read_csv(run / "scores.csv")
    swapped = pd.read_csv(tmp_path / "s" / "scores.csv")
    np.testing.assert_allclose(swapped["score"], original["score"], atol=1e-9)
    status, _, err = run_app(
        "anomaly", "--load", run, "--csv", tmp_path / "other.csv", "--out", tmp_path / "o"
    )
    assert status == 2 and "reads the channels temp, pressure; this series has rpm, humidity" in err
