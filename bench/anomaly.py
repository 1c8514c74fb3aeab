"""Benchmark the anomaly app on a NAB-layout folder: overlap event scores per folder and pooled.

    python bench/anomaly.py --nab ../shared/nab-dev        # the default and its baselines, about 7 minutes on 2 CPU cores
    python bench/anomaly.py --nab ../shared/nab-dev --detectors bidirectional forecaster
    python bench/anomaly.py --nab ../shared/nab-dev --detectors hybrid --seed 42 0 1
    python bench/anomaly.py --nab ../shared/nab-dev --lofo --seed 0 1 2   # the honest figure, about 20 minutes
    python bench/anomaly.py --nab ../shared/nab-dev --monitor --detectors bidirectional forecaster
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
The honest figure is ``--lofo``'s (leave one folder out): for each of the
three labelled folders, every alarm rule of :data:`RULE_GRID` is scored on the
other two, the best is kept and scored on the held-out folder; the held-out
counts are pooled. Each detector chooses its own rule, so a baseline gets the
same chance; no rule flagging over 10% of the points it is chosen on is chosen
(overlap scoring rewards long alarms). For the default hybrid detector two more
rows come from the same fits: its LSTM alone, and the hybrid with its
Holt-Winters weight chosen out of folder too (from :data:`WEIGHTS`, with the
rule), since that weight was itself chosen on these folders. It also runs the chosen detector on a long synthetic series with 20
injected anomalies and on the same series clean (:func:`anomaly.injected_series`).

``--monitor`` fits each file's first 15% (NAB's probationary period) and
alarms after it, as a live monitor would, and measures each found window's
detection delay: from the window's start to its first alarm, plus the
readings the detector waits for before a score is final (``anomaly.score_delay``).
"""

import argparse
import dataclasses
import itertools
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
CLEAN = "artificialNoAnomaly"
# The alarm rules --lofo chooses among: the default rule's settings explored while choosing it.
# (The earlier "strongest two" rule is not among them: its count of alarms per file is not
# a user's unit. The table shows it on the same networks.)
RULE_GRID = [
    {"rule": "rate", "false_alarms": rate, "base_z": base_z, "min_ratio": min_ratio}
    for rate, base_z, min_ratio in itertools.product(
        (0.2, 0.5, 1.0, 2.0), (0.5, 1.0, 2.0), (0.0, 0.3, 0.5)
    )
]


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


def alarms_by_rule(found, detection, rule):
    """Alarm intervals of one audit under another rule, from its smoothed scores (nothing refitted)."""
    settings = dataclasses.replace(detection.settings, **rule)
    coarse = detection.smoothed[:: settings.factor]  # expand() repeated each score factor times
    intervals, _ = anomaly.choose_alarms(coarse, settings)
    return anomaly.expand_intervals(intervals, settings.factor, len(found))


def clean_rate(files, found_alarms):
    """Alarms per 1,000 points on the files with no anomaly (all of them false)."""
    pairs = [(f, a) for f, a in zip(files, found_alarms) if f.name.split("/")[0] == CLEAN]
    points = sum(len(f) for f, _ in pairs)
    return 1000 * sum(len(a) for _, a in pairs) / points if points else float("nan")


def folder_counts(files, found_alarms):
    """{folder: (overlap_scores rows, points flagged, points)} of the labelled folders."""
    counts = {}
    for found, intervals in zip(files, found_alarms):
        folder = found.name.split("/")[0]
        if folder in SCORED:
            rows, flagged, points = counts.get(folder, ([], 0, 0))
            rows.append(alarms.overlap_scores(intervals, found.label_windows or []))
            flagged += int(alarms.intervals_to_mask(intervals, len(found)).sum())
            counts[folder] = (rows, flagged, points + len(found))
    return counts


# Overlap scoring rewards long alarms: one interval over half a series finds every window in
# it. A rule that flags more than this share of the points on the folders it is chosen on is
# not chosen (NAB sizes its windows to hold about a tenth of each file).
MAX_FLAGGED = 0.10


