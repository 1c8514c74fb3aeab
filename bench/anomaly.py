"""Benchmark the anomaly app on a NAB-layout folder: overlap event scores per folder and pooled.

    python bench/anomaly.py --nab ../shared/nab-dev        # every detector, about 6 minutes on 2 CPU cores
    python bench/anomaly.py --nab ../shared/nab-dev --detectors bidirectional forecaster
    python bench/anomaly.py --nab ../shared/nab-dev --detectors bidirectional --seed 42 0 1
    python bench/anomaly.py --nab ../shared/nab-dev --quick  # a smoke test of the benchmark itself

A NAB-layout folder holds data/<folder>/<file>.csv and combined_windows.json,
which maps "folder/file.csv" to [start, end] windows. Every file is audited
with the app's default settings (fit on the whole series, threshold from the
scores, alarm intervals). A labelled window is found when an alarm interval
overlaps it; an interval overlapping no window is a false positive; counts are
pooled over files. The table prints per-folder F1, pooled precision, recall
and F1 over the folders that have windows, the alarms raised on folders with
no anomaly, the share of points inside an alarm (long alarms find windows
cheaply, so it is shown beside F1), the wall time, and the published figures
for the same rule. The first detector's errors are also thresholded the way
Hundman et al. (2018) do (dynamic threshold, padded intervals, pruning with
p = 0.13: ``alarms.hundman_alarms``), with the same fitted networks, to
compare the two alarm rules. With several seeds the first detector runs once per seed (the
baselines learn nothing random) and the spread of its pooled F1 is printed.

These are development figures: the app's settings were chosen on these files.
"""

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from apps import anomaly as app
from common.cli import UserError
from common.report.metrics import print_table
from common.tasks import alarms, anomaly
from common.tasks.detectors import DETECTORS, NAMES

# sintel-dev/Orion benchmark results, release 0.7.1: overlap F1 per NAB folder (the figures).
PUBLISHED = {
    "AER (Orion)": {"artificialWithAnomaly": 0.750, "realAWSCloudwatch": 0.702},
    "LSTM autoencoder (Orion)": {"artificialWithAnomaly": 0.545, "realAWSCloudwatch": 0.750},
    "LSTM dynamic threshold (Orion)": {"artificialWithAnomaly": 0.400, "realAWSCloudwatch": 0.537},
    "matrix profile (Orion)": {"artificialWithAnomaly": 0.571, "realAWSCloudwatch": 0.440},
}
SCORED = ("artificialWithAnomaly", "realAWSCloudwatch", "realKnownCause")


def run_detector(name, files, config, seed):
    """Audit every file with one detector; return its detections and the seconds taken."""
    detections, started = [], time.perf_counter()
    training = dict(units=config.units, epochs=config.epochs, batch_size=config.batch_size)
    for found in files:
        _, window, _ = anomaly.plan_window(found.values, config.window)
        detection = anomaly.detect(
            found.values, name, window, max_alarms=config.max_alarms, seed=seed, **training
        )
        row = alarms.overlap_scores(detection.alarms, found.label_windows or [])
        print(
            f"  {NAMES[name]:18} {found.name}: {len(detection.alarms)} alarm(s), "
            f"TP {row['tp']} FP {row['fp']} FN {row['fn']}",
            flush=True,
        )
        detections.append(detection)
    return detections, time.perf_counter() - started


def hundman_alarms(found, detection):
    """The same fitted detector, its errors thresholded and pruned as Hundman et al. (2018) do."""
    settings = dataclasses.replace(detection.settings, rule="hundman")
    return anomaly.rescore(
        found.values, detection.name, detection.detector, detection.scaler, settings, None
    ).alarms


