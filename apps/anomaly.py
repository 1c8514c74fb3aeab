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
gets a score from two views: how badly a bidirectional LSTM predicts it from the
window after it and the window before it (after AER, the best published pipeline
on NAB), and how far it lies from a Holt-Winters forecast (level, trend and
season). Each view is put in robust standard deviations of its own scores and
they are mixed 0.4 to 0.6 (--detector hybrid): on NAB's development folders, each
left out in turn, the mix averaged above each view alone and varied far less from
seed to seed than the LSTM alone (README).
Scores are smoothed over 1% of the series. An audit sets its threshold for a rate of
false alarms (--false-alarms, per 1,000 readings, default 0.5): the clusters of scores
above their median plus two robust standard deviations are counted and their peaks
fitted with a generalised Pareto law (peaks over threshold); the threshold is where
that law expects the chosen rate by chance, and never below that line. Runs above it
closer than 3% of the series merge, and an alarm less than half as strong as the
strongest is dropped as its shadow. A long series with many incidents gets many
alarms; one with none gets at most about the rate.
(--alarm-rule strongest keeps the --max-alarms strongest instead; --alarm-rule
hundman uses Hundman et al.'s dynamic threshold and pruning on the detector's errors.)
A monitor alarms wherever the score passes 1.5x the highest score on held-out
normal data. Each alarm is an interval in anomalies.csv with its start, end and
peak score.

A monitor's delay: the bidirectional LSTM judges a point from the window after
it too, so the newest window of points (after averaging) is judged from the
past alone and rescored as data arrives: a reading's score is final only after
(window + 2) x the averaging factor - 1 later readings (--window 48 averaged 4
to 1: 199 readings, 16.6 hours of 5-minute readings). So a monitor's default
detector is the LSTM forecaster, which reads only the past: on the NAB
development folders it found windows about as often, and a median of 4 hours
sooner (bench/anomaly.py --monitor). A monitor run prints its own delay.

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
import sys
import time
from dataclasses import dataclass
from pathlib import Path


if __name__ == "__main__":  # first, before TensorFlow loads: Ctrl-C then is one line
    from apps._start import stop_quietly_while_starting

    stop_quietly_while_starting()

import common  # first: keeps TensorFlow's start-up log noise out of the terminal, loads it later
from common.cli import (
    refuse_missing,
    refuse_unused_with_load,
    RunOptions,
    UserError,
    load_model_from_dir,
    option,
    positive_float,
    positive_int,
    positive_int_up_to,
    prepare_out,
    report_user_errors,
    save_run,
    shrink_for_quick,
    start_distribution,
    was_typed,
    write_json,
)
from common.data import csv_series as series_io

