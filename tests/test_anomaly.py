"""apps/anomaly.py and common/anomaly.py: scoring by hand, detection on a clean sine, reload, bad input."""

import json
import math

from common import anomaly  # first: imports TensorFlow quietly

import keras
import numpy as np
import pandas as pd
import pytest

# ---------------------------------------------------------------- event-level scoring, worked by hand


def flags_at(length, *runs):
    flags = np.zeros(length, dtype=bool)
    for start, end in runs:
        flags[start : end + 1] = True
    return flags


def test_label_windows_are_inclusive_runs():
    assert anomaly.label_windows([0, 1, 1, 0, 1]) == [(1, 2), (4, 4)]
    assert anomaly.label_windows([0, 0, 0]) == []
    assert anomaly.label_windows([1, 1]) == [(0, 1)]


def test_flag_overlapping_a_window_finds_it_and_its_spill_is_one_false_alarm():
    # Window 2..4; alarms 3..6: the window is found, points 5..6 lie outside it: one false alarm.
    scores = anomaly.event_scores(flags_at(10, (3, 6)), [(2, 4)])
    assert scores == {"windows": 1, "found": 1, "false_alarms": 1, "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3)}


def test_one_alarm_run_across_adjacent_windows_finds_both():
    windows = [(2, 4), (5, 7)]
    inside = anomaly.event_scores(flags_at(12, (4, 5)), windows)
    assert (inside["found"], inside["false_alarms"], inside["precision"], inside["recall"]) == (2, 0, 1.0, 1.0)
    # Spilling past the second window: points 8..9 are one false alarm; precision 2 / (2 + 1).
    spilled = anomaly.event_scores(flags_at(12, (3, 9)), windows)
    assert (spilled["found"], spilled["false_alarms"]) == (2, 1)
    assert spilled["precision"] == pytest.approx(2 / 3)


def test_separate_false_alarm_runs_and_a_missed_window():
    scores = anomaly.event_scores(flags_at(20, (0, 1), (5, 5), (9, 10)), [(9, 9), (15, 17)])
    # (9, 10) finds window 9..9; point 10 is outside every window: false alarms are 0..1, 5, 10.
    assert (scores["found"], scores["false_alarms"]) == (1, 3)
    assert scores["precision"] == pytest.approx(1 / 4)
    assert scores["recall"] == 0.5
    assert scores["f1"] == pytest.approx(2 * 0.25 * 0.5 / 0.75)


def test_no_labels_gives_undefined_recall_and_counts_false_alarms():
    scores = anomaly.event_scores(flags_at(8, (1, 2), (5, 5)), [])
    assert scores["false_alarms"] == 2 and scores["precision"] == 0.0
    assert math.isnan(scores["recall"]) and math.isnan(scores["f1"])
    quiet = anomaly.event_scores(np.zeros(8, dtype=bool), [])
    assert quiet["false_alarms"] == 0 and math.isnan(quiet["precision"])


def test_nothing_flagged_with_labels_is_f1_zero():
    scores = anomaly.event_scores(np.zeros(10, dtype=bool), [(3, 4)])
    assert (scores["found"], scores["recall"], scores["f1"]) == (0, 0.0, 0.0)
    assert math.isnan(scores["precision"])


def test_windows_outside_the_series_are_rejected():
    with pytest.raises(ValueError, match="Expected windows inside"):
        anomaly.event_scores(np.zeros(5, dtype=bool), [(3, 7)])


def test_roc_auc_counts_ties_half_and_skips_unscored_points():
    # Anomalous 0.9 and 0.4 against normal 0.1 and 0.4: pairs won 1 + 1 + 1 + 0.5 of 4.
    assert anomaly.roc_auc([0.1, 0.9, 0.4, 0.4, np.nan], [0, 1, 0, 1, 1]) == pytest.approx(0.875)
    assert math.isnan(anomaly.roc_auc([0.1, 0.2], [0, 0]))


def test_ucr_top1_rule_with_tolerance():
    scores = np.zeros(300)
    scores[150] = 5.0
    assert anomaly.ucr_top1(scores, [(100, 110)], tolerance=50) is True
    assert anomaly.ucr_top1(scores, [(100, 110)], tolerance=0) is False
    assert anomaly.ucr_top1(scores, [(1, 2), (100, 110)]) is None


def test_point_scores_average_the_windows_covering_each_point():
    errors = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])  # windows start at 0 and 1, length 3
    scores = anomaly.point_scores_from_window_errors(errors, np.array([0, 1]), length=5)
    np.testing.assert_allclose(scores, [1.0, (2 + 10) / 2, (3 + 20) / 2, 30.0, np.nan])


def test_threshold_uses_held_out_scores_only():
    assert anomaly.threshold_from_normal([1.0, np.nan, 2.0], factor=1.5) == 3.0


