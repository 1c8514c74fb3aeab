"""Find anomalies in monitoring time series with an LSTM: alarm intervals a person can act on.

    python apps/anomaly.py                                  # bundled NAB machine temperature, about a minute
    python apps/anomaly.py --csv cpu.csv                    # audit one recorded series
    python apps/anomaly.py --csv exports/ --labels combined_windows.json   # a folder: one summary table
    python apps/anomaly.py --csv cpu.csv --train-fraction 0.3   # monitor: fit on a normal prefix
    python apps/anomaly.py --load runs/anomaly/<run>/ --csv today.csv   # monitor new data with a saved run

Two ways to use it:

  audit    (the default) you have a recorded series and want to know what in it
           stands out. The detector learns the series' usual behaviour from all
           of it, as published pipelines do (anomalies are rare, so they barely
           shape it), and the threshold comes from the scores themselves.
  monitor  you know a stretch of normal behaviour and want alarms on what comes
           after it: --train-fraction F fits on the first F of the series and
           alarms only after it, or --load DIR scores new data with a saved run.

From scores to alarms: the series is averaged down to about 500 points (so a
--window of 48 spans a tenth of it: days of 5-minute readings), and each point
gets a score: how badly a bidirectional LSTM predicts it from the window after
it and the window before it (after AER, the best published pipeline on NAB).
Scores are smoothed over 1% of the series. An audit takes the stretches above the median score plus
3 robust standard deviations, merges those closer than 3% of the series, and
keeps the --max-alarms strongest, each at least half as strong as the top one;
a monitor alarms wherever the score passes 1.5x the highest score on held-out
normal data. Each alarm is an interval in anomalies.csv with its start, end and
peak score.

Scoring against labels (a 0/1 is_anomaly column, or --labels with [start, end]
windows, NAB's combined_windows.json included): a labelled window is found
when an alarm interval overlaps it; an alarm overlapping no window is a false
positive. Labels are never used for fitting or for the threshold.

Reading real files: duplicate timestamps are combined (--duplicates), irregular
or gappy sampling is resampled to the typical step, mixed UTC offsets become
UTC, empty values are interpolated; each repair is reported in one line. A
series too short for --window gets a shorter window, said in one line.
"""

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def stop_while_starting(signum, frame):
    """Ctrl-C while TensorFlow loads, before main: one line and status 130, not a traceback."""
    os.write(STDERR, b"interrupted; nothing was saved\n")  # fd 2 is silenced while TF loads
    os._exit(130)


if __name__ == "__main__":
    STDERR = os.dup(2)
    signal.signal(signal.SIGINT, stop_while_starting)

import common  # first: keeps TensorFlow's start-up log noise out of the terminal
from common.tasks import alarms, anomaly
from common.data import csv_series as series_io
from common.cli import (
    RunOptions,
    UserError,
    finish_worker,
    load_model_from_dir,
    option,
    positive_int,
    positive_int_up_to,
    prepare_out,
    report_user_errors,
    run_folder,
    saved_by,
    shrink_for_quick,
    start_distribution,
    write_json,
)

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
# name: (file in data/, length of its known normal prefix or None); see data/README.md.
BUNDLED = {
    "machine-temperature": ("anomaly_nab_machine_temperature.csv.gz", None),
    "internal-bleeding16": ("anomaly_internal_bleeding16.csv.gz", 1200),
    "ecg-diff-count-3": ("anomaly_ecg_diff_count_3.csv.gz", 10000),
    "daphnet-s06r02e0": ("anomaly_daphnet_s06r02e0.csv.gz", 3520),
}
NAMES = {
    "bidirectional": "bidirectional LSTM",
    "forecaster": "LSTM forecaster",
    "autoencoder": "LSTM autoencoder",
    "zscore": "rolling z-score",
    "discord": "MP discord",
    "holt-winters": "Holt-Winters",
}
BASELINES = ("zscore", "discord", "holt-winters")