def leave_one_folder_out(files, variants):
    """Held-out F1 per folder, pooled over the three, and the choice each fold made.

    ``variants``: {label: audits of every file}, e.g. one detector, or one
    hybrid mixed with several weights (:func:`weight_variants`). Every rule of
    :data:`RULE_GRID` is applied to every variant; for each held-out folder,
    among the choices flagging at most :data:`MAX_FLAGGED` of the points of the
    other two, the one with the best pooled F1 there is kept (ties: fewer
    alarms on the clean files, then the earlier one) and scored on the held-out folder.
    """
    by_choice, labels = [], []
    for label, detections in variants.items():
        for rule in RULE_GRID:
            found_alarms = [alarms_by_rule(f, d, rule) for f, d in zip(files, detections)]
            by_choice.append((folder_counts(files, found_alarms), clean_rate(files, found_alarms)))
            labels.append(f"{label}{', ' if label else ''}{rule}")
    row, held_rows, chosen = {}, [], {}
    for held in SCORED:
        others = [folder for folder in SCORED if folder != held]

        def on_others(index):
            counts, rate = by_choice[index]
            parts = [counts.get(f, ([], 0, 0)) for f in others]
            f1 = alarms.pooled_scores([r for rows, _, _ in parts for r in rows])["f1"]
            share = sum(p[1] for p in parts) / max(sum(p[2] for p in parts), 1)
            return (share <= MAX_FLAGGED, np.nan_to_num(f1), -np.nan_to_num(rate), -index)

        best = max(range(len(by_choice)), key=on_others)
        held_out = alarms.pooled_scores(by_choice[best][0].get(held, ([], 0, 0))[0])
        row[held] = held_out["f1"]
        held_rows.append(held_out)
        chosen[held] = labels[best]
    pooled = alarms.pooled_scores(held_rows)
    row |= {"P": pooled["precision"], "R": pooled["recall"], "F1": pooled["f1"]}
    return row, chosen


# The Holt-Winters shares a fold may choose for the hybrid detector (0: its LSTM half, re-centred).
WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)


def weight_variants(files, detections):
    """{"weight w": audits}: the same fitted hybrids, their two parts mixed with each of :data:`WEIGHTS`."""
    parts = []
    for found, detection in zip(files, detections):
        factor = detection.settings.factor
        coarse = detection.scaler.transform(anomaly.aggregate(found.values, factor))
        parts.append(detection.detector.parts(coarse.astype("float32")))
    variants = {}
    for weight in WEIGHTS:
        variants[f"weight {weight:g}"] = [
            dataclasses.replace(
                d,
                smoothed=anomaly.expand(
                    alarms.smooth(d.detector.mix(p, weight), d.settings.span),
                    d.settings.factor,
                    len(f),
                ),
            )
            for f, d, p in zip(files, detections, parts)
        ]
    return variants


def synthetic_check(name, config, seed):
    """The audit's default rule on a long series with 20 injected anomalies, and on it clean."""
    row = {}
    for count in (20, 0):
        values, windows = anomaly.injected_series(anomalies=count, seed=seed)
        _, window, _ = anomaly.plan_window(values, config.window)
        detection = anomaly.detect(
            values, name, window, seed=seed, units=config.units, epochs=config.epochs
        )
        scores = alarms.overlap_scores(detection.alarms, windows)
        if count:
            row |= {"synthetic: found of 20": scores["tp"], "synthetic: false": scores["fp"]}
        else:
            row["synthetic clean: per 1,000"] = 1000 * len(detection.alarms) / len(values)
    return row


