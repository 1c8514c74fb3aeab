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

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from common.data.csv_series import CSV_READ_ERRORS, error_reason


class MissingColumnError(ValueError):
    """A column asked for is not in the table; ``column`` says which, so a caller can say
    which of its settings names it."""

    def __init__(self, message, column):
        super().__init__(message)
        self.column = column


def read_price_csv(path, date_col, target_col, name=None):
    """Read a CSV of prices into a float Series indexed by date.

    Accepts plain CSVs and yfinance's exports: the single-header layout of
    ``Ticker.history()`` and the three-row header (Price / Ticker / Date) that
    ``yfinance.download(...).to_csv()`` writes.
    """
    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise ValueError(f"{name}: no such file")
    try:
        raw = pd.read_csv(path, header=None, dtype=str, skip_blank_lines=True)
    except CSV_READ_ERRORS as error:  # also a truncated or fake .gz
        raise ValueError(f"{name}: not a readable CSV ({error_reason(error)})") from None
    if len(raw) < 2:
        raise ValueError(f"{name}: no data rows")
    header = [str(column).strip() for column in raw.iloc[0]]
    rows = raw.iloc[1:]
    if header[0] == "Price" and str(raw.iloc[1, 0]).strip() == "Ticker":
        # yfinance.download(...).to_csv(): row 2 names the ticker of each column, row 3 says "Date".
        tickers = sorted({str(t) for t in raw.iloc[1, 1:] if isinstance(t, str)})
        if len(tickers) > 1:
            raise ValueError(
                f"{name}: holds several tickers ({', '.join(tickers)}); save one ticker per file"
            )
        header[0] = "Date"
        has_date_row = len(raw) > 2 and str(raw.iloc[2, 0]).strip() == "Date"
        rows = raw.iloc[3:] if has_date_row else raw.iloc[2:]
    frame = pd.DataFrame(rows.values, columns=header)
    return price_series(frame, date_col, target_col, name)


def price_series(frame, date_col, target_col, name):
    """Check a frame's date and price columns; return the prices as a sorted, dated Series."""
    for column in (date_col, target_col):
        if column not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise MissingColumnError(f"{name}: no column '{column}'; columns are {columns}", column)
        if list(frame.columns).count(column) > 1:
            raise ValueError(f"{name}: the column '{column}' appears more than once; rename one")
    if len(frame) == 0:
        raise ValueError(f"{name}: no data rows")
    dates = parse_dates(frame[date_col])
    if bad_dates := int(dates.isna().sum()):
        raise ValueError(
            f"{name}: {bad_dates} rows have a date that cannot be read in column '{date_col}'"
        )
    prices = pd.to_numeric(frame[target_col], errors="coerce")
    bad = prices.isna()
    if bad.any():
        first = frame.index[bad.values][0]
        raise ValueError(
            f"{name}: {int(bad.sum())} of {len(prices)} rows in '{target_col}' are empty, NaN or "
            f"not numbers (first on {dates[first]:%Y-%m-%d}); clean or drop those rows"
        )
    if prices.min() == prices.max():
        raise ValueError(
            f"{name}: every price in '{target_col}' is {prices.iloc[0]:g}; a constant series "
            "has nothing to forecast"
        )
    infinite = ~np.isfinite(prices.to_numpy(dtype="float64"))
    if infinite.any():
        raise ValueError(
            f"{name}: {int(infinite.sum())} prices in '{target_col}' are infinite or too large "
            f"for a float (first on {dates[frame.index[infinite][0]]:%Y-%m-%d})"
        )
    if (prices <= 0).any():
        raise ValueError(
            f"{name}: {int((prices <= 0).sum())} prices in '{target_col}' are zero or negative; "
            "returns need positive prices"
        )
    series = pd.Series(
        prices.to_numpy(dtype="float64"),
        index=pd.DatetimeIndex(dates.to_numpy(), name="Date"),
        name=target_col,
    ).sort_index()
    if duplicated := int(series.index.duplicated().sum()):
        raise ValueError(f"{name}: {duplicated} dates appear more than once")
    return series


def parse_dates(column):
    """Dates from text: ISO first, then any layout pandas reads; NaT where none fits.

    A trailing UTC offset ("+01:00", "Z") is dropped: a daily price belongs to
    the exchange's own calendar day, whatever offset the export wrote.

    >>> parse_dates(pd.Series(["2015-01-02 00:00+01:00", "01/05/2015", "soon"])).tolist()
    [Timestamp('2015-01-02 00:00:00'), Timestamp('2015-01-05 00:00:00'), NaT]
    """
    text = column.astype(str).str.strip().str.replace(r"\s*(Z|[+-]\d\d:?\d\d)$", "", regex=True)
    dates = pd.to_datetime(text.str[:10], errors="coerce", format="%Y-%m-%d")
    if dates.isna().any():
        with warnings.catch_warnings():  # "could not infer format": unreadable rows are counted
            warnings.simplefilter("ignore")
            dates = pd.to_datetime(text, errors="coerce", format="mixed")
    return dates


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