def test_matrix_profile_finds_a_distorted_cycle_and_ignores_a_repeat_of_normal():
    steps = np.arange(1200)
    series = np.sin(2 * np.pi * steps / 40)
    series[900:920] = np.sign(series[900:920])  # one cycle squared off
    detector = anomaly.MatrixProfileDiscord(window=40).fit(series[:600])
    scores = detector.score(series, exclude_offset=0)
    assert 880 <= np.nanargmax(scores) <= 940
    assert np.nanmax(scores[600:850]) < 0.01 < 1 < np.nanmax(scores)  # later normal cycles match the reference (to rounding)


def test_rolling_zscore_flags_a_spike():
    rng = np.random.default_rng(0)
    series = rng.normal(size=500)
    series[400] = 12.0
    scores = anomaly.RollingZScore(window=50).score(series)
    assert np.all(np.isnan(scores[:50])) and np.nanargmax(scores) == 400


# ---------------------------------------------------------------- the app


def sine_csv(path, length=1600, spike_at=1000, shift_from=1300):
    """A clean sine (period 40, a little noise) with one spike and one lasting level shift."""
    rng = np.random.default_rng(7)
    steps = np.arange(length)
    values = np.sin(2 * np.pi * steps / 40) + rng.normal(0, 0.03, length)
    values[spike_at] += 3.0
    values[shift_from:] += 1.5
    labels = np.zeros(length, dtype=int)
    labels[spike_at] = 1
    labels[shift_from:] = 1
    pd.DataFrame({"timestamp": steps, "value": np.round(values, 5), "is_anomaly": labels}).to_csv(path, index=False)
    return path


def test_quick_run_end_to_end(run_app, tmp_path):
    status, out, err = run_app("anomaly", "--quick", "--seed", 3, "--out", tmp_path)
    assert status == 0, err
    for name in ("model.keras", "config.json", "scores.csv", "anomalies.csv", "metrics.json", "anomalies.png"):
        assert (tmp_path / name).is_file(), name
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == 7501 and list(scores.columns) == ["time", "value", "score", "flagged", "is_anomaly", "part"]
    assert scores["part"].value_counts().to_dict() == {"test": 6301, "fit": 900, "held out": 300}
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["test"]) == {"LSTM autoencoder", "rolling z-score", "MP discord"}
    threshold = metrics["threshold"]
    assert (scores["flagged"] == (scores["score"] > threshold)).all()
    events = pd.read_csv(tmp_path / "anomalies.csv")
    assert list(events.columns) == ["start", "end", "start_index", "end_index", "peak_score"]
    assert len(events) == metrics["events"] and (events["peak_score"] > threshold).all()
    # The threshold is from the held-out normal part: nothing there exceeds it (but the last window,
    # whose scores in scores.csv also see the test part's first points).
    assert not scores["flagged"][900 : 1200 - 32].any()
    model = keras.models.load_model(tmp_path / "model.keras")  # plain Keras, no custom objects
    assert model.output.shape[1:] == (32, 1)
    assert "LSTM autoencoder" in out and "MP discord" in out


def test_spike_and_level_shift_in_a_sine_are_found_without_false_alarms(run_app, tmp_path):
    csv = sine_csv(tmp_path / "sine.csv")
    status, out, err = run_app(
        "anomaly", "--csv", csv, "--detector", "forecaster", "--window", 40, "--units", 16, "--epochs", 12,
        "--train-fraction", 0.5, "--seed", 1, "--out", tmp_path / "run",
    )
    assert status == 0, err
    row = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]["LSTM forecaster"]
    assert (row["recall"], row["false alarms"], row["precision"]) == (1.0, 0, 1.0)
    # And without the tolerance: each alarm lies inside a labelled window or within 40 points after the spike.
    scores = pd.read_csv(tmp_path / "run" / "scores.csv")
    flagged = np.flatnonzero(scores["flagged"])
    assert flagged.size and all((1000 <= t <= 1040) or t >= 1300 for t in flagged)
    assert scores["flagged"][1000:1010].any() and scores["flagged"][1300:1340].any()


def test_reload_gives_identical_scores_and_refuses_to_overwrite(run_app, tmp_path):
    csv = sine_csv(tmp_path / "sine.csv", length=600, spike_at=450, shift_from=520)
    run = tmp_path / "run"
    status, _, err = run_app("anomaly", "--csv", csv, "--quick", "--detector", "forecaster", "--train-fraction", 0.5, "--out", run)
    assert status == 0, err
    status, out, err = run_app("anomaly", "--load", run, "--csv", csv, "--out", tmp_path / "again")
    assert status == 0, err
    first, second = pd.read_csv(run / "scores.csv"), pd.read_csv(tmp_path / "again" / "scores.csv")
    np.testing.assert_allclose(second["score"], first["score"], rtol=1e-6)
    assert (second["flagged"] == first["flagged"]).all()
    before = (run / "scores.csv").read_bytes()
    status, _, err = run_app("anomaly", "--load", run, "--csv", csv, "--out", run)
    assert status == 2 and "overwritten" in err and (run / "scores.csv").read_bytes() == before


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing overwritten