def monitor_row(name, files, config, seed):
    """Monitor each file after its first 15%: overlap F1 and the detection delays."""
    results, delays, hours, waits, started = [], [], [], [], time.perf_counter()
    training = dict(units=config.units, epochs=config.epochs, batch_size=config.batch_size)
    for found in files:
        normal_end = int(0.15 * len(found))
        _, window, _ = anomaly.plan_window(found.values, config.window, normal_end)
        detection = anomaly.detect(found.values, name, window, normal_end, seed=seed, **training)
        wait = anomaly.score_delay(detection)
        waits.append(wait)
        for start, end in found.label_windows or []:
            if start < normal_end:
                continue  # inside the normal prefix: a monitor never scores it
            hits = [a for a, b in detection.alarms if a <= end and b >= start]
            if hits:
                delays.append(max(min(hits) - start, 0) + wait)
                if hasattr(found.step, "total_seconds"):
                    hours.append(delays[-1] * found.step.total_seconds() / 3600)
        results.append((found, detection))
    labelled = [
        anomaly.evaluate(d, f.is_anomaly)
        for f, d in results
        if f.name.split("/")[0] in SCORED and f.is_anomaly is not None
    ]
    pooled = alarms.pooled_scores(labelled)
    clean = [(f, d) for f, d in results if f.name.split("/")[0] == CLEAN]
    scored = sum(len(f) - d.scored_from for f, d in clean)
    return {
        "P": pooled["precision"],
        "R": pooled["recall"],
        "F1": pooled["f1"],
        "alarms per 1,000, clean": 1000 * sum(len(d.alarms) for _, d in clean) / max(scored, 1),
        "median delay, readings": float(np.median(delays)) if delays else float("nan"),
        "median delay, hours": float(np.median(hours)) if hours else float("nan"),
        "median wait for a final score": float(np.median(waits)),
        "wall s": round(time.perf_counter() - started),
    }


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
        default=["hybrid", "zscore", "discord", "holt-winters"],
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
    parser.add_argument(
        "--lofo",
        action="store_true",
        help="also the honest figure: alarm rules chosen on two folders, scored on the third",
    )
    parser.add_argument(
        "--monitor",
        action="store_true",
        help="monitor mode instead: fit the first 15%% of each file, alarm after, measure delays",
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
    if args.monitor:
        rows = {
            NAMES[name]: monitor_row(name, files, config, args.seed[0]) for name in args.detectors
        }
        print()
        print_table(rows, digits=3, title="Monitor: fit on each file's first 15%, alarms after")
        return 0

    rows, spread = {}, {"(ours)": [], "Hundman threshold + pruning": []}
    lofo_rows, lofo_spread, nested_spread, choices = {}, [], [], {}
    first = args.detectors[0]
    for name in args.detectors:
        for seed in args.seed if name == first else args.seed[:1]:
            detections, seconds = run_detector(name, files, config, seed)
            seeded = f", seed {seed}" if name == first and len(args.seed) > 1 else ""
            row = table_row(files, [d.alarms for d in detections], seconds)
            rows[f"{NAMES[name]} (ours){seeded}"] = row
            if args.lofo:
                label = f"{NAMES[name]}{', seed ' + str(seed) if name == first else ''}"
                lofo_rows[label], choices[label] = leave_one_folder_out(files, {"": detections})
                lofo_rows[label]["in-folder F1"] = row["F1"]
                lofo_rows[label]["% flagged"] = row["% flagged"]
                lofo_rows[label]["alarms per 1,000, clean"] = clean_rate(
                    files, [d.alarms for d in detections]
                )
                if name == first:
                    lofo_spread.append(lofo_rows[label]["F1"])
                    lofo_rows[label] |= synthetic_check(name, config, seed)
            if name != first:
                continue
            if name == "hybrid":  # its two parts, from the same fits
                alone = [anomaly.lstm_alone(f.values, d) for f, d in zip(files, detections)]
                rows[f"{NAMES['bidirectional']} alone (the same fits){seeded}"] = table_row(
                    files, [d.alarms for d in alone], None
                )
                if args.lofo:
                    label = f"{NAMES['bidirectional']} alone, seed {seed}"
                    lofo_rows[label], choices[label] = leave_one_folder_out(files, {"": alone})
                    label = f"{NAMES[name]}, weight chosen too, seed {seed}"
                    variants = weight_variants(files, detections)
                    lofo_rows[label], choices[label] = leave_one_folder_out(files, variants)
                    nested_spread.append(lofo_rows[label]["F1"])
            # The other alarm rules, with the same fitted detectors.
            strongest = [
                alarms_by_rule(f, d, {"rule": "strongest"}) for f, d in zip(files, detections)
            ]
            rows[f"{NAMES[name]}, strongest two (earlier default){seeded}"] = table_row(
                files, strongest, None
            )
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
    if args.lofo:
        print()
        print_table(
            lofo_rows,
            digits=3,
            title="Leave one folder out: each folder scored with the alarm rule that did best on "
            "the other two (the honest figure); in-folder F1, % flagged and clean-file alarms: the app's "
            "default rule; synthetic: 20,000 points, 20 injected level shifts, then clean",
        )
        for label, chosen in choices.items():
            print(f"  {label}: " + "; ".join(f"held out {f}: {rule}" for f, rule in chosen.items()))
        for what, figures in (("", lofo_spread), (", weight chosen too", nested_spread)):
            if len(figures) > 1:
                print(
                    f"{NAMES[first]}{what}: leave-one-folder-out F1 over seeds {args.seed}: mean "
                    f"{np.mean(figures):.3f}, {min(figures):.3f} to {max(figures):.3f} "
                    f"(spread {max(figures) - min(figures):.3f})"
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