@dataclass(frozen=True)
class Config(RunOptions):
    """Everything one run needs, read once from the command line."""

    APP = "anomaly"
    GROUPS = {
        "data": "data (default: the bundled NAB machine-temperature series)",
        "detection": "detection",
    }

    epochs: int = option(10, quick=3)  # this app's own defaults for the shared options
    csv: tuple = option(
        (), "CSV files or folders", group="data", type=Path, nargs="+", metavar="PATH"
    )
    series: str | None = option(
        None, "a bundled series instead of --csv", group="data", choices=sorted(BUNDLED)
    )
    labels: Path | None = option(
        None, "[start, end] windows, JSON or CSV (NAB's too)",
        group="data", type=Path, metavar="FILE",
    )  # fmt: skip
    time_col: str = option("timestamp", "time column", group="data")
    value_cols: tuple | None = option(
        None, "value column; repeat for several channels (default: every numeric one)",
        group="data", flag="--value-col", action="append", metavar="COLUMN",
    )  # fmt: skip
    label_col: str | None = option(
        None, "0/1 column of anomalous points (default: is_anomaly if present)", group="data"
    )
    duplicates: str = option(
        "mean", "how to combine rows that share a time",
        group="data", choices=series_io.DUPLICATE_RULES,
    )  # fmt: skip
    fill: bool = option(
        False, argparse.SUPPRESS, group="data"
    )  # old scripts: repairs are automatic
    detector: str = option("bidirectional", "", group="detection", choices=list(NAMES))
    max_alarms: int = option(
        2, "audit: keep the K strongest alarms per series",
        group="detection", type=positive_int, metavar="K",
    )  # fmt: skip
    train_fraction: float | None = option(
        None, "monitor: the first F of each series is normal; fit there, alarm after",
        group="detection", type=float, metavar="F",
    )  # fmt: skip
    window: int = option(
        48, "points the detector reads, after averaging",
        group="detection", type=positive_int, quick=32,
    )  # fmt: skip
    units: int = option(32, "LSTM units", group="detection", type=positive_int_up_to(4096), quick=8)
    load: Path | None = option(
        None, "monitor with a saved run's detector, scaler and threshold; nothing is refitted",
        group="detection", type=Path, metavar="DIR",
    )  # fmt: skip


def read_config(argv):
    args = Config.parser(__doc__).parse_args(argv)
    if args.train_fraction is not None and not 0 < args.train_fraction < 1:
        raise UserError(f"--train-fraction must be between 0 and 1, got {args.train_fraction}")
    if args.csv and args.series:
        raise UserError("choose either --csv or --series, not both")
    if args.labels is not None and not args.csv:
        raise UserError("--labels needs --csv (bundled series carry their own labels)")
    if args.load is not None and args.train_fraction is not None:
        raise UserError("--load already holds a fitted detector; drop --train-fraction")
    if args.load is not None:
        args.detector = check_saved_run(args.load)["detector"]
    args.out = prepare_out(args.out, "anomaly", args.overwrite, args.load)
    if args.quick:  # a smoke test: a short window, a small model, a few epochs
        shrink_for_quick(args, argv, **Config.quick_values())
    return Config.from_args(args, series=args.series or "machine-temperature")


def mode(detection, config):
    return "monitor" if detection.scored_from or config.load is not None else "audit"


# ---------------------------------------------------------------- data


def load_series(config):
    """Every series of the run, read and checked before any fitting."""
    if not config.csv:
        file_name, normal_end = BUNDLED[config.series]
        found = series_io.read_series_csv(REPO / "data" / file_name, name=config.series)
        found.normal_end = normal_end
        return [found]
    loaded = []
    try:
        files = series_io.find_csv_files(config.csv)
    except ValueError as error:
        raise UserError(f"--csv {error}") from None
    for path, key in files:
        try:
            found = series_io.read_series_csv(
                path,
                config.time_col,
                config.value_cols,
                config.label_col,
                config.duplicates,
                name=key,
            )
            if config.labels is not None:
                found.label_windows = series_io.read_label_windows(config.labels, key, found.times)
                found.is_anomaly = alarms.intervals_to_mask(found.label_windows, len(found))
        except (ValueError, OSError) as error:
            raise UserError(str(error)) from None
        loaded.append(found)
    return loaded


