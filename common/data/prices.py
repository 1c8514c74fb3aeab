"""Daily prices as a dated Series: from a CSV (yfinance's exports included) or from yfinance.

Every reader returns a float ``pandas.Series`` of positive, finite prices indexed by
date, sorted, one row per date. Errors are ``ValueError`` whose message starts
with ``name`` (the caller's words for the source, for example ``"--csv prices.csv"``)
and says what was expected and what was found.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "prices.csv"
>>> _ = path.write_text("Date,Close\\n2024-01-03,11.5\\n2024-01-02,10\\n")
>>> read_price_csv(path, "Date", "Close").tolist()
[10.0, 11.5]
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd

from common.data import files
from common.data.files import MissingColumnError
from common.data.csv_series import error_reason, parse_datetimes

MAX_PRICE = 1e100  # sums and plot axes of prices near the largest float overflow


def read_price_csv(path, date_col, target_col, name=None):
    """Read a CSV of prices into a float Series indexed by date.

    Accepts plain CSVs and yfinance's exports: the single-header layout of
    ``Ticker.history()`` and the three-row header (Price / Ticker / Date) that
    ``yfinance.download(...).to_csv()`` writes. The file is read by the apps' shared
    reader (:mod:`common.data.files`): gzip by content, the separator sniffed, a
    workbook or a folder named as such; with ";" between columns, "2.537,00" is 2537.
    Repairs made (empty rows skipped, dates read day first) are sentences in
    ``series.attrs["notes"]``.
    """
    path = Path(path)
    name = name or str(path)
    raw = files.read_table(path, name, header=None)
    if len(raw) < 2:
        raise ValueError(f"{name}: no data rows")
    header = [str(column).strip() for column in raw.iloc[0]]
    rows = raw.iloc[1:]
    if header[0] == "Price" and str(raw.iloc[1, 0]).strip() == "Ticker":
        # yfinance.download(...).to_csv(): row 2 names the ticker of each column, row 3 says "Date".
        tickers = sorted({str(t).strip() for t in raw.iloc[1, 1:] if str(t).strip()})
        if len(tickers) > 1:
            raise ValueError(
                f"{name}: holds several tickers ({', '.join(tickers)}); save one ticker per file"
            )
        header[0] = "Date"
        has_date_row = len(raw) > 2 and str(raw.iloc[2, 0]).strip() == "Date"
        rows = raw.iloc[3:] if has_date_row else raw.iloc[2:]
    frame = pd.DataFrame(rows.values, columns=header)
    # A decimal comma is only possible where the comma does not separate the columns.
    return price_series(
        frame, date_col, target_col, name, decimal_comma=raw.attrs["separator"] != ","
    )


def price_series(frame, date_col, target_col, name, decimal_comma=False):
    """Check a frame's date and price columns; return the prices as a sorted, dated Series.

    Every refusal shows the first offending value and its row (rows count from 1, the
    first line after the header).
    """
    for column in (date_col, target_col):
        if column not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise MissingColumnError(f"{name}: no column '{column}'; columns are {columns}", column)
        if list(frame.columns).count(column) > 1:
            raise ValueError(f"{name}: the column '{column}' appears more than once; rename one")
    notes = []
    frame = _drop_rows_without_prices(frame.reset_index(drop=True), date_col, target_col, notes)
    if len(frame) == 0:
        raise ValueError(f"{name}: no data rows")
    dates = parse_dates(frame[date_col], name, date_col, notes)
    if bad_dates := int(dates.isna().sum()):
        first = dates.index[dates.isna()][0]
        value = str(frame.loc[first, date_col]).strip()
        hint = ""
        if re.fullmatch(r"(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])", value):
            hint = "; numbers there look like dates written YYYYMMDD: write them as 2024-01-31"
        elif pd.to_numeric(pd.Series([value]), errors="coerce").notna().all():
            hint = "; numbers there look like Unix times: convert them to dates"
        raise ValueError(
            f"{name}: expected dates in column '{date_col}' such as 2024-01-31, 31/01/2024 or "
            f"01/31/2024; {bad_dates} of {len(dates)} rows have none (first: {files.show(value)} "
            f"in row {first + 1}){hint}"
        )
    prices = pd.Series(files.numbers_from_text(frame[target_col], decimal_comma), frame.index)
    bad = prices.isna()
    if bad.any():
        first = prices.index[bad][0]
        raise ValueError(
            f"{name}: {int(bad.sum())} of {len(prices)} rows in '{target_col}' are empty, NaN or "
            f"not numbers (first: {files.show(frame.loc[first, target_col])} in row {first + 1}, "
            f"dated {dates[first]:%Y-%m-%d}); expected prices such as 21.28; clean or drop those rows"
        )
    if prices.min() == prices.max():
        raise ValueError(
            f"{name}: every price in '{target_col}' is {prices.iloc[0]:g}; a constant series "
            "has nothing to forecast"
        )
    huge = ~(np.abs(prices.to_numpy(dtype="float64")) < MAX_PRICE)
    if huge.any():
        first = frame.index[huge][0]
        raise ValueError(
            f"{name}: {int(huge.sum())} prices in '{target_col}' are infinite or above "
            f"{MAX_PRICE:.0e} (first: {files.show(frame.loc[first, target_col])} in row "
            f"{first + 1}, on {dates[first]:%Y-%m-%d}); divide the column by a power of ten"
        )
    if (prices <= 0).any():
        first = prices.index[prices <= 0][0]
        raise ValueError(
            f"{name}: {int((prices <= 0).sum())} prices in '{target_col}' are zero or negative "
            f"(first: {files.show(frame.loc[first, target_col])} in row {first + 1}); "
            "returns need positive prices"
        )
    outside = (dates.dt.year < 1800) | (dates.dt.year > 2200)
    if outside.any():  # a date read wrongly (a year taken for something else), not a price's day
        first = dates.index[outside][0]
        raise ValueError(
            f"{name}: expected dates between the years 1800 and 2200 in column '{date_col}'; "
            f"received {files.show(str(frame.loc[first, date_col]).strip())} in row {first + 1}, "
            f"read as {dates[first]:%Y-%m-%d}; write dates as 2024-01-31"
        )
    days = dates.dt.normalize()
    _check_one_row_per_day(frame, dates, days, name, date_col)
    series = pd.Series(
        prices.to_numpy(dtype="float64"),
        index=pd.DatetimeIndex(days.to_numpy(), name="Date"),
        name=target_col,
    ).sort_index()
    _check_no_jump(series, frame, target_col, name)
    if decimal_comma:
        _note_dots_read_as_decimals(frame[target_col], notes)
    series.attrs["notes"] = notes
    return series


JUMP = 500  # no day's close is 500 times the one before: a decimal mark or thousands separator


def _check_no_jump(series, frame, target_col, name):
    """Refuse a day-to-day change of more than ``JUMP`` times: "1.000" read as 1 after 999, say."""
    ratio = series.to_numpy()[1:] / series.to_numpy()[:-1]
    jumps = np.flatnonzero((ratio > JUMP) | (ratio < 1 / JUMP))
    if len(jumps):
        before, after = series.index[jumps[0]], series.index[jumps[0] + 1]
        raise ValueError(
            f"{name}: expected prices that change less than {JUMP}-fold from one day to the "
            f"next; '{target_col}' goes from {series.iloc[jumps[0]]:g} on {before:%Y-%m-%d} to "
            f"{series.iloc[jumps[0] + 1]:g} on {after:%Y-%m-%d}; check the decimal marks and "
            "thousands separators (or adjust the prices for a split)"
        )


def _note_dots_read_as_decimals(cells, notes):
    """In a ';'-separated file, "3.003" may be 3003 (dots grouping thousands) or 3.003."""
    text = cells.astype("string").fillna("").str.strip()
    dotted = text.str.fullmatch(r"[^\d,]*\d{1,3}\.\d{3}[^\d,]*")
    if dotted.any() and not text.str.contains(",").any():
        notes.append(
            f"read {files.show(text[dotted].iloc[0])} with a decimal point; if the dots group "
            "thousands, remove them"
        )


def _drop_rows_without_prices(frame, date_col, target_col, notes):
    """Rows that are empty (a spreadsheet's trailing ``,,``) and a last row whose date is a
    word ("Total", "Average") carry no price of a day: they are skipped, with a note."""
    cells = frame[[date_col, target_col]].astype("string").fillna("")
    empty = (cells[date_col].str.strip() == "") & (cells[target_col].str.strip() == "")
    if empty.any():
        notes.append(f"skipped {int(empty.sum())} empty row(s)")
    kept = frame[~empty.to_numpy()]
    if len(kept) > 1:
        last = str(kept[date_col].iloc[-1]).strip()
        if last and not any(character.isdigit() for character in last):
            notes.append(f"skipped the last row ({files.show(last)} holds no date)")
            kept = kept.iloc[:-1]
    return kept


def _check_one_row_per_day(frame, dates, days, name, date_col):
    repeated = days.duplicated(keep=False)
    if not repeated.any():
        return
    first = days.index[repeated][0]
    shown = files.show(str(frame.loc[first, date_col]).strip())
    if (dates != days).any():  # times of day: intraday prices
        raise ValueError(
            f"{name}: expected one price per day in column '{date_col}'; received times of day, "
            f"{int(repeated.sum())} rows sharing a date with another (first: {shown} in row "
            f"{first + 1}); forecast works on daily prices: keep one row per day, such as "
            "each day's last price"
        )
    later = days.index[repeated & (days == days[first])][1]
    raise ValueError(
        f"{name}: {int(days.duplicated().sum())} dates appear more than once (first: {shown} "
        f"in rows {first + 1} and {later + 1}); keep one row per date"
    )


def parse_dates(column, name="dates", column_name="Date", notes=None):
    """Dates from text, by the apps' shared date reader; NaT where none fits.

    ISO first, then other layouts, day first ("25.02.2016") where that reading fits
    better (:func:`common.data.csv_series.parse_datetimes`). A trailing UTC offset
    ("+01:00", "Z") is dropped: a daily price belongs to the exchange's own calendar
    day, whatever offset the export wrote.

    >>> parse_dates(pd.Series(["2015-01-02 00:00+01:00", "01/15/2015", "soon"])).tolist()
    [Timestamp('2015-01-02 00:00:00'), Timestamp('2015-01-15 00:00:00'), NaT]
    >>> parse_dates(pd.Series(["29.01.2016", "01.02.2016"])).dt.strftime("%d %B").tolist()
    ['29 January', '01 February']
    >>> parse_dates(pd.Series(["25-02-2016", "26-02-2016"])).dt.strftime("%Y-%m-%d").tolist()
    ['2016-02-25', '2016-02-26']
    """
    # Only after a time of day: in "25-02-2016" the "-2016" is a year, not an offset.
    text = (
        column.astype(str)
        .str.strip()
        .str.replace(r"(\d:\d\d(?::\d\d(?:\.\d*)?)?)\s*(?:Z|[+-]\d\d:?\d\d)$", r"\1", regex=True)
    )
    notes = [] if notes is None else notes
    dates = parse_datetimes(text, name, column_name, notes)
    return dates.dt.tz_localize(None)


def download_prices(symbol, start, end, cache_dir, name=None):
    """Daily prices for ``symbol`` through yfinance, read from ``cache_dir`` after the first time.

    Nothing is cached from a failed download. ``start`` and ``end`` are
    ``YYYY-MM-DD`` or None (the first or last day Yahoo Finance has).
    """
    name = name or symbol
    cache_dir = Path(cache_dir)
    cache_file = cache_dir / f"{symbol.upper()}_{start or 'first'}_{end or 'last'}.csv"
    if cache_file.is_file():
        return read_price_csv(cache_file, "Date", "Close")
    try:
        import yfinance
    except ImportError:
        raise ValueError(
            f"{name}: downloading prices needs yfinance: pip install yfinance"
        ) from None
    import contextlib
    import io
    import logging

    logging.getLogger("yfinance").setLevel(logging.CRITICAL)  # failures are reported below
    no_prices = f"{name}: Yahoo Finance has no prices for it (unknown or delisted symbol?)"
    errors = yfinance.exceptions
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            frame = yfinance.Ticker(symbol).history(
                start=start, end=end, auto_adjust=True, raise_errors=True
            )
    except OSError:  # curl's DNS and connection errors derive from OSError
        raise ValueError(
            f"{name}: could not reach Yahoo Finance (no network?); the bundled data needs none"
        ) from None
    except errors.YFRateLimitError:
        raise ValueError(f"{name}: Yahoo Finance refused: too many requests; try later") from None
    except errors.YFException:  # yfinance's own "no such ticker / no prices" errors
        raise ValueError(no_prices) from None
    except Exception as error:  # anything else a web API may raise, said in one line
        raise ValueError(
            f"{name}: download failed ({type(error).__name__}: {error_reason(error, 120)})"
        ) from None
    if frame is None or frame.empty or "Close" not in frame.columns:
        raise ValueError(no_prices)
    frame = frame.reset_index()
    # Keep the exchange's calendar date; dropping the time zone must not shift the day.
    frame["Date"] = pd.to_datetime(frame["Date"]).dt.strftime("%Y-%m-%d")
    columns = ["Date"] + [c for c in ("Open", "High", "Low", "Close", "Volume") if c in frame]
    cache_dir.mkdir(parents=True, exist_ok=True)
    frame[columns].to_csv(cache_file, index=False)
    return price_series(frame, "Date", "Close", name)
