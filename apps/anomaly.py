"""Find anomalies in a time series with recurrent networks, scored against labelled anomalies.

    python apps/anomaly.py                          # LSTM autoencoder on the bundled InternalBleeding16, about a minute
    python apps/anomaly.py --detector forecaster --series ecg-diff-count-3
    python apps/anomaly.py --compare                # all four detectors on every bundled series: one table
    python apps/anomaly.py --csv machine.csv --time-col timestamp --value-col value --label-col is_anomaly
    python apps/anomaly.py --csv taxi.csv --labels windows.json --train-fraction 0.3 --fill
    python apps/anomaly.py --load runs/anomaly/<run>/ --csv new.csv   # score new data with a saved run

Four detectors, each turning the series into one score per point:

  autoencoder  an LSTM encoder-decoder rebuilds each window through its final state;
               a point scores its reconstruction error, averaged over the windows covering it
  forecaster   an LSTM predicts each point from the --window points before it;
               a point scores its squared prediction error (averaged over --smooth points)
  zscore       baseline: distance from the median of the previous --window points, in MADs
  discord      baseline: matrix-profile distance from each window to its nearest normal window

Why it is honest: a detector never sees labels. It is fitted on the first part
of a prefix assumed normal (the data set's own training part, or
--train-fraction), and its alarm threshold is --threshold-factor times the
highest score on the rest of that prefix, which it was not fitted on. Labels
are used only to score the test part, after the prefix: event-level
precision, recall and F1 (a labelled window is found when any alarm falls
within --tolerance points of it; alarms elsewhere group into contiguous false
alarms; "F1 strict" uses tolerance 0), point-level ROC AUC of the raw score,
and, for a series with one labelled anomaly, the UCR archive's rule: is the
single highest score within 100 points of it?

Labels come from a 0/1 column (--label-col; a column named is_anomaly is used
automatically) or from --labels FILE: a JSON or CSV list of [start, end]
windows in the time column's units, or the Numenta Anomaly Benchmark's
{"file.csv": [[start, end], ...]} layout.

Bundled series (data/README.md): internal-bleeding16 (UCR archive, one
anomaly), ecg-diff-count-3 (synthetic ECG, three anomalies) and
daphnet-s06r02e0 (nine accelerometer channels; this excerpt has no labelled
episode, so it counts false alarms only).
"""

import json
import math
import sys
import time
from pathlib import Path

import common  # first: keeps TensorFlow's start-up log noise out of the terminal
from common import anomaly
from common.cli import UserError, app_parser, load_model_from_dir, positive_int, positive_float, report_user_errors, run_dir, save_model_atomically

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
# name: (file in data/, length of the anomaly-free prefix to fit and set the threshold on); see data/build_anomaly.py.
# Daphnet has no training part of its own, and its first 1,500 steps are the patient standing still:
# a prefix of half the recording (55 s) lets the detectors see normal walking too.
BUNDLED = {
    "internal-bleeding16": ("anomaly_internal_bleeding16.csv.gz", 1200),
    "ecg-diff-count-3": ("anomaly_ecg_diff_count_3.csv.gz", 10000),
    "daphnet-s06r02e0": ("anomaly_daphnet_s06r02e0.csv.gz", 3520),
}
DETECTOR_NAMES = {"autoencoder": "LSTM autoencoder", "forecaster": "LSTM forecaster", "zscore": "rolling z-score", "discord": "MP discord"}
RECURRENT = ("autoencoder", "forecaster")
UCR_TOLERANCE = 100


