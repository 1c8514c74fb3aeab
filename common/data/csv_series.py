"""Reading monitoring time series as they come, for anomaly detection.

Real exports are messy: rows out of order, the same timestamp twice, a missed reading,
clocks that drift by a minute, a daylight-saving offset that changes half-way through,
an empty cell. :func:`read_series_csv` repairs what can be repaired without guessing,
records each repair as one sentence in :attr:`Series.notes`, and raises ``ValueError``
only for what cannot be scored (text where numbers belong, infinities, too few points).

>>> frame = pd.DataFrame({"timestamp": [0, 1, 1, *range(3, 20)], "value": [0, 1, 3, *range(3, 20)]})
>>> steps = series_from_frame(frame, name="demo")
>>> steps.values.shape, steps.step
((20, 1), 1)
>>> steps.values[:4, 0].tolist()
[0.0, 2.0, 2.5, 3.0]
>>> for note in steps.notes:
...     print(note)
averaged 1 duplicate timestamp (2 rows at 1 time)
resampled to the typical step of 1: 1 missing step filled

Labels come either from a 0/1 column (``is_anomaly`` is used automatically) or from a
separate file of ``[start, end]`` windows (:func:`read_label_windows`), such as NAB's
``combined_windows.json``.
"""

import csv
import json
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from common.data import files
from common.data.files import MissingColumnError  # noqa: F401  for the apps to catch
from common.data.windows import runs_of_true

MIN_POINTS = 16  # a detector needs at least 8 windows of 2 points to learn what is usual
DUPLICATE_RULES = ("mean", "first", "last", "error")
DAY_FIRST_NOTE = "read dates with the day first"  # how a series' notes say it was read so
MAX_GRID_FACTOR = 10  # a regular grid may hold at most this many times the rows read
LABEL_NAMES = ("is_anomaly", "label")  # never used as value channels unless asked for
EMPTY_TEXTS = ("", "nan", "na", "n/a", "null", "none")  # compared in lower case

# A UTC offset at the end of a stamp that has a clock time: "...12:00Z", "...12:00:00+01:00".
# Requiring the clock time keeps the day of a date-only stamp ("2014-04-01") from reading as "-01".
OFFSET_PATTERN = r"\d:\d{2}(?::\d{2})?(?:[.,]\d+)?\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"

# What ``pandas.read_csv`` raises for a file that is no readable CSV: broken rows or quoting,
# no data, bytes that are not the encoding, a truncated or fake .gz (EOFError, zlib.error;
# gzip.BadGzipFile is an OSError). The apps and notebooks catch exactly these, nothing wider.
CSV_READ_ERRORS = (
    pd.errors.ParserError,
    pd.errors.EmptyDataError,
    UnicodeDecodeError,
    OSError,
    EOFError,
    zlib.error,
)


def error_reason(error, limit=None):
    """The first line of an exception's message (cut to ``limit``), or its type's name.

    >>> error_reason(EOFError("Compressed file ended\\nmore detail"))
    'Compressed file ended'
    >>> error_reason(EOFError())
    'EOFError'
    """
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


@dataclass
class Series:
    """One series ready for scoring.

    Attributes:
        name: where it came from, e.g. ``"sensors.csv"`` or ``"realKnownCause/nyc_taxi.csv"``.
        times: ``DatetimeIndex`` (tz-naive; in UTC when the file had UTC offsets) or an
            ``int64`` ``Index`` of steps; strictly increasing with a regular step.
        values: (timesteps, channels) float64, all finite.
        columns: the channel names, ``len(columns) == values.shape[1]``.
        is_anomaly: (timesteps,) bool from a 0/1 label column or label windows;
            ``None`` when the series is unlabelled.
        label_windows: inclusive ``(start, end)`` index pairs of the labelled windows;
            ``None`` when the series is unlabelled.
        normal_end: length of a prefix known to be free of anomalies (bundled data sets);
            ``None`` otherwise.
        notes: one short sentence per repair made while reading.
        dayfirst: the times were written day first ("02/03/2024" is 2 March); a labels file
            for the series is read the same way.
    """

    name: str
    times: pd.Index
    values: np.ndarray
    columns: list[str]
    is_anomaly: np.ndarray | None = None
    label_windows: list[tuple[int, int]] | None = None
    normal_end: int | None = None
    notes: list[str] = field(default_factory=list)
    dayfirst: bool = False

    def __len__(self):
        return len(self.values)

    @property
    def step(self):
        """The regular step between times: a ``Timedelta``, or an ``int`` for step indices."""
        if len(self.times) < 2:
            return None
        step = self.times[1] - self.times[0]
        return step if isinstance(self.times, pd.DatetimeIndex) else int(step)


# ---------------------------------------------------------------- reading a CSV


