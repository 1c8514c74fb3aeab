"""Benchmark the anomaly detectors: all four on every bundled series and any CSVs given, one table.

    python bench/anomaly.py                         # the three bundled series, about 4-5 minutes on 2 CPU cores
    python bench/anomaly.py machine.csv --label-col is_anomaly --train-fraction 0.3
    python bench/anomaly.py --quick                 # a smoke test of the benchmark itself

Prints, per series and detector, event-level precision, recall and F1 (and F1
with no tolerance), false alarms, point ROC AUC, the UCR top-1 rule and the
fitting time; then the mean over series, a plain verdict on whether each
recurrent detector beats both baselines, the scoring throughput in points per
second of each detector (after fitting, on this machine) and the wall time.
Every option after the CSV paths is an option of ``apps/anomaly.py`` and
applies to every CSV (``--time-col``, ``--value-col``, ``--label-col``,
``--labels``, ``--fill``, ``--train-fraction``, ``--window``, ``--epochs``...).
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "apps"))  # the apps are scripts; import one as a module

import anomaly as anomaly_app  # noqa: E402


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # CSV paths come first; everything from the first option on belongs to apps/anomaly.py (or --json).
    first_option = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Other options: see python apps/anomaly.py --help")
    parser.add_argument("csvs", nargs="*", type=Path, help="extra CSV series to add to the bundled ones, before any option")
    parser.add_argument("--json", type=Path, help="also write the table to this JSON file")
    own, app_argv = parser.parse_known_args(argv[first_option:])
    own.csvs = [Path(path) for path in argv[:first_option]]
    app = anomaly_app
    from common.cli import UserError

    args = app.parse_args(app_argv + ["--compare"])
    if args.quick:
        args.epochs, args.window, args.units = min(args.epochs, 3), min(args.window, 32), min(args.units, 8)
    started = time.perf_counter()
    try:
        all_series = app.load_series(args)  # every bundled series, since --compare is set and no --csv
        for path in own.csvs:
            all_series.append(app.read_series_csv(path, args.time_col, args.value_cols, args.label_col, args.labels, args.fill))
        for series in all_series:
            app.choose_parts(series, args)
    except UserError as error:
        print(f"anomaly bench: error: {error}", file=sys.stderr)
        return 2
    rows, verdict_lines, points_per_second = app.compare(args, all_series)
    app.print_compare(rows, verdict_lines, points_per_second, args)
    wall = time.perf_counter() - started
    print(f"Wall time {wall:.0f} s on {platform.processor() or platform.machine()} ({__import__('os').cpu_count()} CPUs), "
          f"--epochs {args.epochs} --window {args.window} --units {args.units} --seed {args.seed}")
    if own.json:
        own.json.write_text(json.dumps({"table": rows, "verdicts": verdict_lines, "points_per_second": points_per_second, "wall_seconds": wall}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