# The task modules load TensorFlow on first use: --help and option errors come first.
anomaly = common.import_later("common.tasks.anomaly")
detectors = common.import_later("common.tasks.detectors")

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config(RunOptions):
    """Everything one run needs, read once from the command line."""

    APP = "anomaly"
    # With --load the saved run keeps its settings; these options say the series to score, and where to save the scores.
    WITH_LOAD = {
        "csv",
        "series",
        "labels",
        "time_col",
        "value_cols",
        "label_col",
        "duplicates",
        "fill",
        "out",
        "overwrite",
    }
    GROUPS = {
        "data": "data (default: the bundled NAB machine-temperature series)",
        "detection": "detection",
    }

    epochs: int = option(10, quick=3)  # this app's own defaults for the shared options
    csv: tuple = option(
        (),
        "CSV files or folders; repeat to add more",
        group="data",
        type=Path,
        nargs="+",
        action="extend",  # --csv a.csv --csv b.csv reads both, as --value-col does
        metavar="PATH",
    )
    series: str | None = option(
        None,
        "a bundled series instead of --csv",
        group="data",
        choices=[
            "daphnet-s06r02e0",
            "ecg-diff-count-3",
            "internal-bleeding16",
            "machine-temperature",
        ],
    )
    labels: Path | None = option(
        None,
        "[start, end] windows, JSON or CSV (NAB's too)",
        group="data",
        type=Path,
        metavar="FILE",
    )
    time_col: str = option("timestamp", "time column", group="data")
    value_cols: tuple | None = option(
        None,
        "value column; repeat for several channels (default: every numeric one)",
        group="data",
        flag="--value-col",
        action="append",
        metavar="COLUMN",
    )
    label_col: str | None = option(
        None, "0/1 column of anomalous points (default: is_anomaly if present)", group="data"
    )
    duplicates: str = option(
        "mean",
        "how to combine rows that share a time",
        group="data",
        choices=series_io.DUPLICATE_RULES,
    )
    fill: bool = option(
        False, argparse.SUPPRESS, group="data"
    )  # old scripts: repairs are automatic
    detector: str | None = option(
        None,
        "what scores each point (default: hybrid, the bidirectional LSTM mixed with Holt-Winters, "
        "in an audit; forecaster in a monitor, which never waits for later readings)",
        group="detection",
        choices=[
            "hybrid",
            "bidirectional",
            "forecaster",
            "autoencoder",
            "zscore",
            "discord",
            "holt-winters",
        ],
    )
    alarm_rule: str = option(
        "rate",
        "audit: alarms from the scores by a threshold set for a rate of false alarms, by the "
        "strongest few above median + 3 MADs, or by Hundman et al.'s dynamic threshold and pruning",
        group="detection",
        choices=["rate", "strongest", "hundman"],
    )
    false_alarms: float = option(
        0.5,
        "audit, rate rule: alarms allowed by chance per 1,000 readings",
        group="detection",
        type=positive_float,
        metavar="R",
    )
    max_alarms: int = option(
        2,
        "audit, strongest rule: keep the K strongest alarms per series",
        group="detection",
        type=positive_int,
        metavar="K",
    )
    train_fraction: float | None = option(
        None,
        "monitor: the first F of each series is normal; fit there, alarm after",
        group="detection",
        type=float,
        metavar="F",
    )
    window: int = option(
        48,
        "points the detector reads, after averaging",
        group="detection",
        type=positive_int,
        quick=32,
    )
    units: int = option(32, "LSTM units", group="detection", type=positive_int_up_to(4096), quick=8)
    load: Path | None = option(
        None,
        "monitor with a saved run's detector, scaler and threshold; nothing is refitted",
        group="detection",
        type=Path,
        metavar="DIR",
    )


def read_config(argv):
    parser = Config.parser(__doc__)
    args = parser.parse_args(argv)
    if args.load:
        refuse_unused_with_load(parser, argv, Config.WITH_LOAD)
    if args.train_fraction is not None and not 0 < args.train_fraction < 1:
        raise UserError(f"--train-fraction must be between 0 and 1, got {args.train_fraction}")
    if args.csv and args.series:
        raise UserError("choose either --csv or --series, not both")
    if args.labels is not None and not args.csv:
        raise UserError("--labels needs --csv (bundled series carry their own labels)")
    columns = ("--time-col", "--value-col", "--label-col", "--duplicates")
    if not args.csv and (typed := [flag for flag in columns if was_typed(flag, argv)]):
        raise UserError(
            f"{', '.join(typed)}: only for --csv files (the bundled series are read as they are)"
        )
    if args.load is not None and args.train_fraction is not None:
        raise UserError("--load already holds a fitted detector; drop --train-fraction")
    if args.train_fraction is not None:  # a monitor's threshold comes from held-out normal data
        audit_only = [
            f for f in ("--alarm-rule", "--false-alarms", "--max-alarms") if was_typed(f, argv)
        ]
        if audit_only:
            raise UserError(
                f"{', '.join(audit_only)}: only an audit uses it; a monitor (--train-fraction) "
                "sets its threshold on held-out normal data"
            )
    args.out = prepare_out(args.out, "anomaly", args.overwrite, args.load)
    if args.quick:  # a smoke test: a short window, a small model, a few epochs
        shrink_for_quick(args, argv, **Config.quick_values())
    refuse_missing("--csv", args.csv, "file or folder")
    refuse_missing("--labels", args.labels)
    refuse_missing("--load", args.load, "folder")
    if args.load is not None:  # the checks above come first: from here, TensorFlow loads
        args.detector = check_saved_run(args.load)["detector"]
    elif args.detector is None:  # a monitor alarms live: it must not wait for later readings
        bundled_monitor = not args.csv and anomaly.BUNDLED[args.series or "machine-temperature"][1]
        monitoring = args.train_fraction is not None or bool(bundled_monitor)
        args.detector = "forecaster" if monitoring else "hybrid"
    return Config.from_args(args, series=args.series or "machine-temperature")