def parse_args(argv):
    parser = app_parser(__doc__, "anomaly", epochs=30, batch_size=64)
    data = parser.add_argument_group("data (default: the bundled internal-bleeding16 series)")
    data.add_argument("--series", choices=sorted(BUNDLED), help="bundled series to use (default: internal-bleeding16; with --compare: all of them)")
    data.add_argument("--csv", type=Path, help="CSV with a time column and one or more value columns")
    data.add_argument("--time-col", default="timestamp", help="time column in --csv: datetimes or integer steps (default: %(default)s)")
    data.add_argument("--value-col", action="append", dest="value_cols", metavar="COLUMN", help="value column; repeat for several channels (default: every numeric column but time and labels)")
    data.add_argument("--label-col", help="0/1 column marking anomalous points, used for scoring only (default: is_anomaly if present)")
    data.add_argument("--labels", type=Path, metavar="FILE", help="JSON or CSV list of [start, end] anomaly windows in the time column's units (NAB layout welcome)")
    data.add_argument("--train-fraction", type=float, help="leading share of the series assumed normal, for fitting and the threshold (default: the data set's own training part, else 0.3)")
    data.add_argument("--fill", action="store_true", help="interpolate missing time steps and empty/NaN values instead of stopping with an error")

    detector = parser.add_argument_group("detector")
    detector.add_argument("--detector", choices=list(DETECTOR_NAMES), default="autoencoder", help="which detector to run (default: %(default)s)")
    detector.add_argument("--compare", action="store_true", help="run all four detectors and print one table, per series and the mean")
    detector.add_argument("--window", type=positive_int, default=64, help="points per window, for every detector (default: %(default)s)")
    detector.add_argument("--units", type=positive_int, default=32, help="LSTM units of the recurrent detectors (default: %(default)s)")
    detector.add_argument("--smooth", type=positive_int, default=8, help="the forecaster's score is its squared error averaged over this many points (default: %(default)s)")
    detector.add_argument("--holdout-fraction", type=float, default=0.25, help="last share of the normal prefix held out from fitting; it sets the threshold and stops training early (default: %(default)s)")
    detector.add_argument("--threshold-factor", type=positive_float, default=1.5, help="alarm when the score exceeds this times the highest held-out normal score (default: %(default)s)")
    detector.add_argument("--tolerance", type=int, default=UCR_TOLERANCE, help="alarms within this many points of a labelled window count as finding it (default: %(default)s, as the UCR archive allows)")
    detector.add_argument("--load", type=Path, metavar="DIR", help="skip fitting: score --csv (or the bundled series) with the detector, scaler and threshold saved in DIR")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- data


class Series:
    """One series: time index, values (timesteps, channels), optional labels, and the normal prefix length."""

    def __init__(self, name, times, values, columns, is_anomaly=None, train_end=None):
        self.name, self.times, self.values, self.columns = name, times, values, columns
        self.is_anomaly, self.train_end = is_anomaly, train_end

    def __len__(self):
        return len(self.values)


