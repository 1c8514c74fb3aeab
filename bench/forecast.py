"""Benchmark apps/forecast.py: model vs persistence vs drift, and training throughput.

    python bench/forecast.py                       # bundled MSFT, LSTM and GRU, about 1 minute each
    python bench/forecast.py prices.csv other.csv  # add your own series (Date and Close columns)
    python bench/forecast.py --cells lstm gru rnn --horizon 5

For every series and cell it runs the app's default training (same seed, same
chronological split) and prints one row per forecast: test MAE and directional
accuracy for the model beside persistence and drift, the model's MAE relative to
persistence (below 0% means it beat persistence), and training windows per
second. Not part of the test suite: timings depend on the machine and its load.
"""

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import common  # first: quiet TensorFlow
from apps import forecast as app


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "csvs", nargs="*", type=Path, help="extra price CSVs (columns Date and Close)"
    )
    parser.add_argument(
        "--cells",
        nargs="+",
        default=["lstm", "gru"],
        choices=sorted(common.CELLS),
        help="cells to compare (default: lstm gru)",
    )
    parser.add_argument("--horizon", type=int, default=1, help="business days ahead (default: 1)")
    parser.add_argument("--seed", type=int, default=42, help="seed for every run (default: 42)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="pass --quick to the app: check the script works in seconds",
    )
    return parser.parse_args(argv)


def run_once(csv, cell, args):
    with tempfile.TemporaryDirectory() as out:
        argv = [
            "--cell",
            cell,
            "--horizon",
            str(args.horizon),
            "--seed",
            str(args.seed),
            "--out",
            out,
        ]
        argv += ["--csv", str(csv)] if csv else []
        argv += ["--quick"] if args.quick else []
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            status = app.main(argv)
        seconds = time.perf_counter() - started
        if status != 0:
            return None
        return json.loads((Path(out) / "metrics.json").read_text()), seconds


def main(argv=None):
    args = parse_args(argv)
    rows = {}
    for csv in [None, *args.csvs]:
        name = "MSFT (bundled)" if csv is None else csv.name
        for cell in args.cells:
            result = run_once(csv, cell, args)
            if result is None:
                rows[f"{name} {cell}"] = {"note": "failed (see error above)"}
                continue
            metrics, seconds = result
            table = metrics["test"]
            model, persistence, drift = (
                table["model (median)"],
                table["persistence"],
                table["drift"],
            )
            rows[f"{name} {cell.upper()}"] = {
                "test days": metrics["examples"]["test"],
                "MAE model": model["MAE"],
                "MAE persist.": persistence["MAE"],
                "MAE drift": drift["MAE"],
                "vs persist. %": 100 * (model["MAE"] - persistence["MAE"]) / persistence["MAE"],
                "dir. % model": model["direction %"],
                "dir. % drift": drift["direction %"],
                "coverage %": metrics["quantiles"]["model"]["coverage 10-90 %"],
                "epochs": metrics["epochs_run"],
                "windows/s": metrics["train_windows_per_second"],
                "run s": seconds,
            }
    common.print_table(
        rows,
        title=f"Forecast benchmark: horizon {args.horizon}, seed {args.seed}{', --quick' if args.quick else ''}",
    )
    print(
        "vs persist. %: the model's test MAE relative to persistence; below 0 beats it. coverage: share inside the 10-90% band (80% ideal)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