def check_saved_run(directory):
    """The saved run's config.json, once it is known to be an anomaly run."""
    try:
        return anomaly.read_saved_run(directory)
    except ValueError as error:
        raise UserError(f"--load {directory}: {error}") from None


# ---------------------------------------------------------------- data


def load_series(config):
    """Every series of the run, read and checked before any fitting."""
    if not config.csv:
        return [anomaly.read_bundled(REPO / "data", config.series)]
    try:
        files = series_io.find_csv_files(config.csv)
    except ValueError as error:
        raise UserError(f"--csv {error}") from None
    reading = dict(
        time_col=config.time_col,
        value_cols=config.value_cols,
        label_col=config.label_col,
        duplicates=config.duplicates,
    )
    try:
        return [
            anomaly.read_labelled(path, key, config.labels, len(files) == 1, **reading)
            for path, key in files
        ]
    except series_io.MissingColumnError as error:  # the library names no option; say which
        flags = {config.time_col: "--time-col", config.label_col: "--label-col"}
        flag = flags.get(error.column, "--value-col")
        raise UserError(f"{error} (choose with {flag})") from None
    except (ValueError, OSError) as error:
        raise UserError(str(error)) from None


def plan(found, config):
    """(normal_end or None, window) for a series; says in one line what was adapted."""
    normal_end = found.normal_end if not config.csv else None
    if config.train_fraction is not None:
        normal_end = int(round(len(found) * config.train_fraction))
        if normal_end >= len(found):
            raise UserError(
                f"{found.name}: nothing left after the normal prefix; lower --train-fraction"
            )
    try:
        points, window, period = anomaly.plan_window(found.values, config.window, normal_end)
    except ValueError as error:
        hint = "; raise --train-fraction" if normal_end is not None else ""
        raise UserError(f"{found.name}: {error}{hint}") from None
    if window != config.window:
        seasonal = " (its seasonal period)" if window == period else ""
        print(
            f"{found.name}: {points} points to fit on are too few for --window "
            f"{config.window}; using {window}{seasonal}"
        )
    return normal_end, window


# ---------------------------------------------------------------- detect


def detect(found, config, distribution, baselines=True):
    """{name: Detection} of the chosen detector on one series, and beside it the baselines.

    With --load, the saved run's detector scores the series and nothing is fitted.
    """
    if config.load is not None:  # nothing to fit, so no baseline either
        return {config.detector: score_with_saved_run(found, config)}
    normal_end, window = plan(found, config)
    names = [config.detector]
    if baselines:
        fitted = "audit (fit on all of it)"
        if normal_end is not None:
            fitted = f"monitor (fit on the first {normal_end}, alarms after)"
        print(f"{found.name}: {len(found)} points, {len(found.columns)} channel(s), {fitted}")
        print(f"Fitting the {detectors.NAMES[config.detector]} on {window}-point windows ...")
        names += [name for name in anomaly.BASELINES if name != config.detector]
    settings = dict(
        rule=config.alarm_rule,
        false_alarms=config.false_alarms,
        max_alarms=config.max_alarms,
        seed=config.seed,
        units=config.units,
        epochs=config.epochs,
        batch_size=config.batch_size,
        distribution=distribution,
    )
    detections = {}
    for name in names:
        verbose = config.progress if baselines and name == config.detector else 0
        try:
            detections[name] = anomaly.detect(
                found.values, name, window, normal_end, verbose=verbose, **settings
            )
        except ValueError as error:
            raise UserError(f"{found.name}: {error}") from None
    if baselines and config.detector == "hybrid" and normal_end is None:  # its LSTM alone, next
        alone = {"bidirectional": anomaly.lstm_alone(found.values, detections["hybrid"])}
        detections = {"hybrid": detections.pop("hybrid")} | alone | detections
    return detections