def table_row(files, found_alarms, seconds):
    """Per-folder F1, pooled P/R/F1, alarms on no-anomaly files, share of points flagged."""
    by_folder, flagged, points = {}, 0, 0
    for found, intervals in zip(files, found_alarms):
        folder = found.name.split("/")[0]
        by_folder.setdefault(folder, []).append(
            alarms.overlap_scores(intervals, found.label_windows or [])
        )
        if folder in SCORED:
            flagged += int(alarms.intervals_to_mask(intervals, len(found)).sum())
            points += len(found)
    row = {
        folder: alarms.pooled_scores(by_folder[folder])["f1"]
        for folder in SCORED
        if folder in by_folder
    }
    pooled = alarms.pooled_scores([r for folder in SCORED for r in by_folder.get(folder, [])])
    row |= {"P": pooled["precision"], "R": pooled["recall"], "F1": pooled["f1"]}
    row["alarms, no-anomaly files"] = sum(r["fp"] for r in by_folder.get("artificialNoAnomaly", []))
    row["% flagged"] = round(100 * flagged / max(points, 1), 1)
    row["wall s"] = round(seconds) if seconds is not None else None
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--nab",
        type=Path,
        required=True,
        help="NAB-layout folder (data/ and combined_windows.json)",
    )
    parser.add_argument(
        "--detectors",
        nargs="+",
        choices=list(NAMES),
        default=["bidirectional", "zscore", "discord", "holt-winters"],
        help="detectors to run, the first with both alarm rules (default: %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="the app's --quick settings, two files per folder"
    )
    parser.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[42],
        help="one or more seeds for the first detector (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    config = app.read_config(
        [
            "--csv",
            str(args.nab / "data"),
            "--labels",
            str(args.nab / "combined_windows.json"),
            "--seed",
            str(args.seed[0]),
        ]
        + (["--quick"] if args.quick else [])
    )
    started = time.perf_counter()
    try:
        files = app.load_series(config)
    except UserError as error:
        print(f"anomaly bench: error: {error}", file=sys.stderr)
        return 2
    if args.quick:
        files = [
            f
            for f in files
            if sum(g.name.split("/")[0] == f.name.split("/")[0] for g in files[: files.index(f)])
            < 2
        ]
    print(f"{len(files)} files from {args.nab}; detectors: {', '.join(args.detectors)}")

    rows, spread = {}, {"(ours)": [], "Hundman threshold + pruning": []}
    first = args.detectors[0]
    for name in args.detectors:
        for seed in args.seed if name == first else args.seed[:1]:
            detections, seconds = run_detector(name, files, config, seed)
            seeded = f", seed {seed}" if name == first and len(args.seed) > 1 else ""
            row = table_row(files, [d.alarms for d in detections], seconds)
            rows[f"{NAMES[name]} (ours){seeded}"] = row
            if name != first:
                continue
            # The other alarm rule, with the same fitted detectors.
            hundman = [hundman_alarms(f, d) for f, d in zip(files, detections)]
            hundman_row = table_row(files, hundman, None)
            rows[f"{NAMES[name]}, Hundman threshold + pruning{seeded}"] = hundman_row
            spread["(ours)"].append(row["F1"])
            spread["Hundman threshold + pruning"].append(hundman_row["F1"])
    rows |= PUBLISHED
    print()
    print_table(
        rows,
        digits=3,
        columns=[*SCORED, "P", "R", "F1", "alarms, no-anomaly files", "% flagged", "wall s"],
        title="Overlap event scores; P, R, F1 pooled over "
        + ", ".join(SCORED)
        + " (published: Orion 0.7.1, n/a: not reported)",
    )
    if len(args.seed) > 1:
        for rule, figures in spread.items():
            print(
                f"{NAMES[first]} {rule}: pooled F1 over seeds {args.seed}: "
                f"mean {np.mean(figures):.3f}, {min(figures):.3f} to {max(figures):.3f}"
            )
    print(
        f"\nWall time {time.perf_counter() - started:.0f} s on {platform.machine()} "
        f"({os.cpu_count()} CPUs); app defaults: audit, --window {config.window} --units "
        f"{config.units} --epochs {config.epochs} --seed {' '.join(map(str, args.seed))}"
        f"{' (--quick)' if args.quick else ''}; detectors: {', '.join(sorted(DETECTORS))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
