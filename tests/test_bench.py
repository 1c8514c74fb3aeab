"""The benchmark scripts run end to end at toy size and print their tables (the figures are not judged)."""

import contextlib
import importlib.util
import io
import re

from conftest import REPO


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
        "textgen", "--minutes", "0.1", "--units", "16", "--no-before", "--steps-per-epoch", "5",
        "--chars", "20", "--batch-samples", "2", "--slow-chars", "2", "--out", str(tmp_path),
    )  # fmt: skip
    assert "Validation loss, best so far" in out
    assert "regularised: LSTM-16, dropout 0.1, cosine schedule" in out and "before:" not in out
    assert len(re.findall(r"256-character blocks \(as nanoGPT scores\): \d\.\d{4}", out)) == 1
    assert "Validation loss by position in 256-character blocks" in out
    assert re.search(r"^\| characters 51-256 \(beyond the training slices\)\s*\| \d\.\d", out, re.M)
    assert "stateful sampler, XLA, 2 samples" in out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["regularised"]