def read_series_csv(path, time_col="timestamp", value_cols=None, label_col=None, labels_file=None, fill=False, origin=None):
    """Read and check a CSV; every problem becomes one :class:`UserError` line."""
    path = Path(path)
    origin = origin or f"--csv {path}"
    if not path.is_file():
        raise UserError(f"{origin}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError) as error:
        raise UserError(f"{origin}: not a readable CSV ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
    if frame.empty:
        raise UserError(f"{origin}: no data rows")
    frame.columns = [str(column).strip() for column in frame.columns]

    def require(column, option):
        if column not in frame.columns:
            raise UserError(f"{origin}: no column '{column}'; columns are {', '.join(frame.columns)} (choose with {option})")

    require(time_col, "--time-col")
    if label_col is not None:
        require(label_col, "--label-col")
    elif "is_anomaly" in frame.columns and labels_file is None:
        label_col = "is_anomaly"
    if value_cols:
        for column in value_cols:
            require(column, "--value-col")
    else:  # never let a label column slip in as a value channel
        candidates = [c for c in frame.columns if c not in (time_col, label_col, "is_anomaly")]
        value_cols = [c for c in candidates if pd.to_numeric(frame[c].str.strip().replace("", "nan"), errors="coerce").notna().any()]
        if not value_cols:
            raise UserError(f"{origin}: no numeric value column besides '{time_col}' (choose with --value-col)")

    times = parse_times(frame[time_col], origin, time_col)
    values = pd.DataFrame({column: numeric_column(frame[column], origin, column) for column in value_cols})
    is_anomaly = None
    if label_col is not None:
        labels = numeric_column(frame[label_col], origin, label_col)
        if labels.isna().any() or not labels.isin([0, 1]).all():
            raise UserError(f"{origin}: label column '{label_col}' must hold only 0 and 1")
        is_anomaly = labels.to_numpy().astype(bool)

    order = np.argsort(times.to_numpy(), kind="stable")
    times, values = times[order], values.iloc[order].reset_index(drop=True)
    is_anomaly = None if is_anomaly is None else is_anomaly[order]
    duplicated = int(times.duplicated().sum())
    if duplicated:
        raise UserError(f"{origin}: {duplicated} timestamps in '{time_col}' appear more than once")
    times, values, is_anomaly = check_gaps(times, values, is_anomaly, fill, origin)
    if labels_file is not None:
        is_anomaly = windows_from_file(labels_file, times)
    return Series(path.name, pd.Index(times), values.to_numpy("float64"), list(value_cols), is_anomaly)


def parse_times(column, origin, time_col):
    text = column.str.strip()
    as_numbers = pd.to_numeric(text, errors="coerce")
    if as_numbers.notna().all():
        if not (as_numbers == as_numbers.round()).all():
            raise UserError(f"{origin}: time column '{time_col}' holds fractional numbers; expected datetimes or integer steps")
        return pd.Series(as_numbers.astype("int64").to_numpy())
    as_dates = pd.to_datetime(text, errors="coerce", format="mixed")
    bad = int(as_dates.isna().sum())
    if bad:
        first = int(np.flatnonzero(as_dates.isna().to_numpy())[0])
        raise UserError(f"{origin}: {bad} values in time column '{time_col}' are neither datetimes nor integers (first: '{column.iloc[first]}')")
    return pd.Series(as_dates.to_numpy())


def numeric_column(column, origin, name):
    text = column.str.strip()
    empty = text.isin(["", "nan", "NaN", "NA", "null"])
    numbers = pd.to_numeric(text.where(~empty, None), errors="coerce")
    not_numbers = numbers.isna() & ~empty
    if not_numbers.any():
        first = int(np.flatnonzero(not_numbers.to_numpy())[0])
        raise UserError(f"{origin}: {int(not_numbers.sum())} values in column '{name}' are not numbers (first, row {first + 1}: '{column.iloc[first]}')")
    return numbers.astype("float64")


def check_gaps(times, values, is_anomaly, fill, origin):
    """Missing time steps and empty/NaN values: an error naming how many, or interpolated with --fill."""
    steps = np.diff(times.to_numpy()).astype("float64") if len(times) > 1 else np.array([])
    missing_steps = 0
    if len(steps):
        step = np.median(steps)
        missing_steps = int(np.round(steps / step - 1).clip(min=0).sum())
    missing_values = int(values.isna().sum().sum())
    if not (missing_steps or missing_values):
        return times, values, is_anomaly
    if not fill:
        problems = []
        if missing_steps:
            problems.append(f"{missing_steps} missing time steps")
        if missing_values:
            problems.append(f"{missing_values} empty or NaN values")
        raise UserError(f"{origin}: {' and '.join(problems)}; pass --fill to interpolate them, or clean the file")
    if missing_steps:
        step_size = pd.Series(times).diff().median()
        grid = times.iloc[0] + step_size * np.arange(int(round((times.iloc[-1] - times.iloc[0]) / step_size)) + 1)
        if pd.api.types.is_integer_dtype(times):
            grid = np.round(grid).astype("int64")
        indexed = values.set_axis(pd.Index(times))
        values = indexed.reindex(pd.Index(grid)).reset_index(drop=True)
        if is_anomaly is not None:
            is_anomaly = pd.Series(is_anomaly, index=pd.Index(times)).reindex(pd.Index(grid)).ffill().fillna(False).to_numpy().astype(bool)
        times = pd.Series(pd.Index(grid))
    values = values.interpolate(limit_direction="both")
    print(f"--fill: interpolated {missing_steps} missing time steps and {missing_values} empty values")
    return times, values, is_anomaly


def windows_from_file(path, times):
    """Read [start, end] windows (JSON list, NAB dict, or two-column CSV) and mark the points inside each."""
    path = Path(path)
    origin = f"--labels {path}"
    if not path.is_file():
        raise UserError(f"{origin}: no such file")
    text = path.read_text(errors="replace")
    try:
        if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
            windows = json.loads(text)
            if isinstance(windows, dict):  # NAB: {"realKnownCause/nyc_taxi.csv": [[start, end], ...]}
                if len(windows) != 1:
                    raise UserError(f"{origin}: holds windows for {len(windows)} files; keep the one for this series")
                windows = next(iter(windows.values()))
        else:
            rows = [line.split(",") for line in text.splitlines() if line.strip()]
            windows = [row[:2] for row in rows]
            if windows and not is_time_like(windows[0][0], times):
                windows = windows[1:]  # a header row
    except json.JSONDecodeError as error:
        raise UserError(f"{origin}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(windows, list) or any(not isinstance(w, (list, tuple)) or len(w) != 2 for w in windows):
        raise UserError(f"{origin}: expected a list of [start, end] pairs")
    is_anomaly = np.zeros(len(times), dtype=bool)
    first, last = times.iloc[0], times.iloc[-1]
    for start_text, end_text in windows:
        start, end = to_time(start_text, times, origin), to_time(end_text, times, origin)
        if start > end:
            raise UserError(f"{origin}: window [{start_text}, {end_text}] ends before it starts")
        if start < first or end > last:
            raise UserError(f"{origin}: window [{start_text}, {end_text}] lies outside the series' time range {first} to {last}")
        inside = ((times >= start) & (times <= end)).to_numpy()
        if not inside.any():
            raise UserError(f"{origin}: window [{start_text}, {end_text}] holds no time step of the series")
        is_anomaly |= inside
    return is_anomaly


def is_time_like(text, times):
    try:
        to_time(text, times, "")
        return True
    except UserError:
        return False


def to_time(value, times, origin):
    text = str(value).strip().strip('"')
    if pd.api.types.is_integer_dtype(times):
        try:
            number = float(text)
        except ValueError:
            raise UserError(f"{origin}: '{text}' is not a step number, as the time column holds") from None
        return number
    stamp = pd.to_datetime(text, errors="coerce")
    if pd.isna(stamp):
        raise UserError(f"{origin}: '{text}' is not a datetime, as the time column holds")
    return stamp


def load_series(args):
    """The series to run on: --csv, or one or all bundled series."""
    if args.csv is not None:
        series = read_series_csv(args.csv, args.time_col, args.value_cols, args.label_col, args.labels, args.fill)
        return [series]
    if args.labels is not None:
        raise UserError("--labels needs --csv (bundled series carry their own labels)")
    names = [args.series] if args.series else (list(BUNDLED) if args.compare else ["internal-bleeding16"])
    loaded = []
    for name in names:
        file_name, train_steps = BUNDLED[name]
        series = read_series_csv(REPO / "data" / file_name, origin=f"bundled {name}")
        series.name, series.train_end = name, train_steps
        loaded.append(series)
    return loaded


def choose_parts(series, args):
    """(fit end, normal-prefix end): fit on [0, fit_end), threshold from [fit_end, train_end), test after."""
    if args.train_fraction is not None:
        train_end = int(round(len(series) * args.train_fraction))
    else:
        train_end = series.train_end or int(round(len(series) * 0.3))
    fit_end = train_end - int(round(train_end * args.holdout_fraction))
    window = args.window
    if len(series) < 2 * window:
        raise UserError(f"{series.name}: {len(series)} points is shorter than two windows of --window {window}")
    if fit_end < 2 * window or train_end - fit_end < window or len(series) - train_end < window:
        raise UserError(
            f"{series.name}: with --window {window}, the normal prefix ({train_end} points: {fit_end} to fit, "
            f"{train_end - fit_end} held out) and the test part ({len(series) - train_end} points) need two windows, "
            "one window and one window at least; change --train-fraction or --window"
        )
    return fit_end, train_end


# ---------------------------------------------------------------- detectors


def make_detector(name, args, model=None):
    if name == "autoencoder":
        return anomaly.LSTMAutoencoder(args.window, args.units, args.epochs, args.batch_size, model=model)
    if name == "forecaster":
        return anomaly.LSTMForecaster(args.window, args.units, args.epochs, args.batch_size, model=model, smooth=args.smooth)
    if name == "zscore":
        return anomaly.RollingZScore(args.window)
    return anomaly.MatrixProfileDiscord(args.window)


def run_detector(name, series, args):
    """Fit on the normal prefix, score every point, set the threshold: no label is touched here."""
    fit_end, train_end = choose_parts(series, args)
    scaler = common.StandardScaler().fit(series.values[:fit_end])
    scaled = scaler.transform(series.values).astype("float32")
    detector = make_detector(name, args)
    started = time.perf_counter()
    common.set_seed(args.seed)
    detector.fit(scaled[:fit_end], validation_series=scaled[fit_end:train_end])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    # The discord's reference windows are the fitted part itself: a window may not match its own neighbours.
    score = (lambda values: detector.score(values, exclude_offset=0)) if name == "discord" else detector.score
    scores = score(scaled)
    score_seconds = time.perf_counter() - started
    # The threshold comes from the prefix scored on its own, so no window reaching into the test part shapes it.
    threshold = anomaly.threshold_from_normal(score(scaled[:train_end])[fit_end:], args.threshold_factor)
    return {
        "detector": detector, "scaler": scaler, "scores": scores, "threshold": threshold, "fit_end": fit_end,
        "train_end": train_end, "fit_seconds": fit_seconds, "score_seconds": score_seconds,
    }


def evaluate(scores, threshold, is_anomaly, tolerance):
    """Scores of one detector on the scored part; labels may be None (then only false alarms count)."""
    flags = scores > threshold  # NaN (unscored) never alarms
    row = {}
    if is_anomaly is None:
        row.update({"precision": math.nan, "recall": math.nan, "F1": math.nan})
        row["false alarms"] = len(anomaly.label_windows(flags))
        row.update({"F1 strict": math.nan, "ROC AUC": math.nan, "top-1": None})
        return row
    windows = anomaly.label_windows(is_anomaly)
    widened = [(max(0, start - tolerance), min(len(flags) - 1, end + tolerance)) for start, end in windows]
    tolerant, strict = anomaly.event_scores(flags, widened), anomaly.event_scores(flags, windows)
    row.update({"precision": tolerant["precision"], "recall": tolerant["recall"], "F1": tolerant["f1"], "false alarms": tolerant["false_alarms"]})
    row["F1 strict"] = strict["f1"]
    row["ROC AUC"] = anomaly.roc_auc(scores, is_anomaly)
    row["top-1"] = anomaly.ucr_top1(scores, windows, UCR_TOLERANCE)
    return row


def scored_part(series, result):
    start = result["train_end"]
    labels = None if series.is_anomaly is None else series.is_anomaly[start:]
    return result["scores"][start:], labels


# ---------------------------------------------------------------- compare


def compare(args, all_series):
    rows, per_detector, throughput = {}, {name: [] for name in DETECTOR_NAMES}, {}
    for series in all_series:
        labelled = series.is_anomaly is not None and series.is_anomaly[choose_parts(series, args)[1]:].any()
        print(f"{series.name}: {len(series)} points, {len(series.columns)} channel(s), "
              f"{len(anomaly.label_windows(series.is_anomaly)) if labelled else 'no'} labelled anomalies")
        for name in DETECTOR_NAMES:
            result = run_detector(name, series, args)
            scores, labels = scored_part(series, result)
            row = evaluate(scores, result["threshold"], labels if labelled else None, args.tolerance)
            row["fit s"] = round(result["fit_seconds"], 1)
            rows[f"{series.name} / {DETECTOR_NAMES[name]}"] = row
            per_detector[name].append(row)
            throughput.setdefault(name, []).append((len(series), result["score_seconds"]))
            print(f"  {DETECTOR_NAMES[name]}: fitted in {result['fit_seconds']:.1f} s, scored in {result['score_seconds']:.2f} s")
    for name, detector_rows in per_detector.items():
        rows[f"mean / {DETECTOR_NAMES[name]}"] = mean_row(detector_rows)
    points_per_second = {DETECTOR_NAMES[name]: sum(n for n, _ in runs) / max(sum(s for _, s in runs), 1e-9) for name, runs in throughput.items()}
    return rows, verdicts(rows), points_per_second


def mean_row(rows):
    mean = {}
    for column in ("precision", "recall", "F1", "F1 strict", "ROC AUC"):
        values = [row[column] for row in rows if not math.isnan(row[column])]
        mean[column] = float(np.mean(values)) if values else math.nan
    mean["false alarms"] = int(sum(row["false alarms"] for row in rows))
    top1 = [row["top-1"] for row in rows if row["top-1"] is not None]
    mean["top-1"] = f"{sum(top1)}/{len(top1)}" if top1 else None
    mean["fit s"] = round(float(sum(row["fit s"] for row in rows)), 1)
    return mean


def verdicts(rows):
    """One plain sentence per recurrent detector and metric: beats, ties or loses to the better baseline."""
    lines = []
    baselines = [DETECTOR_NAMES["zscore"], DETECTOR_NAMES["discord"]]
    for name in RECURRENT:
        label = DETECTOR_NAMES[name]
        mine = rows[f"mean / {label}"]
        for metric, higher_is_better in (("F1", True), ("ROC AUC", True), ("false alarms", False)):
            known = [b for b in baselines if not (isinstance(rows[f"mean / {b}"][metric], float) and math.isnan(rows[f"mean / {b}"][metric]))]
            if not known or (isinstance(mine[metric], float) and math.isnan(mine[metric])):
                lines.append(f"{label}: no labelled series, so no mean {metric} to compare.")
                continue
            sign = 1 if higher_is_better else -1
            best_name = max(known, key=lambda b: sign * rows[f"mean / {b}"][metric])
            best, value = rows[f"mean / {best_name}"][metric], mine[metric]
            what = "mean" if metric != "false alarms" else "total"
            numbers = f"{what} {metric} {value:.3g} vs {best_name} {best:.3g}"
            if abs(value - best) < 1e-9:
                lines.append(f"{label} ties the better baseline: {numbers}.")
            elif sign * (value - best) > 0:
                lines.append(f"{label} beats both baselines: {numbers}.")
            else:
                lines.append(f"{label} does NOT beat both baselines: {numbers}.")
    return lines


def print_compare(rows, verdict_lines, points_per_second, args):
    print()
    common.print_table(
        rows, columns=["precision", "recall", "F1", "false alarms", "F1 strict", "ROC AUC", "top-1", "fit s"],
        title=f"Test parts, after each normal prefix (event scores with --tolerance {args.tolerance}; F1 strict: tolerance 0; n/a: no labels):",
        digits=3,
    )
    print()
    for line in verdict_lines:
        print(line)
    print("Scoring throughput (points per second, after fitting): " + ", ".join(f"{name} {rate:,.0f}" for name, rate in points_per_second.items()))


# ---------------------------------------------------------------- outputs


def scores_frame(series, scores, threshold, start=0, parts=None):
    frame = pd.DataFrame({"time": series.times[start:]})
    for column_index, column in enumerate(series.columns):
        frame[column] = series.values[start:, column_index]
    frame["score"] = scores
    frame["flagged"] = (scores > threshold).astype(int)
    if series.is_anomaly is not None:
        frame["is_anomaly"] = series.is_anomaly[start:].astype(int)
    if parts is not None:
        frame["part"] = parts
    return frame


def events_frame(series, scores, threshold, start=0):
    events = anomaly.flagged_events(scores > threshold, scores, offset=start)
    return pd.DataFrame(
        [{"start": series.times[e["start"]], "end": series.times[e["end"]], "start_index": e["start"], "end_index": e["end"], "peak_score": e["peak_score"]} for e in events],
        columns=["start", "end", "start_index", "end_index", "peak_score"],
    )


def plot_run(path, series, scores, threshold, title, train_end=0, fit_end=0):
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, height_ratios=(2, 1))
    steps = np.arange(len(series))
    if series.values.shape[1] == 1:
        top.plot(steps, series.values[:, 0], color="black", lw=0.7, label=series.columns[0])
        top.set_ylabel(series.columns[0])
    else:  # several channels: scale each so they share one axis
        spread = series.values.std(axis=0)
        scaled = (series.values - series.values.mean(axis=0)) / np.where(spread > 0, spread, 1)
        for channel in range(scaled.shape[1]):
            top.plot(steps, scaled[:, channel] + 4 * channel, lw=0.5, label=series.columns[channel])
        top.set_ylabel("channels (standardised, offset)")
    if train_end:
        for axis in (top, bottom):
            axis.axvspan(0, fit_end, color="0.9", zorder=0)
            axis.axvspan(fit_end, train_end, color="0.8", zorder=0)
        top.plot([], [], color="0.85", lw=8, label="normal prefix: fitted | held out for the threshold")
    flags = np.nan_to_num(scores, nan=-np.inf) > threshold
    for number, (start, end) in enumerate(anomaly.label_windows(flags)):
        top.axvspan(start - 0.5, end + 0.5, color="tab:red", alpha=0.3, lw=0, label="flagged" if number == 0 else None)
    if series.is_anomaly is not None:
        low, high = top.get_ylim()
        for number, (start, end) in enumerate(anomaly.label_windows(series.is_anomaly)):
            top.hlines(high, start - 0.5, end + 0.5, color="tab:green", lw=6, label="labelled anomaly" if number == 0 else None)
            top.axvline(start, color="tab:green", lw=0.8, ls="--")
    top.set_title(title)
    top.legend(loc="upper left", fontsize="small", ncol=1 if series.values.shape[1] == 1 else 4)
    bottom.plot(steps, scores, color="tab:blue", lw=0.7, label="score")
    bottom.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:.3g}")
    if np.nanmin(scores) > 0:
        bottom.set_yscale("log")
    bottom.set(xlabel="time step", ylabel="anomaly score")
    bottom.legend(loc="upper left", fontsize="small")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    common.save_figure(figure, path)


def save_detector(out, name, result, series, args):
    detector = result["detector"]
    if name in RECURRENT:
        save_model_atomically(detector.model, out / "model.keras")
    if name == "discord":
        np.save(out / "reference.npy", detector.reference)
    config = {
        "detector": name, "window": args.window, "units": args.units, "smooth": args.smooth,
        "threshold": result["threshold"], "threshold_factor": args.threshold_factor, "scaler": result["scaler"].to_dict(),
        "value_cols": series.columns, "time_col": args.time_col, "series": series.name, "seed": args.seed,
        "fit_end": result["fit_end"], "train_end": result["train_end"],
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))