def read_series_csv(
    path, time_col="timestamp", value_cols=None, label_col=None, duplicates="mean", name=None
):
    """Read a CSV (optionally gzipped) into a regular, finite :class:`Series`.

    >>> machine = read_series_csv("machine_temperature_system_failure.csv")  # doctest: +SKIP
    >>> machine.values.shape, machine.step  # doctest: +SKIP
    ((22683, 1), Timedelta('0 days 00:05:00'))
    >>> machine.notes  # doctest: +SKIP
    ['sorted the rows by time (1 row out of order)',
     'averaged 12 duplicate timestamps (24 rows at 12 times)']

    Args:
        path: a ``.csv`` file, or a gzipped one (``.csv.gz``), UTF-8 encoded.
        time_col: the column of datetimes or integer steps. Defaults to ``"timestamp"``.
        value_cols: the channel columns. Defaults to ``None``: every numeric column except
            the time column and label columns (``is_anomaly``, ``label``).
        label_col: a 0/1 column of labels. Defaults to ``None``: ``is_anomaly`` if present.
        duplicates: how rows sharing a timestamp are combined, one of
            ``DUPLICATE_RULES``: ``"mean"`` (default), ``"first"`` or ``"last"`` value of
            each channel, or ``"error"`` to refuse them. Labels always take the maximum.
        name: the series' name. Defaults to the file name.

    Returns:
        A :class:`Series`; every repair made is described in its ``notes``.

    Raises:
        ValueError: one line saying what was expected and what the file holds.
    """
    path = Path(path)
    name = path.name if name is None else str(name)
    # The one reader of users' files: gzip by content, separators sniffed, an Excel workbook
    # or a folder named as such; every cell stays text so a bad value is shown as written.
    frame = files.read_table(path, name)
    # Files split by ";" (or tabs) are European spreadsheets' exports: "2.537,00" is 2537.
    decimal_comma = frame.attrs["separator"] != ","
    return series_from_frame(
        frame, time_col, value_cols, label_col, duplicates, name, decimal_comma
    )


def series_from_frame(
    frame,
    time_col="timestamp",
    value_cols=None,
    label_col=None,
    duplicates="mean",
    name="series",
    decimal_comma=False,
):
    """Clean a ``DataFrame`` into a :class:`Series`, as :func:`read_series_csv` does.

    Cells may be text (as read from a CSV) or already typed (numbers, datetimes).

    >>> times = pd.date_range("2024-01-01", periods=20, freq="5min", tz="Europe/Paris")
    >>> frame = pd.DataFrame({"timestamp": times, "value": range(20)})
    >>> paris = series_from_frame(frame, name="paris")
    >>> paris.values.shape, str(paris.times[0]), paris.notes
    ((20, 1), '2023-12-31 23:00:00', ['converted times from Europe/Paris to UTC'])

    Args:
        frame: one row per reading.
        time_col, value_cols, label_col, duplicates: as in :func:`read_series_csv`.
        name: the series' name, used at the start of every error message.
        decimal_comma: text values may use a decimal comma ("2.537,00", see
            :func:`common.data.files.numbers_from_text`); currency signs and thousands
            separators are read in any case.

    Returns:
        A :class:`Series` with strictly increasing, regular times and finite values.
    """
    if duplicates not in DUPLICATE_RULES:
        raise ValueError(
            f"Expected duplicates in {DUPLICATE_RULES}. Received: duplicates={duplicates!r}"
        )
    frame = frame.copy()
    frame.columns = [str(column).strip() for column in frame.columns]
    repeated = sorted({column for column in frame.columns if list(frame.columns).count(column) > 1})
    if repeated:
        raise ValueError(f"{name}: expected distinct column names; repeated: {', '.join(repeated)}")
    notes = []
    frame = _drop_empty_rows(frame, notes)
    if frame.empty:
        raise ValueError(f"{name}: expected data rows after the header; received none")

    value_cols, label_col = _choose_columns(
        frame, time_col, value_cols, label_col, name, decimal_comma
    )
    used = [time_col, label_col, *value_cols, *(column.rsplit(".", 1)[0] for column in value_cols)]
    if repeated := files.repeated_heading(frame, used):  # pandas read one of them as "x.1"
        raise ValueError(f"{name}: expected one column named '{repeated}'; the file has several")
    ticks, unit = _parse_times(frame[time_col], name, time_col, notes)
    values = np.column_stack(
        [_parse_numbers(frame[col], name, col, decimal_comma) for col in value_cols]
    )
    for column, channel in zip(value_cols, values.T):
        if np.isnan(channel).all():
            raise ValueError(f"{name}: expected numbers in column '{column}'; it is empty")
    labels = None if label_col is None else _parse_labels(frame[label_col], name, label_col)

    order = np.argsort(ticks, kind="stable")
    out_of_order = int((np.diff(ticks) < 0).sum())
    if out_of_order:
        notes.append(f"sorted the rows by time ({_count(out_of_order, 'row')} out of order)")
        ticks, values = ticks[order], values[order]
        labels = None if labels is None else labels[order]

    rows = len(ticks)
    ticks, values, labels = _merge_duplicates(ticks, values, labels, duplicates, name, unit, notes)
    _check_enough(len(ticks), rows, name)
    ticks, values, labels, occupied = _to_regular_grid(ticks, values, labels, name, unit, notes)
    _check_enough(int(occupied.sum()), rows, name)

    missing = int(np.isnan(values[occupied]).sum())
    if np.isnan(values).any():
        values = _interpolate(values)
    if missing:
        notes.append(f"interpolated {_count(missing, 'empty or NaN value')}")

    if unit is None:
        times = pd.Index(ticks, dtype="int64", name=time_col)
    else:
        times = pd.DatetimeIndex(ticks.view(f"datetime64[{unit}]"), name=time_col)
    is_anomaly = None if labels is None else labels.astype(bool)
    return Series(
        dayfirst=any(note.startswith(DAY_FIRST_NOTE) for note in notes),
        name=name,
        times=times,
        values=values.astype("float64"),
        columns=list(value_cols),
        is_anomaly=is_anomaly,
        label_windows=None if is_anomaly is None else runs_of_true(is_anomaly),
        notes=notes,
    )