def score_with_saved_run(found, config):
    saved = check_saved_run(config.load)
    if warning := anomaly.step_warning(found, saved):
        print(f"anomaly: warning: {warning}", file=sys.stderr)
    model = None
    if saved["detector"] in detectors.RECURRENT:
        model = load_model_from_dir(config.load, app="anomaly")
    try:
        return anomaly.rescore_saved(found, config.load, saved, model)
    except ValueError as error:
        raise UserError(f"--load {config.load}: {error}") from None


def monitor_delay(found, detection):
    """One line: how long a monitored reading may wait for its final score."""
    readings = anomaly.score_delay(detection)
    if readings == 0:
        return f"{found.name}: monitor delay: none, a reading's score is final as it arrives"
    waited = f"{readings} later reading(s)"
    if hasattr(found.step, "total_seconds"):
        waited += f", {readings * found.step.total_seconds() / 3600:.1f} hours"
    line = f"{found.name}: monitor delay: a reading's score is final after up to {waited}"
    if detection.detector.looks_ahead:
        line += (
            f"; until then the {detectors.NAMES[detection.name]} scores it from the readings so far, "
            "and the score may change (--detector forecaster never waits on later readings)"
        )
    return line


# ---------------------------------------------------------------- save


def mode(detection, config):
    return "monitor" if detection.scored_from or config.load is not None else "audit"


def save_one(out, found, detection, rows, config, started, distribution):
    if config.load is None:  # everything --load needs to treat new data as this run did its own
        anomaly.save_detector(
            out,
            detection,
            app="anomaly",
            value_cols=found.columns,
            series=found.name,
            sampling_step=anomaly.describe_step(found.step),  # new data is checked against it
            seed=config.seed,
        )
    else:  # scores of new data, not a detector: say which run made them
        write_json(out / "config.json", {"app": "anomaly", "scored_with": str(config.load)})
    title = f"{found.name}: {detectors.NAMES[config.detector]}, {mode(detection, config)}"
    anomaly.save_series(out, found, detection, title)
    metrics = {
        "table": rows,
        "mode": mode(detection, config),
        "threshold": detection.threshold,
        "fit_seconds": detection.fit_seconds,
        "seconds": time.perf_counter() - started,
        "trained_on": distribution.summary(config.batch_size),
    }
    write_json(out / "metrics.json", metrics, reasons=anomaly.NULL_REASONS)


def save_many(out, results, rows, config, started, distribution):
    anomaly.save_files(out, results, rows)
    write_json(out / "config.json", {"app": "anomaly", "files": len(results)})  # who made it
    metrics = {
        "files": rows,
        "mode": mode(results[0][1], config),
        "seconds": time.perf_counter() - started,
        "trained_on": distribution.summary(config.batch_size),
    }
    write_json(out / "metrics.json", metrics, reasons=anomaly.NULL_REASONS)


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
    if config.detector in detectors.RECURRENT and not config.load:
        print(distribution.describe(config.batch_size))
    if len(every_series) > 1:  # one detector on each series, one summary table
        results = []
        for found in every_series:
            detection = detect(found, config, distribution, baselines=False)[config.detector]
            print(f"  {found.name}: {len(detection.alarms)} alarm interval(s)", flush=True)
            results.append((found, detection))
        seconds = time.perf_counter() - started
        rows = anomaly.compare_files(results, config.detector, seconds)
        if mode(results[0][1], config) == "monitor":
            print(monitor_delay(*results[0]))
        if save_run(config, distribution, save_many, results, rows, config, started, distribution):
            print(
                f"Saved summary.csv, metrics.json and, per file, scores.csv, anomalies.csv and "
                f"anomalies.png in {config.out}/"
            )
        return 0
    found = every_series[0]
    detections = detect(found, config, distribution)
    rows = anomaly.compare_detectors(found, detections, config.detector)
    # Everything is computed; only now touch the output folder.
    detection = detections[config.detector]
    if mode(detection, config) == "monitor":
        print(monitor_delay(found, detection))
    if not save_run(
        config, distribution, save_one, found, detection, rows, config, started, distribution
    ):
        return 0
    saved = ", ".join(sorted(path.name for path in config.out.iterdir() if path.name[0] != "."))
    hint = (
        f"; monitor new data with --load {config.out} --csv NEW.csv" if config.load is None else ""
    )
    print(f"Saved {saved} in {config.out}/ ({time.perf_counter() - started:.0f} s{hint})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