def plan(found, config):
    """(normal_end or None, window) for a series; says in one line what was adapted."""
    normal_end = found.normal_end if not config.csv else None
    if config.train_fraction is not None:
        normal_end = int(round(len(found) * config.train_fraction))
    fitted = normal_end if normal_end else len(found)
    with np.errstate(all="ignore"):  # values near 1e308: their spread overflows
        spread = np.std(found.values, axis=0)
    if not np.isfinite(spread).all():
        raise UserError(f"{found.name}: values up to {np.abs(found.values).max():.3g} are too large "
                        "to scale; divide the series by a power of ten first")  # fmt: skip
    # Detectors read the series averaged down to about 500 points; the window counts those.
    coarse = anomaly.aggregate(found.values[:fitted], anomaly.aggregation_factor(fitted))
    period = anomaly.dominant_period(coarse, max_lag=len(coarse) // 8)
    try:
        window = anomaly.choose_window(len(coarse), config.window, period)
    except ValueError as error:
        hint = "; raise --train-fraction" if normal_end is not None else ""
        raise UserError(f"{found.name}: {error}{hint}") from None
    if window != config.window:
        print(
            f"{found.name}: {len(coarse)} points to fit on are too few for --window "
            f"{config.window}; using {window}"
            + (" (its seasonal period)" if window == period else "")
        )
    if normal_end is not None and len(found) - normal_end < 1:
        raise UserError(
            f"{found.name}: nothing left after the normal prefix; lower --train-fraction"
        )
    return normal_end, window


# ---------------------------------------------------------------- detect and score


def detect(found, name, config, normal_end, window, distribution, verbose=0):
    training = dict(
        units=config.units, epochs=config.epochs, batch_size=config.batch_size, verbose=verbose,
        distribution=distribution,
    )  # fmt: skip
    try:
        if normal_end is None:
            return anomaly.audit(
                found.values,
                name,
                window,
                seed=config.seed,
                max_alarms=config.max_alarms,
                **training,
            )
        return anomaly.monitor(found.values, normal_end, name, window, seed=config.seed, **training)
    except ValueError as error:
        raise UserError(f"{found.name}: {error}") from None


def run_one(found, config, distribution):
    """The chosen detector, and beside it the two baselines, on one series."""
    if config.load is not None:  # nothing to fit, so no baseline either
        return {config.detector: score_with_saved_run(found, config)}
    normal_end, window = plan(found, config)
    print(
        f"{found.name}: {len(found)} points, {len(found.columns)} channel(s), "
        + (
            "audit (fit on all of it)"
            if normal_end is None
            else f"monitor (fit on the first {normal_end}, alarms after)"
        )
    )
    print(f"Fitting the {NAMES[config.detector]} on {window}-point windows ...")
    detections = {
        config.detector: detect(
            found, config.detector, config, normal_end, window, distribution, config.progress
        )
    }
    for name in BASELINES:
        if name != config.detector:
            detections[name] = detect(found, name, config, normal_end, window, distribution)
    return detections


def score_with_saved_run(found, config):
    saved = check_saved_run(config.load)
    model = (
        load_model_from_dir(config.load, app="anomaly")
        if saved["detector"] in anomaly.RECURRENT
        else None
    )
    try:
        detector, scaler, settings, threshold = anomaly.load_detector(config.load, saved, model)
        channels = len(saved["value_cols"]) if isinstance(saved["value_cols"], list) else None
    except (ValueError, KeyError) as error:
        raise UserError(f"--load {config.load}: config.json is damaged ({error})") from None
    if channels != len(found.columns):
        raise UserError(f"{found.name}: the saved detector reads {channels} channel(s); "
                        f"this series has {len(found.columns)}")  # fmt: skip
    needed = (saved["window"] + 2) * settings.factor
    if len(found) < needed:
        raise UserError(f"{found.name}: {len(found)} points; the saved detector needs {needed}")
    try:  # a saved run is a file like any other: a model and settings that do not match end here
        return anomaly.rescore(
            found.values, saved["detector"], detector, scaler, settings, threshold
        )
    except Exception as error:  # noqa: BLE001  Keras and NumPy raise many types for a bad model
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise UserError(
            f"--load {config.load}: model.keras and config.json do not match ({reason})"
        ) from None


def check_saved_run(directory):
    other = saved_by(directory)
    if other not in (None, "anomaly"):
        raise UserError(f"--load {directory}: a run of {other}.py, not of anomaly.py")
    try:
        saved = json.loads((directory / "config.json").read_text())
        if saved["app"] != "anomaly" or saved["detector"] not in NAMES:
            raise KeyError("app")
        return saved
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        raise UserError(
            f"--load {directory}: no anomaly run there (config.json missing or damaged)"
        ) from None


def detect_many(found, config, distribution):
    """One series of several, or new data for a saved run: the chosen detector only."""
    if config.load is not None:
        detection = score_with_saved_run(found, config)
    else:
        normal_end, window = plan(found, config)
        detection = detect(found, config.detector, config, normal_end, window, distribution)
    print(f"  {found.name}: {len(detection.alarms)} alarm interval(s)", flush=True)
    return detection


# ---------------------------------------------------------------- report


def report_one(found, detections, config):
    rows = {
        NAMES[name]: anomaly.evaluate(detection, found.is_anomaly)
        for name, detection in detections.items()
    }
    labelled = found.is_anomaly is not None
    print()
    common.print_table(
        rows,
        digits=3,
        title=f"{found.name}: alarm intervals"
        + (
            " scored against labelled windows by overlap"
            if labelled
            else " (no labels: nothing to score against)"
        ),
    )
    mine = detections[config.detector]
    print(
        f"\n{len(mine.alarms)} alarm interval(s); threshold {mine.threshold:.4g} on the "
        f"smoothed score ({'chosen from the scores' if mine.scored_from == 0 else 'from held-out normal data'})"
    )
    if labelled and found.is_anomaly.any() and len(rows) > 1:
        mine = rows[NAMES[config.detector]]["f1"]
        best = max(rows[NAMES[b]]["f1"] for b in BASELINES if b in detections)
        verdict = "beats" if mine > best else "ties with" if mine == best else "does NOT beat"
        print(
            f"The {NAMES[config.detector]} {verdict} the best baseline on overlap F1 "
            f"({mine:.3f} vs {best:.3f})."
        )
    return rows


def report_many(results, config, seconds):
    rows = {
        found.name: anomaly.evaluate(detection, found.is_anomaly) for found, detection in results
    }
    labelled = [row for row in rows.values() if "tp" in row]
    if labelled:
        rows["pooled"] = alarms.pooled_scores(labelled) | {
            "alarms": sum(row["alarms"] for row in rows.values())
        }
    print()
    common.print_table(
        rows,
        columns=["alarms", "tp", "fp", "fn", "precision", "recall", "f1"],
        digits=3,
        title=f"{NAMES[config.detector]}: alarm intervals "
        f"per file, scored by overlap with labelled windows ({seconds:.0f} s)",
    )
    return rows


# ---------------------------------------------------------------- save


def save_series(folder, found, detection, title):
    write = dict(index=False, float_format="%.9g")
    anomaly.scores_table(found, detection).to_csv(folder / "scores.csv", **write)
    anomaly.alarms_table(found, detection).to_csv(folder / "anomalies.csv", **write)
    common.plot_alarms(folder / "anomalies.png", found, detection, title)


def save_one(out, found, detection, rows, config, started, distribution):
    if config.load is None:  # everything --load needs to treat new data as this run did its own
        anomaly.save_detector(out, detection, app="anomaly", value_cols=found.columns,
                              series=found.name, seed=config.seed)  # fmt: skip
    else:  # scores of new data, not a detector: say which run made them
        write_json(out / "config.json", {"app": "anomaly", "scored_with": str(config.load)})
    save_series(
        out, found, detection, f"{found.name}: {NAMES[config.detector]}, {mode(detection, config)}"
    )
    write_json(
        out / "metrics.json",
        {
            "table": rows,
            "mode": mode(detection, config),
            "threshold": detection.threshold,
            "fit_seconds": detection.fit_seconds,
            "seconds": time.perf_counter() - started,
            "trained_on": distribution.summary(config.batch_size),
        },
        reasons=anomaly.NULL_REASONS,
    )


def save_many(out, results, rows, config, started, distribution):
    for found, detection in results:
        folder = out / found.name.replace("/", "__").removesuffix(".gz").removesuffix(".csv")
        folder.mkdir(parents=True, exist_ok=True)
        save_series(folder, found, detection, f"{found.name}: {NAMES[detection.name]}")
    pd.DataFrame.from_dict(rows, orient="index").to_csv(out / "summary.csv", float_format="%.6g")
    write_json(out / "config.json", {"app": "anomaly", "files": len(results)})  # who made it
    write_json(
        out / "metrics.json",
        {
            "files": rows,
            "mode": mode(results[0][1], config),
            "seconds": time.perf_counter() - started,
            "trained_on": distribution.summary(config.batch_size),
        },
        reasons=anomaly.NULL_REASONS,
    )


# ---------------------------------------------------------------- main


@report_user_errors
def main(argv=None):
    started = time.perf_counter()
    config = read_config(argv)
    distribution = start_distribution(config)  # before TensorFlow runs anything
    every_series = load_series(config)
    for found in every_series:
        for note in found.notes:
            print(f"{found.name}: {note}")
    if distribution.kind != "none" and config.detector in anomaly.RECURRENT and not config.load:
        print(distribution.describe(config.batch_size))
    if len(every_series) > 1:
        results = [(found, detect_many(found, config, distribution)) for found in every_series]
        rows = report_many(results, config, time.perf_counter() - started)
        if not distribution.is_chief:  # one run folder per cluster: worker 0 writes it
            return finish_worker(distribution)
        with run_folder(config.out, config.overwrite) as folder:
            save_many(folder, results, rows, config, started, distribution)
        distribution.finish()
        print(
            f"Saved summary.csv, metrics.json and, per file, scores.csv, anomalies.csv and anomalies.png "
            f"in {config.out}/"
        )
        return 0
    found = every_series[0]
    detections = run_one(found, config, distribution)
    rows = report_one(found, detections, config)
    if not distribution.is_chief:  # one run folder per cluster: worker 0 writes it
        return finish_worker(distribution)
    # Everything is computed; only now touch the output folder.
    with run_folder(config.out, config.overwrite) as folder:
        save_one(folder, found, detections[config.detector], rows, config, started, distribution)
    distribution.finish()
    saved = ", ".join(sorted(path.name for path in config.out.iterdir()))
    hint = (
        f"; monitor new data with --load {config.out} --csv NEW.csv" if config.load is None else ""
    )
    print(f"Saved {saved} in {config.out}/ ({time.perf_counter() - started:.0f} s{hint})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