def _drop_empty_rows(frame, notes):
    """Rows with every cell empty (a spreadsheet's trailing ``,,,`` lines) carry nothing."""
    if frame.empty:
        return frame
    cells = frame.astype("string").fillna("")
    empty = cells.apply(lambda column: column.str.strip() == "").all(axis=1).to_numpy()
    if not empty.any():
        return frame
    if not empty.all():
        notes.append(f"skipped {_count(int(empty.sum()), 'empty row')}")
    return frame[~empty].reset_index(drop=True)


def _choose_columns(frame, time_col, value_cols, label_col, name, decimal_comma=False):
    def require(column):
        if column not in frame.columns:
            raise files.MissingColumnError(
                f"{name}: expected a column '{column}'; columns are: {', '.join(frame.columns)}",
                column,
            )

    require(time_col)
    labels = [column for column in frame.columns if column.lower() in LABEL_NAMES]  # Label too
    if isinstance(value_cols, str):
        value_cols = [value_cols]
    if label_col is not None:
        require(label_col)
    elif "is_anomaly" in map(str.lower, labels):  # unless asked for as a value channel
        label_col = next(column for column in labels if column.lower() == "is_anomaly")
        label_col = None if label_col in (value_cols or ()) else label_col
    if value_cols:
        for column in value_cols:
            require(column)
            if column in (time_col, label_col):
                raise ValueError(
                    f"{name}: expected value columns besides the times and labels; "
                    f"received '{column}', the {'time' if column == time_col else 'label'} column"
                )
        return list(value_cols), label_col
    skipped = {time_col, label_col, *labels}
    value_cols = [
        column
        for column in frame.columns
        if column not in skipped and _looks_numeric(frame[column], decimal_comma)
    ]
    if not value_cols:
        raise ValueError(
            f"{name}: expected a numeric value column besides '{time_col}'; "
            f"columns are: {', '.join(frame.columns)}"
        )
    return value_cols, label_col


def _looks_numeric(column, decimal_comma=False):
    """Most non-empty cells are numbers: a stray typo should be reported, not hide the column."""
    if pd.api.types.is_bool_dtype(column):
        return False
    if pd.api.types.is_numeric_dtype(column):
        return bool(column.notna().any())
    text = column.astype("string").fillna("").str.strip()
    filled = ~text.str.lower().isin(EMPTY_TEXTS)
    if not filled.any():
        return False
    numbers = _text_numbers(text[filled], decimal_comma)
    return bool(np.count_nonzero(~np.isnan(numbers)) * 2 > filled.sum())


def _describe(value):
    return files.show(value)


def _text_numbers(text, decimal_comma):
    """Floats from text cells, NaN where none: plain numbers ("inf" too, refused later), then
    what a spreadsheet writes ("$21.28", "2,537.00", with ``decimal_comma`` "2.537,00")."""
    plain = pd.to_numeric(text, errors="coerce").astype("float64").to_numpy()
    if not decimal_comma and not np.isnan(plain[text.notna().to_numpy()]).any():
        return plain
    written = files.numbers_from_text(text, decimal_comma)
    return np.where(np.isnan(written), plain, written)


