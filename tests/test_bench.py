"""The benchmark scripts run end to end at toy size and print their tables (the figures are not judged)."""

import contextlib
import importlib.util
import io
import re

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow  # each runs a benchmark end to end, at toy size


def load_bench(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_bench(name, *argv):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert load_bench(name).main(list(argv)) == 0
    return stdout.getvalue()


def test_sentiment_bench_prints_every_model_over_the_runs():
    out = run_bench("sentiment", "--quick", "--runs", "1")
    assert re.search(r"^run 1 \(base seed 42\)", out, flags=re.MULTILINE)
    rows = ("| RNN ", "| TF-IDF + logistic regression", "| wide & deep", "| RNN and TF-IDF + LR")
    for row in rows:
        assert row in out, row
    assert re.search(r"RNN, one network\s*\|\s*1\s*\|", out)  # --quick: one network per run


def test_textgen_bench_prints_the_curve_the_block_score_and_the_speed_table(tmp_path):
    # One run (--no-before): the "before" run is the same code with other settings.
    out = run_bench(
        "textgen",
        "--minutes",
        "0.1",
        "--units",
        "16",
        "--no-before",
        "--train-step",  # auto is tested in test_textgen.py; timing three ways costs seconds here
        "xla",
        "--steps-per-epoch",
        "5",
        "--chars",
        "20",
        "--batch-samples",
        "2",
        "--slow-chars",
        "2",
        "--out",
        str(tmp_path),
    )
    assert "Validation loss, best so far" in out
    assert (
        "regularised: LSTM-16, dropout 0.1, cosine schedule, xla step" in out
        and "before:" not in out
    )
    assert len(re.findall(r"256-character blocks \(as nanoGPT scores\): \d\.\d{4}", out)) == 1
    assert "Validation loss by position in 256-character blocks" in out
    assert re.search(r"^\| characters 51-256 \(beyond the training slices\)\s*\| \d\.\d", out, re.M)
    assert "stateful sampler, XLA, 2 samples" in out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["regularised"]


def test_forecast_bench_prints_the_model_beside_persistence_and_drift():
    out = run_bench("forecast", "--quick", "--cells", "gru", "--seed", "1")
    assert "Forecast benchmark: horizon 1, seed 1, --quick" in out
    row = next(line for line in out.splitlines() if line.startswith("| MSFT (bundled) GRU"))
    assert "failed" not in row and len(row.split("|")) > 10  # every column has a figure


def test_anomaly_bench_scores_a_nab_layout_folder(tmp_path):
    import json

    import numpy as np
    import pandas as pd

    # Two short NAB-like files (5-minute readings, a daily cycle), one with a labelled spike.
    times = pd.date_range("2024-01-01", periods=1200, freq="5min")
    normal = np.sin(np.arange(1200) * 2 * np.pi / 288) + np.random.default_rng(0).normal(
        0, 0.05, 1200
    )
    spiked = normal.copy()
    spiked[800:806] += 6.0
    files = {"artificialNoAnomaly/flat.csv": normal, "artificialWithAnomaly/spike.csv": spiked}
    for name, values in files.items():
        (tmp_path / "data" / name).parent.mkdir(parents=True)
        pd.DataFrame({"timestamp": times, "value": values}).to_csv(
            tmp_path / "data" / name, index=False
        )
    labels = {
        "artificialNoAnomaly/flat.csv": [],
        "artificialWithAnomaly/spike.csv": [[str(times[790]), str(times[815])]],
    }
    (tmp_path / "combined_windows.json").write_text(json.dumps(labels))
    out = run_bench(
        "anomaly",
        "--nab",
        str(tmp_path),
        "--quick",
        "--lofo",
        "--detectors",
        "holt-winters",
        "zscore",
    )
    assert "2 files from" in out
    for row in (
        "rolling z-score (ours)",
        "Holt-Winters, Hundman threshold",
        "Holt-Winters (ours)",
    ):
        assert f"| {row}" in out, row
    assert re.search(
        r"rolling z-score +artificialWithAnomaly/spike.csv: 1 alarm\(s\), TP 1 FP 0 FN 0", out
    )
    # The honest figure: rules chosen on the other folders, and the synthetic check.
    lofo = re.search(r"\| Holt-Winters, seed 42 +\|(.+)", out).group(1).split("|")
    assert len(lofo) > 10 and "held out artificialWithAnomaly: {'rule'" in out
    # The default hybrid: its LSTM alone and its weight chosen out of folder, from the same fits.
    hybrid = run_bench(
        "anomaly", "--nab", str(tmp_path), "--quick", "--lofo", "--detectors", "hybrid"
    )
    for row in (
        "LSTM + Holt-Winters (ours)",
        "bidirectional LSTM alone (the same fits)",
        "bidirectional LSTM alone, seed 42",
        "LSTM + Holt-Winters, weight chosen too, seed 42",
    ):
        assert f"| {row}" in hybrid, row
    assert re.search(
        r"weight chosen too, seed 42: held out artificialWithAnomaly: weight \d", hybrid
    )
    monitor = run_bench(
        "anomaly", "--nab", str(tmp_path), "--quick", "--monitor", "--detectors", "holt-winters"
    )
    assert re.search(r"\| Holt-Winters +\| 1 +\| 1 +\| 1 ", monitor), monitor


def test_scale_bench_prints_throughput_at_one_and_two_replicas():
    out = run_bench("scale", "--quick", "--apps", "forecast")
    row = re.search(
        r"^\| forecast \| 64 \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \(2 replicas\) \|", out, re.M
    )
    assert row, out
    assert all(int(number.replace(",", "")) > 0 for number in row.groups())


def test_translate_bench_prints_the_network_the_transformer_the_baselines_and_the_targets():
    out = run_bench("translate", "--quick")
    assert "Translation benchmark, Spanish -> English" in out
    for row in ("network, greedy", "network, beam 4", "transformer, greedy", "retrieval (TF-IDF)"):
        assert f"| {row}" in out
    assert "| beam >= greedy + 0.5 BLEU" in out and "Verdict: " in out


def test_speech_bench_prints_each_held_out_voice_the_average_fsdds_split_and_the_targets():
    out = run_bench("speech", "--quick", "--speakers", "theo")
    for row in ("theo (unseen)", "average of 1 unseen voices", "FSDD split"):
        assert f"| {row}" in out, out
    assert "| digits, unseen voices >= 95%" in out and "10 s recording < 1 s" in out