# ---------------------------------------------------------------- main


@report_user_errors
def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    if args.train_fraction is not None and not 0 < args.train_fraction < 1:
        raise UserError(f"--train-fraction must be between 0 and 1, got {args.train_fraction}")
    if not 0 < args.holdout_fraction < 1:
        raise UserError(f"--holdout-fraction must be between 0 and 1, got {args.holdout_fraction}")
    if args.tolerance < 0:
        raise UserError(f"--tolerance must be 0 or more, got {args.tolerance}")
    if args.csv is not None and args.series is not None:
        raise UserError("choose either --csv or --series, not both")
    if args.load:
        return score_with_saved_run(args)
    if args.quick:  # a smoke test: a small window, a small model, a few epochs
        args.epochs, args.window, args.units = min(args.epochs, 3), min(args.window, 32), min(args.units, 8)
    all_series = load_series(args)
    for series in all_series:
        choose_parts(series, args)  # every size problem is reported before any fitting

    if args.compare:
        rows, verdict_lines, points_per_second = compare(args, all_series)
        print_compare(rows, verdict_lines, points_per_second, args)
        out = run_dir(args.out, "anomaly")
        metrics = {"table": rows, "verdicts": verdict_lines, "scoring_points_per_second": points_per_second,
                   "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        print(f"\nSaved metrics.json in {out}/ ({time.perf_counter() - started:.0f} s)")
        return 0

    series = all_series[0]
    name = args.detector
    fit_end, train_end = choose_parts(series, args)
    print(f"Data: {series.name}, {len(series)} points, {len(series.columns)} channel(s); normal prefix 0-{train_end - 1} "
          f"(fit on {fit_end}, {train_end - fit_end} held out for the threshold), test part {train_end}-{len(series) - 1}")
    what = f"{DETECTOR_NAMES[name]} on {args.window}-point windows" + (f", {args.units} units, up to {args.epochs} epochs" if name in RECURRENT else "")
    print(f"Fitting the {what} ...")
    result = run_detector(name, series, args)
    scores, labels = scored_part(series, result)
    labelled = labels is not None and labels.any()
    table = {DETECTOR_NAMES[name]: evaluate(scores, result["threshold"], labels if labelled else None, args.tolerance)}
    # The baselines cost seconds, so a single run always shows them beside the detector.
    for baseline in ("zscore", "discord"):
        if baseline != name:
            baseline_result = run_detector(baseline, series, args)
            baseline_scores, _ = scored_part(series, baseline_result)
            table[DETECTOR_NAMES[baseline]] = evaluate(baseline_scores, baseline_result["threshold"], labels if labelled else None, args.tolerance)
    print()
    common.print_table(table, title=f"Test part of {series.name} ({len(scores)} points; event scores with --tolerance {args.tolerance}; n/a: no labels):", digits=3)
    events = events_frame(series, scores, result["threshold"], start=train_end)
    print(f"\n{len(events)} flagged event(s) in the test part; threshold {result['threshold']:.4g} "
          f"({args.threshold_factor} x the highest held-out normal score)")

    # Everything is computed; only now touch the output folder.
    out = run_dir(args.out, "anomaly")
    save_detector(out, name, result, series, args)
    parts = np.where(np.arange(len(series)) < fit_end, "fit", np.where(np.arange(len(series)) < train_end, "held out", "test"))
    scores_frame(series, result["scores"], result["threshold"], parts=parts).to_csv(out / "scores.csv", index=False, float_format="%.9g")
    events.to_csv(out / "anomalies.csv", index=False, float_format="%.6g")
    detector = result["detector"]
    metrics = {
        "test": table, "threshold": result["threshold"], "events": len(events), "series": series.name,
        "points": {"fit": fit_end, "held_out": train_end - fit_end, "test": len(series) - train_end},
        "fit_seconds": round(result["fit_seconds"], 2), "epochs_run": getattr(detector, "epochs_run", 0),
        "scoring_points_per_second": round(len(series) / max(result["score_seconds"], 1e-9), 1),
        "config": json.loads((out / "config.json").read_text()) | {"scaler": "see config.json"},
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    plot_run(out / "anomalies.png", series, result["scores"], result["threshold"],
             f"{series.name}: {DETECTOR_NAMES[name]}, flagged events and labelled anomalies", train_end, fit_end)
    saved = ("model.keras, " if name in RECURRENT else "") + "config.json, scores.csv, anomalies.csv, metrics.json and anomalies.png"
    print(f"Saved {saved} in {out}/ ({time.perf_counter() - started:.0f} s; score new data with --load {out} --csv NEW.csv)")
    return 0


def score_with_saved_run(args):
    """Score a whole new series with a saved detector, its scaler and its threshold; nothing is refitted."""
    directory = Path(args.load)
    if not directory.is_dir():
        raise UserError(f"--load {directory}: no such folder")
    try:
        config = json.loads((directory / "config.json").read_text())
        name, threshold = config["detector"], float(config["threshold"])
        scaler = common.StandardScaler.from_dict(config["scaler"])
        saved_columns = list(config["value_cols"])
        args.window, args.units, args.smooth = int(config["window"]), int(config["units"]), int(config.get("smooth", 1))
        if name not in DETECTOR_NAMES:
            raise KeyError(name)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"--load {directory}: config.json is missing or damaged ({type(error).__name__})") from None
    model = load_model_from_dir(directory) if name in RECURRENT else None
    if args.out is not None and Path(args.out).resolve() == directory.resolve():
        raise UserError(f"--out {args.out}: is the --load folder; choose another so the saved run is not overwritten")
    if args.csv is not None:
        value_cols = args.value_cols or saved_columns
        series = read_series_csv(args.csv, args.time_col if args.time_col != "timestamp" else config.get("time_col", "timestamp"), value_cols, args.label_col, args.labels, args.fill)
    else:
        series = load_series(args)[0]
    if len(series.columns) != len(saved_columns):
        raise UserError(f"the saved detector reads {len(saved_columns)} channel(s) ({', '.join(saved_columns)}); the data has {len(series.columns)}")
    if len(series) < 2 * args.window:
        raise UserError(f"{series.name}: {len(series)} points is shorter than two windows of the saved --window {args.window}")
    detector = make_detector(name, args, model=model)
    if name == "discord":
        try:
            detector.reference = np.load(directory / "reference.npy")
        except (OSError, ValueError) as error:
            raise UserError(f"--load {directory}: reference.npy is missing or damaged ({type(error).__name__})") from None
    scores = detector.score(scaler.transform(series.values).astype("float32"))
    labelled = series.is_anomaly is not None and series.is_anomaly.any()
    table = {DETECTOR_NAMES[name]: evaluate(scores, threshold, series.is_anomaly if labelled else None, args.tolerance)}
    common.print_table(table, title=f"{series.name}, all {len(series)} points, scored by the saved {DETECTOR_NAMES[name]} (threshold {threshold:.4g}):", digits=3)
    events = events_frame(series, scores, threshold)
    print(f"\n{len(events)} flagged event(s)")
    out = run_dir(args.out, "anomaly")
    scores_frame(series, scores, threshold).to_csv(out / "scores.csv", index=False, float_format="%.9g")
    events.to_csv(out / "anomalies.csv", index=False, float_format="%.6g")
    (out / "metrics.json").write_text(json.dumps({"scored": table, "threshold": threshold, "events": len(events), "loaded_from": str(directory)}, indent=2, default=str))
    plot_run(out / "anomalies.png", series, scores, threshold, f"{series.name}: saved {DETECTOR_NAMES[name]} from {directory}")
    print(f"Saved scores.csv, anomalies.csv, metrics.json and anomalies.png in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
