"""Benchmark the anomaly app on a NAB-layout folder: overlap event scores per folder and pooled.

    python bench/anomaly.py --nab ../shared/nab-dev        # every detector, about 6 minutes on 2 CPU cores
    python bench/anomaly.py --nab ../shared/nab-dev --detectors forecaster
    python bench/anomaly.py --nab ../shared/nab-dev --quick  # a smoke test of the benchmark itself

A NAB-layout folder holds data/<folder>/<file>.csv and combined_windows.json,
which maps "folder/file.csv" to [start, end] windows. Every file is audited
with the app's default settings (fit on the whole series, threshold from the
scores, alarm intervals). A labelled window is found when an alarm interval
overlaps it; an interval overlapping no window is a false positive; counts are
pooled over files. The table prints per-folder F1, pooled precision, recall
and F1 over the folders that have windows, the alarms raised on folders with
no anomaly, the wall time, and the published figures for the same rule.
"""

import argparse
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "apps"))  # the apps are scripts; import one as a module

import anomaly as app  # noqa: E402
from common import alarms  # noqa: E402
from common import anomaly, evaluation  # noqa: E402

# sintel-dev/Orion benchmark results, release 0.7.1: overlap F1 per NAB folder (the figures).
PUBLISHED = {
    "AER (Orion)": {"artificialWithAnomaly": 0.750, "realAWSCloudwatch": 0.702},
    "LSTM autoencoder (Orion)": {"artificialWithAnomaly": 0.545, "realAWSCloudwatch": 0.750},
    "LSTM dynamic threshold (Orion)": {"artificialWithAnomaly": 0.400, "realAWSCloudwatch": 0.537},
    "matrix profile (Orion)": {"artificialWithAnomaly": 0.571, "realAWSCloudwatch": 0.440},
}
SCORED = ("artificialWithAnomaly", "realAWSCloudwatch", "realKnownCause")


def run_detector(name, files, config):
    """Audit every file with one detector; return {folder: [overlap rows]} and the seconds taken."""
    by_folder, started = {}, time.perf_counter()
    for found in files:
        _, window = app.plan(found, config)
        detection = app.detect(found, name, config, None, window)
        row = alarms.overlap_scores(detection.alarms, found.label_windows or [])
        by_folder.setdefault(found.name.split("/")[0], []).append(row)
        print(f"  {app.NAMES[name]:16} {found.name}: {len(detection.alarms)} alarm(s), "
              f"TP {row['tp']} FP {row['fp']} FN {row['fn']}", flush=True)
    return by_folder, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nab", type=Path, required=True, help="NAB-layout folder (data/ and combined_windows.json)")
    parser.add_argument("--detectors", nargs="+", choices=list(app.NAMES),
                        default=["forecaster", "zscore", "discord"], help="detectors to run (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="the app's --quick settings, two files per folder")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    config = app.read_config(["--csv", str(args.nab / "data"), "--labels", str(args.nab / "combined_windows.json"),
                              "--seed", str(args.seed)] + (["--quick"] if args.quick else []))
    started = time.perf_counter()
    try:
        files = app.load_series(config)
    except app.UserError as error:
        print(f"anomaly bench: error: {error}", file=sys.stderr)
        return 2
    if args.quick:
        files = [f for f in files if sum(g.name.split("/")[0] == f.name.split("/")[0] for g in files[: files.index(f)]) < 2]
    print(f"{len(files)} files from {args.nab}; detectors: {', '.join(args.detectors)}")

    rows = {}
    for name in args.detectors:
        by_folder, seconds = run_detector(name, files, config)
        row = {folder: alarms.pooled_scores(by_folder[folder])["f1"] for folder in SCORED if folder in by_folder}
        pooled = alarms.pooled_scores([r for folder in SCORED for r in by_folder.get(folder, [])])
        row |= {"P": pooled["precision"], "R": pooled["recall"], "F1": pooled["f1"]}
        row["alarms, no-anomaly files"] = sum(r["fp"] for r in by_folder.get("artificialNoAnomaly", []))
        row["wall s"] = round(seconds)
        rows[app.NAMES[name] + " (ours)"] = row
    rows |= PUBLISHED
    print()
    evaluation.print_table(
        rows, digits=3, columns=[*SCORED, "P", "R", "F1", "alarms, no-anomaly files", "wall s"],
        title="Overlap event scores; P, R, F1 pooled over " + ", ".join(SCORED) + " (published: Orion 0.7.1, n/a: not reported)",
    )
    window = config.window
    print(f"\nWall time {time.perf_counter() - started:.0f} s on {platform.machine()} ({__import__('os').cpu_count()} CPUs); "
          f"app defaults: audit, --window {window} --units {config.units} --epochs {config.epochs} --seed {config.seed}"
          f"{' (--quick)' if args.quick else ''}; detectors: {', '.join(sorted(anomaly.DETECTORS))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