def write(path, text):
    path.write_text(text)
    return path


def integer_csv(path, length=400, **replace):
    frame = pd.DataFrame({"timestamp": np.arange(length), "value": np.sin(np.arange(length) / 5).round(4).astype(str)})
    for row, text in replace.items():
        frame.loc[int(row.removeprefix("row")), "value"] = text
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def guarded_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "scores.csv").write_text("precious")
    return out


def expect_user_error(run_app, guarded_out, *argv, match):
    status, out, err = run_app("anomaly", "--detector", "zscore", *argv, "--out", guarded_out)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anomaly: error:"), err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err
    assert (guarded_out / "scores.csv").read_text() == "precious"
    assert sorted(p.name for p in guarded_out.iterdir()) == ["scores.csv"]
    return lines[0]


def test_missing_file(run_app, tmp_path, guarded_out):
    expect_user_error(run_app, guarded_out, "--csv", tmp_path / "nope.csv", match="no such file")


def test_missing_column(run_app, tmp_path, guarded_out):
    csv = integer_csv(tmp_path / "a.csv")
    expect_user_error(run_app, guarded_out, "--csv", csv, "--value-col", "price", match="no column 'price'")
    expect_user_error(run_app, guarded_out, "--csv", csv, "--time-col", "date", match="no column 'date'")


def test_non_numeric_values(run_app, tmp_path, guarded_out):
    csv = integer_csv(tmp_path / "a.csv", row5="abc", row9="1,5")
    expect_user_error(run_app, guarded_out, "--csv", csv, "--value-col", "value", match="2 values in column 'value' are not numbers")


def test_gaps_and_nans_are_counted_and_fill_interpolates(run_app, tmp_path, guarded_out):
    frame = pd.read_csv(integer_csv(tmp_path / "a.csv"))
    frame.loc[[10, 11, 12], "value"] = np.nan
    frame = frame.drop(index=[100, 101])  # two missing time steps
    frame.to_csv(tmp_path / "gappy.csv", index=False)
    line = expect_user_error(run_app, guarded_out, "--csv", tmp_path / "gappy.csv", match="2 missing time steps and 3 empty or NaN values")
    assert "--fill" in line
    status, out, err = run_app("anomaly", "--csv", tmp_path / "gappy.csv", "--fill", "--detector", "zscore", "--window", 20, "--out", tmp_path / "filled")
    assert status == 0, err
    scores = pd.read_csv(tmp_path / "filled" / "scores.csv")
    assert len(scores) == 400 and scores["value"].notna().all()
    assert scores["value"][11] == pytest.approx((scores["value"][9] + scores["value"][13]) / 2)  # midway along a straight line
    assert scores["time"][100] == 100 and scores["value"][100] == pytest.approx((2 * scores["value"][99] + scores["value"][102]) / 3)


def test_series_shorter_than_two_windows(run_app, tmp_path, guarded_out):
    csv = integer_csv(tmp_path / "a.csv", length=100)
    expect_user_error(run_app, guarded_out, "--csv", csv, "--window", 64, match="shorter than two windows")


def test_labels_outside_the_time_range(run_app, tmp_path, guarded_out):
    csv = integer_csv(tmp_path / "a.csv")
    labels = write(tmp_path / "labels.json", json.dumps([[50, 60], [390, 450]]))
    expect_user_error(run_app, guarded_out, "--csv", csv, "--labels", labels, match="outside the series' time range")


def test_datetime_labels_in_nab_layout_are_read(run_app, tmp_path):
    times = pd.date_range("2024-01-01", periods=400, freq="5min")
    values = np.sin(np.arange(400) / 5)
    values[300] += 5
    pd.DataFrame({"timestamp": times.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(tmp_path / "d.csv", index=False)
    labels = write(tmp_path / "w.json", json.dumps({"d.csv": [["2024-01-02 00:50:00", "2024-01-02 01:10:00"]]}))
    status, out, err = run_app("anomaly", "--csv", tmp_path / "d.csv", "--labels", labels, "--detector", "zscore", "--window", 20, "--out", tmp_path / "r")
    assert status == 0, err
    scores = pd.read_csv(tmp_path / "r" / "scores.csv")
    assert np.flatnonzero(scores["is_anomaly"]).tolist() == [298, 299, 300, 301, 302]


def test_corrupt_model_directory(run_app, tmp_path, guarded_out):
    csv = integer_csv(tmp_path / "a.csv")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "config.json").write_text(json.dumps({"detector": "autoencoder", "threshold": 1.0, "window": 16, "units": 8,
                                                   "scaler": {"mean": [0.0], "scale": [1.0]}, "value_cols": ["value"]}))
    (saved / "model.keras").write_bytes(b"not a zip archive")
    expect_user_error(run_app, guarded_out, "--load", saved, "--csv", csv, match="model.keras is damaged")
    (saved / "config.json").write_text("{ half a config")
    expect_user_error(run_app, guarded_out, "--load", saved, "--csv", csv, match="config.json is missing or damaged")