def _parse_numbers(column, name, column_name, decimal_comma=False):
    """Floats with NaN where a cell is empty; text or infinities raise ``ValueError``."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = column.astype("float64").to_numpy()
        shown = column.to_numpy()
    else:
        text = column.astype("string").fillna("").str.strip()
        empty = text.str.lower().isin(EMPTY_TEXTS).to_numpy()
        numbers = _text_numbers(text.mask(empty), decimal_comma)
        shown = text.to_numpy()
        not_numbers = np.isnan(numbers) & ~empty
        if not_numbers.any():
            first = int(np.flatnonzero(not_numbers)[0])
            raise ValueError(
                f"{name}: expected numbers in column '{column_name}'; received "
                f"{_count(int(not_numbers.sum()), 'other value')} "
                f"(first: {_describe(shown[first])} in row {first + 1})"
            )
    infinite = np.isinf(numbers)
    if infinite.any():
        first = int(np.flatnonzero(infinite)[0])
        raise ValueError(
            f"{name}: expected finite numbers in column '{column_name}'; received "
            f"{_count(int(infinite.sum()), 'row')} with infinite or overflowing values "
            f"(first: {files.show(shown[first])} in row {first + 1})"
        )
    return numbers


def _parse_labels(column, name, label_col):
    text = column.astype("string").fillna("").str.strip()
    numbers = pd.to_numeric(text.mask(text == ""), errors="coerce").to_numpy("float64")
    bad = ~np.isin(numbers, (0.0, 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: expected only 0 and 1 in label column '{label_col}'; received "
            f"{_count(int(bad.sum()), 'other value')} (first: {_describe(text.iloc[first])} "
            f"in row {first + 1})"
        )
    return numbers.astype(bool)


# ---------------------------------------------------------------- times


def _parse_times(column, name, time_col, notes):
    """(ticks, unit): int64 ticks of ``unit`` ("s", "ms", "us", "ns"), or steps with unit None."""
    if pd.api.types.is_datetime64_any_dtype(column):
        if column.isna().any():
            first = int(np.flatnonzero(column.isna().to_numpy())[0])
            raise ValueError(
                f"{name}: expected a time in every row of '{time_col}'; "
                f"received {_count(int(column.isna().sum()), 'empty time')} "
                f"(first in row {first + 1})"
            )
        if column.dt.tz is not None:
            if str(column.dt.tz) != "UTC":
                notes.append(f"converted times from {column.dt.tz} to UTC")
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        return column.to_numpy().view("int64").copy(), column.dt.unit
    if pd.api.types.is_bool_dtype(column):
        raise ValueError(
            f"{name}: expected datetimes or integer steps in '{time_col}'; received booleans"
        )

    text = column.astype("string").fillna("").str.strip()
    numbers = pd.to_numeric(text.mask(text == ""), errors="coerce")
    if numbers.notna().all():
        return _steps_from_numbers(numbers, text, name, time_col), None

    parsed = parse_datetimes(text, name, time_col, notes)
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: expected datetimes or integer steps in '{time_col}'; received "
            f"{_count(int(bad.sum()), 'other value')} "
            f"(first: {_describe(text.iloc[first])} in row {first + 1})"
        )
    _note_offsets(text, notes)
    naive = parsed.dt.tz_localize(None)  # already converted to UTC
    return naive.to_numpy().view("int64").copy(), naive.dt.unit


def parse_datetimes(text, name, column, notes):
    """Datetimes in UTC from text cells; NaT where a cell holds none (a bare number never does).

    ISO 8601 first (milliseconds for 20k rows); other layouts, day first or month first,
    only for what is left (:func:`_parse_other_formats`). The apps' readers share this.

    Raises:
        ValueError: dates such as "01/02/2016" that read as well day first as month first.
    """
    text = pd.Series(text, dtype="string").fillna("").str.strip()
    numbers = pd.to_numeric(text.mask(text == ""), errors="coerce")
    parsed = _to_utc(text, format="ISO8601")
    left = parsed.isna() & (text != "") & numbers.isna()
    if left.any():
        other = _parse_other_formats(text[left], name, column, notes)
        parsed = parsed.where(~left, other.reindex(text.index))
    return parsed.where(numbers.isna())


def _to_utc(text, format, dayfirst=False):
    with warnings.catch_warnings():  # pandas warns when it guesses a format; we never print
        warnings.simplefilter("ignore")
        return pd.to_datetime(text, utc=True, format=format, dayfirst=dayfirst, errors="coerce")


def _parse_other_formats(text, name, column, notes):
    """Stamps that are not ISO 8601, read day first or month first, whichever fits better.

    "02/12/2013" is 2 December in Europe and February 12 in the USA. The reading under
    which one guessed format parses more stamps wins (a "13/12/2013" rules out month first);
    if both parse all, the one giving the more regular series. Stamps in yet another format
    are then parsed one by one (slow, so only for those).
    """
    clock_only = text.str.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([AaPp]\.?[Mm]\.?)?")
    if clock_only.any():  # pandas would put today's date before it
        first = clock_only.to_numpy().argmax()
        raise ValueError(
            f"{name}: expected a date in each time of '{column}'; received a time of day alone "
            f"({files.show(text.iloc[first])} in row {text.index[first] + 1}): write the date "
            "too, as 2024-01-31 13:45"
        )
    readings = []
    for dayfirst in (False, True):
        guess = _to_utc(text, format=None, dayfirst=dayfirst)
        readings.append(((int(guess.notna().sum()), _regularity(guess)), dayfirst, guess))
    (month_score, _, month_first), (day_score, _, day_first) = readings
    if month_score == day_score and month_score[0] and not month_first.equals(day_first):
        # Neither reading parses more stamps nor gives a more regular series: any choice is a guess.
        example = text[month_first.ne(day_first)].iloc[0]
        raise ValueError(
            f"{name}: expected dates whose order can be told in '{column}'; {files.show(example)} "
            "reads as well day first as month first and no date decides (write them as YYYY-MM-DD)"
        )
    _, dayfirst, parsed = readings[1] if day_score > month_score else readings[0]
    left = parsed.isna()
    if left.any():
        parsed = parsed.where(~left, _to_utc(text[left], format="mixed", dayfirst=dayfirst))
    if dayfirst:
        example = f"'{text.iloc[0]}' is {parsed.iloc[0].tz_localize(None)}"
        notes.append(f"{DAY_FIRST_NOTE} ({example})")
    return parsed


def _regularity(times):
    """How many gaps between the sorted distinct times equal the most common gap."""
    ticks = np.unique(pd.DatetimeIndex(times.dropna()).asi8)
    if len(ticks) < 3:
        return 0
    return int(np.unique(np.diff(ticks), return_counts=True)[1].max())


def _steps_from_numbers(numbers, text, name, time_col):
    """Integer steps; fractions, infinities and numbers beyond 2**62 (gaps would overflow) raise."""
    if pd.api.types.is_integer_dtype(numbers):
        steps = numbers.to_numpy()
        bad = np.abs(steps.astype("float64")) >= 2.0**62
    else:
        steps = numbers.to_numpy("float64")
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(steps) | (steps != np.round(steps)) | (np.abs(steps) >= 2.0**62)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: expected datetimes or integer steps in '{time_col}'; received "
            f"{_count(int(bad.sum()), 'fractional or out-of-range number')} "
            f"(first: {files.show(text.iloc[first])} in row {first + 1})"
        )
    return steps.astype("int64")


def _note_offsets(text, notes):
    """Describe how UTC offsets in the stamps were handled (all become naive UTC)."""
    offsets = text.str.extract(OFFSET_PATTERN, flags=re.IGNORECASE)[0]
    with_offset = int(offsets.notna().sum())
    if with_offset == 0:
        return
    normal = {value: _normal_offset(value) for value in offsets.dropna().unique()}
    distinct = sorted(set(normal.values()))
    if len(distinct) > 1:
        notes.append("converted mixed UTC offsets to UTC")
    elif distinct != ["+00:00"]:
        notes.append(f"converted times at UTC offset {distinct[0]} to UTC")
    without = len(text) - with_offset
    if without:
        notes.append(f"treated {_count(without, 'time')} without a UTC offset as UTC")


def _normal_offset(text):
    text = text.upper()
    if text in ("Z", "UTC", "GMT"):
        return "+00:00"
    digits = text[1:].replace(":", "")
    return f"{text[0]}{digits[:2]}:{digits[2:] or '00'}"


# ---------------------------------------------------------------- duplicates and the grid


def _merge_duplicates(ticks, values, labels, rule, name, unit, notes):
    """One row per time (``ticks`` sorted): values by ``rule``, labels by maximum."""
    repeated = ticks[1:] == ticks[:-1]
    if not repeated.any():
        return ticks, values, labels
    starts = np.flatnonzero(np.concatenate([[True], ~repeated]))
    counts = np.diff(np.append(starts, len(ticks)))
    # "duplicates" are the rows beyond the first at each time: what merging takes away.
    extra = len(ticks) - len(starts)
    shared = counts > 1
    where = f"{_count(int(counts[shared].sum()), 'row')} at {_count(int(shared.sum()), 'time')}"
    if rule == "error":
        first = _format_tick(ticks[starts[shared][0]], unit)
        raise ValueError(
            f"{name}: expected each time once; received {_count(extra, 'duplicate timestamp')} "
            f"({where}; first: {first})"
        )
    if rule == "mean":
        merged = _group_mean(values, starts)
    else:  # the first or last value given for each channel, skipping empty ones
        grouped = pd.DataFrame(values).groupby(np.repeat(np.arange(len(starts)), counts))
        merged = (grouped.first() if rule == "first" else grouped.last()).to_numpy("float64")
    if labels is not None:
        labels = np.maximum.reduceat(labels, starts)
    if rule == "mean":
        notes.append(f"averaged {_count(extra, 'duplicate timestamp')} ({where})")
    else:
        notes.append(
            f"merged {_count(extra, 'duplicate timestamp')}, keeping the {rule} value ({where})"
        )
    return ticks[starts], merged, labels


def _to_regular_grid(ticks, values, labels, name, unit, notes):
    """Put strictly increasing ``ticks`` on a regular grid at their typical step.

    Each point goes to its nearest grid slot (several in one slot are averaged, their labels
    combined by maximum); empty slots get NaN values and the label of the slot before.

    Returns:
        ticks, values (NaN in empty slots), labels, and a mask of the slots that got a point.
    """
    occupied = np.ones(len(ticks), dtype=bool)
    if len(ticks) < 2:
        return ticks, values, labels, occupied
    gaps = np.diff(ticks)
    step = _typical_step(ticks, gaps)
    if (gaps == step).all():
        return ticks, values, labels, occupied

    start, slots = _grid_slots(ticks, step)
    size = int(slots[-1]) + 1
    if size > MAX_GRID_FACTOR * len(ticks):
        raise ValueError(
            f"{name}: expected roughly regular times; {len(ticks)} points from "
            f"{_format_tick(ticks[0], unit)} to {_format_tick(ticks[-1], unit)} at their typical "
            f"step of {_format_step(step, unit)} would need a grid of {size} points "
            f"(largest gap: {_format_step(int(gaps.max()), unit)})"
        )
    grid = start + step * np.arange(size, dtype="int64")
    shifts = np.abs(grid[slots] - ticks)
    firsts = np.flatnonzero(np.concatenate([[True], slots[1:] != slots[:-1]]))
    used = slots[firsts]

    full = np.full((size, values.shape[1]), np.nan)
    full[used] = _group_mean(values, firsts)
    occupied = np.zeros(size, dtype=bool)
    occupied[used] = True
    if labels is not None:
        # An empty slot continues the label before it, so a window spanning a gap stays whole.
        source = np.zeros(size, dtype=int)
        source[used] = np.arange(len(used))
        source = np.maximum.accumulate(source)
        labels = np.maximum.reduceat(labels.astype(int), firsts)[source].astype(bool)

    parts = []
    if size > len(used):
        parts.append(f"{_count(size - len(used), 'missing step')} filled")
    if shifts.any():
        moved = _count(int(np.count_nonzero(shifts)), "point")
        parts.append(f"{moved} moved to the grid by up to {_format_step(int(shifts.max()), unit)}")
    if len(ticks) > len(used):
        parts.append(f"{_count(len(ticks) - len(used), 'point')} averaged into an occupied slot")
    notes.append(f"resampled to the typical step of {_format_step(step, unit)}: {', '.join(parts)}")
    return grid, full, labels, occupied


def _grid_slots(ticks, step):
    """(grid start, each point's nearest slot) for a grid of ``step`` laid over ``ticks``.

    The grid's phase is the most common one among the points, so one early first stamp
    (14:27, 14:30, 14:35, ...) is moved to 14:25 rather than every later point by 2 minutes.
    """
    phases, counts = np.unique((ticks - ticks[0]) % step, return_counts=True)
    phase = int(phases[np.argmax(counts)])  # ties take the smallest, so 0 when it is among them
    start = ticks[0] + phase - (step if phase > step // 2 else 0)
    return start, (ticks - start + step // 2) // step  # the nearest slot, halves rounding up


def _typical_step(ticks, gaps):
    """The median gap, or a finer estimate when the median grid would lose points.

    Stamps rounded to the millisecond from a 64 Hz sensor alternate 15 ms and 16 ms gaps:
    a 16 ms grid drifts by 0.375 ms a step and squeezes neighbours into one slot. A
    least-squares line through (slot, time), slots counted gap by gap, finds 15.625 ms.
    Of the two, the step whose grid merges and invents fewer points wins; ties keep the median.
    """
    # The lower median is a gap that actually occurs, so one odd gap never invents a step.
    median = int(np.sort(gaps)[(len(gaps) - 1) // 2])
    slots = np.concatenate([[0], np.cumsum(np.rint(gaps / median))])
    offsets = (ticks - ticks[0]).astype("float64")
    centred = slots - slots.mean()
    fitted = max(1, round(float(np.sum(centred * offsets) / np.sum(centred**2))))
    if fitted == median or (ticks[-1] - ticks[0]) // fitted >= MAX_GRID_FACTOR * len(ticks):
        return median
    return min((median, fitted), key=lambda step: _grid_cost(ticks, step))


def _grid_cost(ticks, step):
    """Points merged into a shared slot plus slots left empty, on a grid of ``step``."""
    slots = _grid_slots(ticks, step)[1]
    used = int(np.count_nonzero(np.diff(slots))) + 1
    return (len(ticks) - used) + (int(slots[-1]) + 1 - used)


def _interpolate(values):
    """Linear in time (the grid is regular, so linear in index); the ends copy the nearest value.

    Written as a weighted mean of the two neighbours, not ``a + (b - a) * t`` (``np.interp``),
    so that values near the float64 limit (1e308) never overflow on the way.
    """
    result = values.copy()
    for column in result.T:
        known = np.flatnonzero(~np.isnan(column))
        missing = np.flatnonzero(np.isnan(column))
        after_position = np.searchsorted(known, missing)
        after = known[np.minimum(after_position, len(known) - 1)]
        before = known[np.maximum(after_position - 1, 0)]
        span = after - before  # 0 past either end: both neighbours are the nearest value
        weight = np.where(span > 0, (missing - before) / np.maximum(span, 1), 0.0)
        column[missing] = column[before] * (1 - weight) + column[after] * weight
    return result


def _group_mean(values, starts):
    """Mean of each run of rows beginning at ``starts``, skipping NaN, without overflow."""
    valid = ~np.isnan(values)
    counts = np.add.reduceat(valid.astype(int), starts, axis=0)
    sizes = np.diff(np.append(starts, len(values)))
    divisors = np.maximum(np.repeat(counts, sizes, axis=0), 1)
    # Dividing before adding keeps two readings of 1e308 from summing to infinity.
    means = np.add.reduceat(np.where(valid, values, 0.0) / divisors, starts, axis=0)
    means[counts == 0] = np.nan
    return means


def _check_enough(points, rows, name):
    if points < MIN_POINTS:
        read = f" (from {_count(rows, 'row')})" if rows != points else ""
        raise ValueError(
            f"{name}: expected at least {MIN_POINTS} points to score; received {points}{read}"
        )


def _format_tick(tick, unit):
    return str(int(tick)) if unit is None else str(pd.Timestamp(int(tick), unit=unit))


def _format_step(step, unit):
    """A step as people write it: "5 min", "1 h", "2 days", "15.625 ms"; step indices as numbers."""
    if unit is None:
        return str(step)
    try:
        nanoseconds = pd.Timedelta(step, unit=unit).value
    except OverflowError:  # centuries: more nanoseconds than 64 bits hold
        seconds = step * {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}.get(unit, 1)
        return f"{seconds / 86_400:,.0f} days"
    for size, label in ((86_400 * 10**9, "day"), (3600 * 10**9, "h"), (60 * 10**9, "min")):
        if nanoseconds % size == 0:
            count = nanoseconds // size
            return _count(count, label) if label == "day" else f"{count} {label}"
    if nanoseconds % 10**9 == 0:
        return f"{nanoseconds // 10**9} s"
    if nanoseconds >= 10**6:
        return f"{nanoseconds / 10**6:g} ms"
    return f"{nanoseconds / 10**3:g} us"


def _count(number, noun):
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def find_csv_files(paths):
    """``(file, key)`` for every CSV (``.csv`` or ``.csv.gz``) at or under ``paths``, sorted.

    A file reached twice (given twice, or inside two folders given) is listed once.

    The key is the file's path below the folder it was found in, such as
    ``"realKnownCause/nyc_taxi.csv"``, the way NAB's labels file names it; a
    file given directly is keyed by its path as given, so messages show what was typed.
    A folder whose name ends in ``.csv`` is searched like any other, not read.
    """
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            csvs = sorted(
                p
                for p in path.rglob("*")
                if p.name.endswith((".csv", ".csv.gz")) and not p.is_dir()
            )
            if not csvs:
                raise ValueError(f"{path}: expected .csv files in that folder; received none")
            for pipe in (file for file in csvs if file.is_fifo()):  # reading one waits for ever
                raise ValueError(f"{pipe}: expected a file; received a named pipe")
            found += [(file, file.relative_to(path).as_posix()) for file in csvs]
        elif path.exists() or path.is_symlink():
            files.check_file(path)  # a device, a socket or a symbolic link loop is said as such
            found.append((path, str(path)))
        else:
            raise ValueError(f"{path}: no such file or folder")
    seen, unique = set(), []
    for file, key in found:
        try:
            info = file.stat()
            identity = (info.st_dev, info.st_ino)  # the file, whatever its path
        except OSError:  # a broken link: reading it will say so
            identity = file
        if identity not in seen:
            seen.add(identity)
            unique.append((file, key))
    return unique


# ---------------------------------------------------------------- label windows


def read_label_windows(path, series_key, times, one_series=True, dayfirst=False):
    """Read labelled ``[start, end]`` windows and map them onto a series' times.

    Three layouts are understood:

    - a JSON list of pairs: ``[["2014-04-10 07:15", "2014-04-11 16:45"], ...]``;
    - NAB's ``combined_windows.json``: ``{"realKnownCause/nyc_taxi.csv": [[start, end], ...]}``,
      looked up by ``series_key``, else by its file name when that is unique, and used as it
      is when the file holds one series only;
    - a CSV of two columns ``start,end``, with or without that header line.

    Starts and ends are in the units of the time column: datetimes (offsets converted to UTC)
    or step numbers. Windows are clipped to the series; one holding no time of the series is
    left out.

    >>> key = "realKnownCause/machine_temperature_system_failure.csv"
    >>> read_label_windows("combined_windows.json", key, machine.times)  # doctest: +SKIP
    [(2126, 2692), (3703, 4269), (16045, 16611), (19220, 19786)]

    Args:
        path: the labels file.
        series_key: the series' key in a NAB-style dict, e.g. ``"realKnownCause/nyc_taxi.csv"``.
        times: the series' times (``Series.times``), sorted.
        one_series: False when the same file labels several series: a list of pairs (JSON or
            CSV) names no series, so it is refused rather than given to each.
        dayfirst: read dates such as "02/03/2024" day first, as the series' own were read.

    Returns:
        Sorted inclusive ``(start, end)`` index pairs into ``times``, overlapping ones merged;
        None when the file is a dict of series that does not name this one.
    """
    path = Path(path)
    name = path.name
    text = files.read_text(path, str(path))
    times = pd.Index(times)
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        pairs = _json_windows(text, name, series_key)
        if pairs is None:
            return None
    else:
        pairs = _csv_windows(text, name, times)
    if not one_series and not text.lstrip().startswith("{"):
        raise ValueError(
            f"{name}: expected windows by series name for several series, such as "
            '{"cpu.csv": [[start, end], ...]}; received one list of windows, which names none'
        )

    if len(pairs) > len(times):  # a window per point at most; also bounds the time spent here
        raise ValueError(
            f"{name}: expected at most one window per point ({len(times)}); received {len(pairs)}"
        )
    windows = []
    for start_value, end_value in pairs:
        start = _window_bound(start_value, times, name, dayfirst)
        end = _window_bound(end_value, times, name, dayfirst)
        if start > end:
            raise ValueError(
                f"{name}: expected each window to start before it ends; "
                f"received [{start_value}, {end_value}]"
            )
        first = int(times.searchsorted(start, side="left"))
        last = int(times.searchsorted(end, side="right")) - 1
        if first <= last:  # otherwise no time of the series falls inside it
            windows.append((first, last))
    if pairs and not windows and len(times):
        # Scoring against windows that all miss the series would report F1 0 for no reason.
        start, end = pairs[0]
        raise ValueError(
            f"{name}: expected windows within the series' times ({times[0]} to {times[-1]}); "
            f"received {_count(len(pairs), 'window')}, none inside (first: [{start}, {end}])"
        )
    return _merge_windows(windows)


def _json_windows(text, name, series_key):
    try:
        windows = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{name}: expected valid JSON; {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    except RecursionError:
        raise ValueError(
            f"{name}: expected a list of [start, end] pairs; "
            "received JSON nested too deeply to read"
        ) from None
    if isinstance(windows, dict):
        windows = _lookup_series(windows, name, series_key)
        if windows is None:
            return None
    if not isinstance(windows, list):  # the file's content is wrong, not an argument's type
        raise ValueError(  # noqa: TRY004
            f"{name}: expected a list of [start, end] pairs; received {type(windows).__name__}"
        )
    for position, window in enumerate(windows):
        if not isinstance(window, list) or len(window) != 2:
            shown = (
                json.dumps(window)[:60] if not isinstance(window, list) else f"{len(window)} items"
            )
            raise ValueError(
                f"{name}: expected a list of [start, end] pairs; "
                f"received {shown} at position {position}"
            )
    return windows


def _lookup_series(windows, name, series_key):
    """NAB's dict: by exact key, then by file name if unique.

    A series the file does not name is never given another series' windows: None.
    """
    if series_key is not None and str(series_key) in windows:
        return windows[str(series_key)]
    base = PurePosixPath(str(series_key).replace("\\", "/")).name if series_key else None
    matches = [key for key in windows if PurePosixPath(str(key)).name == base]
    if len(matches) == 1:
        return windows[matches[0]]
    if len(matches) > 1:
        raise ValueError(
            f"{name}: expected one series named '{base}' in labels file; "
            f"received {len(matches)}: {', '.join(matches)}"
        )
    return None


def _csv_windows(text, name, times):
    rows = [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    for number, row in enumerate(rows):
        if len(row) < 2:
            raise ValueError(
                f"{name}: expected two columns start,end; received '{','.join(row)}' "
                f"in row {number + 1}"
            )
    pairs = [(row[0].strip(), row[1].strip()) for row in rows]
    if pairs and not _is_bound(pairs[0][0], times):
        pairs = pairs[1:]  # a header line
    return pairs


def _is_bound(value, times):
    try:
        _window_bound(value, times, "")
    except ValueError:
        return False
    return True


def _window_bound(value, times, name, dayfirst=False):
    """A window's start or end in the units of ``times``: a naive UTC Timestamp or a number."""
    if isinstance(times, pd.DatetimeIndex):
        stamp = None
        if isinstance(value, str) and value.strip():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:  # ISO 8601 first: pandas would swap "2024-03-02" under dayfirst
                        stamp = pd.to_datetime(value.strip(), utc=True, format="ISO8601")
                    except ValueError:
                        stamp = pd.to_datetime(value.strip(), utc=True, dayfirst=dayfirst)
            except (ValueError, TypeError, OverflowError):
                stamp = None
        if stamp is None or pd.isna(stamp):
            raise ValueError(
                f"{name}: expected window bounds that are datetimes, like the series' times; "
                f"received {value!r}"
            )
        return stamp.tz_convert(None)
    number = None
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
    if number is None or not np.isfinite(number):
        raise ValueError(
            f"{name}: expected window bounds that are step numbers, like the series' times; "
            f"received {value!r}"
        )
    return number


def _merge_windows(windows):
    merged = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
