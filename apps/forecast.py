"""Forecast a stock's closing price a few business days ahead with a recurrent network.

    python apps/forecast.py                      # bundled MSFT prices, offline, about a minute
    python apps/forecast.py --horizon 5 --cell gru --attention dot
    python apps/forecast.py --ticker AAPL --start 2015-01-01   # through yfinance, cached
    python apps/forecast.py --csv prices.csv --target-col "Adj Close"
    python apps/forecast.py --load runs/forecast/<run>/        # forecast from a saved run

Why returns, not prices: a price series wanders (it is non-stationary), so a
network trained on 1990s price levels has never seen today's levels and learns
little beyond "tomorrow is close to today". The model therefore reads the last
``--window`` daily log returns and predicts the log return from the last close
to each of the next ``--horizon`` closes, as three quantiles (10%, 50%, 90%).
Prices are rebuilt from those returns. Returns look alike in every decade, so
what the model learns on old data applies to new data.

Evaluation is honest: the split is chronological (train, then validation, then
test, never shuffled), the scaler sees training returns only, and the model is
scored beside two forecasts that need no learning: persistence (tomorrow's
close = today's) and drift (the training period's average return continues).
Daily stock prices are close to a random walk, so beating persistence is hard;
the table says plainly whether this run did.
"""

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


def stop_while_starting(signum, frame):
    """Ctrl-C while TensorFlow loads, before main: one line and status 130, not a traceback."""
    os.write(STDERR, b"interrupted; nothing was saved\n")  # fd 2 is silenced while TF loads
    os._exit(130)


if __name__ == "__main__":
    STDERR = os.dup(2)
    signal.signal(signal.SIGINT, stop_while_starting)

import common  # first: keeps TensorFlow's start-up log noise out of the terminal
from common.cli import (
    RunOptions,
    UserError,
    dropout_rate,
    option,
    finish_worker,
    load_model_from_dir,
    positive_int,
    positive_int_up_to,
    prepare_out,
    report_user_errors,
    run_folder,
    save_model_atomically,
    shrink_for_quick,
    start_distribution,
    write_json,
)
from common.data.csv_series import CSV_READ_ERRORS, error_reason

import keras
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
BUNDLED_CSV = REPO / "data" / "msft.csv"
QUANTILES = (0.1, 0.5, 0.9)
NULL_REASONS = {  # why a figure in metrics.json can be null
    "MASE": "the training prices never change, so the naive error MASE divides by is 0",
    "direction %": "the forecast never moves from the last close (or the price never did): no direction to score",
}


def iso_date(text):
    """A ``YYYY-MM-DD`` date for --start and --end; anything else is one clear error."""
    try:
        return pd.Timestamp(datetime.strptime(text, "%Y-%m-%d")).strftime("%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


@dataclass(frozen=True)
class Config(RunOptions):
    """A forecast run's options, checked, after ``--quick``: what the run was asked to do."""

    APP = "forecast"
    GROUPS = {
        "data": "data (default: bundled daily MSFT prices, 1986-2017)",
        "model": "model",
        "use": "use a saved model",
    }

    epochs: int = option(30, quick=2)  # this app's own default for a shared option
    csv: Path | None = option(
        None, "CSV with a date column and a price column (yfinance exports welcome)",
        group="data", type=Path, exclusive="source",
    )  # fmt: skip
    ticker: str | None = option(
        None, "download daily prices for SYMBOL with yfinance (needs the network once; cached)",
        group="data", exclusive="source",
    )  # fmt: skip
    start: str | None = option(None, "first date to use, YYYY-MM-DD", group="data", type=iso_date)
    end: str | None = option(None, "last date to use, YYYY-MM-DD", group="data", type=iso_date)
    date_col: str = option("Date", "date column in --csv", group="data")
    target_col: str = option("Close", "price column to forecast", group="data")
    cache_dir: Path = option(
        Path.home() / ".cache" / "rnn-workshop" / "yfinance",
        "where --ticker downloads are kept", group="data", type=Path,
    )  # fmt: skip
    cell: str = option("lstm", "recurrent cell", choices=sorted(common.CELLS))
    units: tuple = option(
        (32,), "units per recurrent layer; several numbers stack layers, e.g. --units 64 32",
        type=positive_int_up_to(4096), quick=(8,),
    )  # fmt: skip
    window: int = option(30, "past business days the model reads", type=positive_int, quick=20)
    horizon: int = option(
        1, "business days ahead to forecast; above 1 uses the encoder-decoder", type=positive_int
    )
    attention: str = option(
        "none", "attention in the encoder-decoder, for --horizon above 1",
        choices=["none", "dot", "additive"],
    )  # fmt: skip
    dropout: float = option(0.0, "dropout on recurrent inputs", type=dropout_rate)
    test_fraction: float = option(
        0.15, "last share of days held out for the test table", type=float
    )
    val_fraction: float = option(
        0.15, "share of days before the test part used for early stopping", type=float
    )
    load: Path | None = option(
        None, "skip training: forecast past the last date with the model saved in DIR",
        group="use", type=Path, metavar="DIR",
    )  # fmt: skip

    @property
    def model_name(self):
        name = f"{self.cell.upper()}{'-'.join(map(str, self.units))}"
        if self.horizon > 1:
            name += " encoder-decoder"
            name += "" if self.attention == "none" else f" + {self.attention} attention"
        return name


def read_config(argv):
    """Parse and check the options before any work; ``--quick`` shrinks what was not typed."""
    args = Config.parser(__doc__).parse_args(argv)
    if args.ticker is not None and not args.ticker.strip():
        raise UserError("--ticker needs a symbol, for example --ticker MSFT")
    for name in ("val_fraction", "test_fraction"):
        if not 0 < getattr(args, name) < 1:
            option_name = "--" + name.replace("_", "-")
            raise UserError(f"{option_name} must be between 0 and 1, got {getattr(args, name)}")
    if args.val_fraction + args.test_fraction >= 1:
        raise UserError(
            f"--val-fraction {args.val_fraction} and --test-fraction {args.test_fraction} "
            "leave no days to train on; their sum must be below 1"
        )
    if not args.load or args.out is not None:  # can the run be saved? Check before any work.
        args.out = prepare_out(args.out, "forecast", args.overwrite, args.load)
    if args.quick and not args.load:  # a smoke test: recent data, a small model, two epochs
        shrink_for_quick(args, argv, **Config.quick_values())
    return Config.from_args(args)


# ---------------------------------------------------------------- data


def read_price_csv(path, date_col, target_col):
    """Read a CSV of prices into a float Series indexed by date.

    Accepts plain CSVs and yfinance's exports: the single-header layout of
    ``Ticker.history()`` and the three-row header (Price / Ticker / Date) that
    ``yfinance.download(...).to_csv()`` writes.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--csv {path}: no such file")
    try:
        raw = pd.read_csv(path, header=None, dtype=str, skip_blank_lines=True)
    except CSV_READ_ERRORS as error:  # also a truncated or fake .gz
        reason = error_reason(error)
        raise UserError(f"--csv {path}: not a readable CSV ({reason})") from None
    if len(raw) < 2:
        raise UserError(f"--csv {path}: no data rows")
    header = [str(name).strip() for name in raw.iloc[0]]
    rows = raw.iloc[1:]
    if header[0] == "Price" and str(raw.iloc[1, 0]).strip() == "Ticker":
        # yfinance.download(...).to_csv(): row 2 names the ticker of each column, row 3 says "Date".
        tickers = sorted({str(t) for t in raw.iloc[1, 1:] if isinstance(t, str)})
        if len(tickers) > 1:
            raise UserError(
                f"--csv {path}: holds several tickers ({', '.join(tickers)}); save one ticker per file"
            )
        header[0] = "Date"
        has_date_row = len(raw) > 2 and str(raw.iloc[2, 0]).strip() == "Date"
        rows = raw.iloc[3:] if has_date_row else raw.iloc[2:]
    frame = pd.DataFrame(rows.values, columns=header)
    return price_series(frame, date_col, target_col, origin=f"--csv {path}")


def price_series(frame, date_col, target_col, origin):
    """Check a frame's date and price columns; return the prices as a sorted, dated Series."""
    for column, flag in ((date_col, "--date-col"), (target_col, "--target-col")):
        if column not in frame.columns:
            raise UserError(
                f"{origin}: no column '{column}'; columns are {', '.join(map(str, frame.columns))} (choose with {flag})"
            )
        if list(frame.columns).count(column) > 1:
            raise UserError(f"{origin}: the column '{column}' appears more than once; rename one")
    if len(frame) == 0:
        raise UserError(f"{origin}: no data rows")
    dates = parse_dates(frame[date_col])
    bad_dates = int(dates.isna().sum())
    if bad_dates:
        raise UserError(
            f"{origin}: {bad_dates} rows have a date that cannot be read in column '{date_col}'"
        )
    prices = pd.to_numeric(frame[target_col], errors="coerce")
    bad = prices.isna()
    if bad.any():
        first = frame.index[bad.values][0]
        raise UserError(
            f"{origin}: {int(bad.sum())} of {len(prices)} rows in '{target_col}' are empty, NaN or not numbers "
            f"(first on {dates[first]:%Y-%m-%d}); clean or drop those rows"
        )
    if len(prices) and prices.min() == prices.max():
        raise UserError(
            f"{origin}: every price in '{target_col}' is {prices.iloc[0]:g}; a constant series "
            "has nothing to forecast"
        )
    infinite = ~np.isfinite(prices.to_numpy(dtype="float64"))
    if infinite.any():
        raise UserError(
            f"{origin}: {int(infinite.sum())} prices in '{target_col}' are infinite or too large "
            f"for a float (first on {dates[frame.index[infinite][0]]:%Y-%m-%d})"
        )
    if (prices <= 0).any():
        raise UserError(
            f"{origin}: {int((prices <= 0).sum())} prices in '{target_col}' are zero or negative; returns need positive prices"
        )
    series = pd.Series(
        prices.to_numpy(dtype="float64"),
        index=pd.DatetimeIndex(dates.to_numpy(), name="Date"),
        name=target_col,
    )
    series = series.sort_index()
    duplicated = int(series.index.duplicated().sum())
    if duplicated:
        raise UserError(f"{origin}: {duplicated} dates appear more than once")
    return series


def parse_dates(column):
    """Dates from text: ISO first, then any layout pandas reads; NaT where none fits.

    A trailing UTC offset ("+01:00", "Z") is dropped: a daily price belongs to
    the exchange's own calendar day, whatever offset the export wrote.
    """
    text = column.astype(str).str.strip().str.replace(r"\s*(Z|[+-]\d\d:?\d\d)$", "", regex=True)
    dates = pd.to_datetime(text.str[:10], errors="coerce", format="%Y-%m-%d")
    if dates.isna().any():
        with warnings.catch_warnings():  # "could not infer format": unreadable rows are counted
            warnings.simplefilter("ignore")
            dates = pd.to_datetime(text, errors="coerce", format="mixed")
    return dates


def download_prices(symbol, start, end, cache_dir):
    """Daily prices for ``symbol`` through yfinance, read from ``cache_dir`` after the first time."""
    cache_dir = Path(cache_dir)
    cache_file = cache_dir / f"{symbol.upper()}_{start or 'first'}_{end or 'last'}.csv"
    if cache_file.is_file():
        return read_price_csv(cache_file, "Date", "Close")
    try:
        import yfinance
    except ImportError:
        raise UserError("--ticker needs yfinance: pip install yfinance") from None
    import contextlib
    import io
    import logging

    logging.getLogger("yfinance").setLevel(logging.CRITICAL)  # we report failures ourselves
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            frame = yfinance.Ticker(symbol).history(
                start=start, end=end, auto_adjust=True, raise_errors=True
            )
    except OSError:  # curl's DNS and connection errors derive from OSError
        raise UserError(
            f"--ticker {symbol}: could not reach Yahoo Finance (no network?); run without --ticker to use the bundled MSFT data"
        ) from None
    except Exception as error:
        if type(error).__name__.startswith(
            "YF"
        ):  # yfinance's own "no such ticker / no prices" errors
            raise UserError(
                f"--ticker {symbol}: Yahoo Finance has no prices for it (unknown or delisted symbol?)"
            ) from None
        raise UserError(
            f"--ticker {symbol}: download failed ({type(error).__name__}: {str(error)[:120]})"
        ) from None
    if frame is None or frame.empty or "Close" not in frame.columns:
        raise UserError(
            f"--ticker {symbol}: Yahoo Finance has no prices for it (unknown or delisted symbol?)"
        )
    frame = frame.reset_index()
    # Keep the exchange's calendar date; dropping the time zone must not shift the day.
    frame["Date"] = pd.to_datetime(frame["Date"]).dt.strftime("%Y-%m-%d")
    columns = ["Date"] + [
        c for c in ("Open", "High", "Low", "Close", "Volume") if c in frame.columns
    ]
    cache_dir.mkdir(parents=True, exist_ok=True)
    frame[columns].to_csv(cache_file, index=False)
    return price_series(frame, "Date", "Close", origin=f"--ticker {symbol}")


def load_prices(config):
    if config.ticker:
        prices = download_prices(config.ticker, config.start, config.end, config.cache_dir)
        source = f"yfinance {config.ticker.upper()}"
    else:
        path = config.csv or BUNDLED_CSV
        prices = read_price_csv(path, config.date_col, config.target_col)
        source = str(path) if config.csv else "bundled MSFT (data/msft.csv)"
    if config.start:
        prices = prices[prices.index >= pd.Timestamp(config.start)]
    if config.end:
        prices = prices[prices.index <= pd.Timestamp(config.end)]
    return prices, source


# ---------------------------------------------------------------- windows and targets


def make_examples(prices, window, horizon):
    """Inputs: ``window`` daily log returns. Targets: log return from the last close to each of the next ``horizon`` closes.

    Returns:
        inputs (n, window, 1), targets (n, horizon, 1), and the index in
        ``prices`` of each example's last observed close ("origin").
    """
    log_prices = np.log(prices.to_numpy())
    returns = np.diff(log_prices)  # returns[i] is the move from close i to close i + 1
    inputs, _ = common.make_windows(returns, window, horizon=horizon)
    starts = common.window_starts(len(returns), window, horizon)
    origins = starts + window  # the close right after the window's last return
    steps_ahead = origins[:, None] + np.arange(1, horizon + 1)
    targets = (log_prices[steps_ahead] - log_prices[origins][:, None])[..., None]
    return inputs, targets, origins


def split_examples(num_prices, origins, horizon, val_fraction, test_fraction):
    """Chronological split by day; an example belongs where all its target days lie."""
    try:
        split = common.chronological_split(num_prices, val_fraction, test_fraction)
    except ValueError as error:
        raise UserError(str(error)) from None
    # An example's target days are origin + 1 .. origin + horizon, as for a window of length 1 starting at origin.
    return split, common.assign_windows(origins, 1, horizon, split)


# ---------------------------------------------------------------- model


def build_model(config):
    quantiles = len(QUANTILES)
    if config.horizon == 1:
        model = common.build_many_to_one(
            (config.window, 1),
            quantiles,
            cell=config.cell,
            units=config.units,
            dropout=config.dropout,
            name="forecaster",
        )
    else:
        model = common.build_encoder_decoder(
            (config.window, 1),
            (config.horizon, 1),
            quantiles,
            cell=config.cell,
            units=config.units,
            dropout=config.dropout,
            attention=None if config.attention == "none" else config.attention,
            name="forecaster",
        )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0), loss=common.QuantileLoss(QUANTILES)
    )
    return model


def predict_quantiles(model, inputs, horizon):
    """Scaled inputs -> sorted quantiles of the scaled target, shape (n, horizon, 3)."""
    if horizon == 1:
        predicted = model.predict(inputs, batch_size=1024, verbose=0)[:, None, :]
    else:
        # Autoregressive decoding: the median forecast for one day feeds the next.
        predicted = common.predict_autoregressive(
            model, inputs, start_value=0.0, feedback=lambda step: step[:, 1:2]
        )
    return np.sort(predicted, axis=-1)  # quantiles must not cross


# ---------------------------------------------------------------- evaluation


def evaluate(
    prices, origins, targets, predicted_returns, train_returns_mean, training_prices, train_targets
):
    """The table: model, persistence and drift on price level, plus quantile scores."""
    horizon = targets.shape[1]
    last_close = prices[origins][:, None]
    actual = last_close * np.exp(targets[..., 0])
    steps = np.arange(1, horizon + 1)
    forecasts = {
        "model (median)": last_close * np.exp(predicted_returns[..., 1]),
        "persistence": np.repeat(last_close, horizon, axis=1),
        "drift": last_close * np.exp(train_returns_mean * steps),
    }
    table = {}
    for name, forecast in forecasts.items():
        table[name] = {
            "MAE": common.mae(actual, forecast),
            "RMSE": common.rmse(actual, forecast),
            "MAPE %": common.mape(actual, forecast),
            "MASE": common.mase(actual, forecast, training_prices),
            "direction %": 100
            * common.directional_accuracy(actual - last_close, forecast - last_close),
        }
    # Quantiles: the model's against the training period's own return quantiles (no learning, no conditioning).
    historical = np.quantile(train_targets[..., 0], QUANTILES, axis=0).T  # (horizon, 3)
    model_prices = last_close[..., None] * np.exp(predicted_returns)
    historical_prices = last_close[..., None] * np.exp(historical[None])
    quantile_rows = {}
    for name, bands in (("model", model_prices), ("historical quantiles", historical_prices)):
        row = {
            f"pinball q{int(q * 100)}": common.pinball_loss(actual, bands[..., i], q)
            for i, q in enumerate(QUANTILES)
        }
        row["coverage 10-90 %"] = 100 * common.coverage(actual, bands[..., 0], bands[..., 2])
        quantile_rows[name] = row
    return table, quantile_rows, actual, forecasts


def verdict(table, model_name):
    model, persistence = table["model (median)"]["MAE"], table["persistence"]["MAE"]
    if persistence == 0:  # a test split of unchanging prices: persistence is exact
        return f"Verdict: persistence is exact on the test split (MAE 0); the {model_name}'s MAE is {model:.4g}."
    change = 100 * (model - persistence) / persistence
    if model < persistence:
        return f"Verdict: the {model_name} beat persistence on the test split (MAE {model:.4g} vs {persistence:.4g}, {change:+.2f}%)."
    return (
        f"Verdict: the {model_name} did NOT beat persistence on the test split (MAE {model:.4g} vs {persistence:.4g}, {change:+.2f}%). "
        "Daily prices are close to a random walk; that is the usual result."
    )


# ---------------------------------------------------------------- outputs


def future_business_days(last_date, horizon):
    return pd.bdate_range(last_date + pd.offsets.BDay(1), periods=horizon)


def forecast_future(model, prices, scaler, window, horizon):
    """Quantile price forecasts for the ``horizon`` business days after the last date."""
    returns = np.diff(np.log(prices.to_numpy()))[-window:]
    inputs = scaler.transform(returns[:, None])[None].astype("float32")
    predicted = predict_quantiles(model, inputs, horizon)[0] * scaler.scale[0]
    quantile_prices = prices.iloc[-1] * np.exp(predicted)
    return pd.DataFrame(
        quantile_prices,
        columns=["q10", "median", "q90"],
        index=future_business_days(prices.index[-1], horizon),
    ).rename_axis("date")


def write_forecast_csv(path, prices, origins, actual, predicted_prices, forecasts, future):
    horizon = actual.shape[1]
    rows = []
    for row, origin in enumerate(origins):
        for step in range(horizon):
            target_day = origin + step + 1
            rows.append(
                {
                    "origin_date": prices.index[origin].date(),
                    "target_date": prices.index[target_day].date(),
                    "step": step + 1,
                    "split": "test",
                    "actual": actual[row, step],
                    "q10": predicted_prices[row, step, 0],
                    "median": predicted_prices[row, step, 1],
                    "q90": predicted_prices[row, step, 2],
                    "persistence": forecasts["persistence"][row, step],
                    "drift": forecasts["drift"][row, step],
                }
            )
    for step, (date, values) in enumerate(future.iterrows()):
        rows.append(
            {
                "origin_date": prices.index[-1].date(),
                "target_date": date.date(),
                "step": step + 1,
                "split": "future",
                "q10": values["q10"],
                "median": values["median"],
                "q90": values["q90"],
            }
        )
    pd.DataFrame(rows).to_csv(path, index=False, float_format="%.6g")


def print_future(future, target_col, source):
    print(f"\nForecast of {target_col} past the last date ({source}):")
    common.print_table(
        {
            f"{date:%Y-%m-%d}": {"q10": row["q10"], "median": row["median"], "q90": row["q90"]}
            for date, row in future.iterrows()
        }
    )


# ---------------------------------------------------------------- the run's four steps


@dataclass
class Dataset:
    """Prices cut into examples, split by date, and the scaler fitted on training returns."""

    prices: pd.Series
    source: str
    inputs: np.ndarray  # (examples, window, 1) scaled daily log returns
    targets: np.ndarray  # (examples, horizon, 1) log returns from the last close, not scaled
    origins: np.ndarray  # (examples,) index of each example's last observed close
    train_end: int  # prices[:train_end] are the training days
    masks: dict  # "train" / "validation" / "test" -> (examples,) booleans
    scaler: common.StandardScaler

    def count(self, part):
        return int(self.masks[part].sum())


def load_data(config):
    """Read the prices and cut them into chronologically split, scaled examples."""
    prices, source = load_prices(config)
    if config.quick:
        prices = prices.iloc[-1200:]
    if len(prices) < config.window + config.horizon + 2:
        raise UserError(
            f"too little data: {len(prices)} days, but --window {config.window} and "
            f"--horizon {config.horizon} need far more"
        )
    inputs, targets, origins = make_examples(prices, config.window, config.horizon)
    split, (in_train, in_val, in_test) = split_examples(
        len(prices), origins, config.horizon, config.val_fraction, config.test_fraction
    )
    masks = {"train": in_train, "validation": in_val, "test": in_test}
    counts = {part: int(mask.sum()) for part, mask in masks.items()}
    if min(counts.values()) < 10 or counts["train"] < 100:
        need = config.window + config.horizon + 100
        days = int(need / (1 - config.val_fraction - config.test_fraction)) + 20
        raise UserError(
            f"too little data: {len(prices)} days give {counts['train']} training, "
            f"{counts['validation']} validation and {counts['test']} test examples for --window "
            f"{config.window} --horizon {config.horizon}; need about {days} days or a smaller --window"
        )
    # Scale by statistics of training returns only: nothing from later days leaks in.
    train_end = split[0].stop
    scaler = common.StandardScaler().fit(np.diff(np.log(prices.to_numpy()[:train_end])))
    print(
        f"Data: {source}, {len(prices)} days {prices.index[0]:%Y-%m-%d} to "
        f"{prices.index[-1]:%Y-%m-%d}; examples: {counts['train']} train, "
        f"{counts['validation']} validation, {counts['test']} test"
    )
    return Dataset(
        prices, source, scaler.transform(inputs).astype("float32"), targets, origins, train_end,
        masks, scaler,
    )  # fmt: skip


def train(data, config, distribution):
    """Fit a fresh model with early stopping on the validation days; return it and its history."""
    common.set_seed(config.seed)
    with distribution.scope():  # the weights are mirrored on every replica
        model = build_model(config)
    scaled_targets = (data.targets / data.scaler.scale[0]).astype("float32")
    parts = []
    for part in ("train", "validation"):
        x, y = data.inputs[data.masks[part]], scaled_targets[data.masks[part]]
        if config.horizon == 1:
            parts.append((x, y[:, 0]))
        else:  # teacher forcing: the decoder reads the true previous step, from 0 (the last close)
            parts.append(([x, common.teacher_forcing_inputs(y, 0.0)], y))
    print(
        f"Training {config.model_name} on {config.window}-day windows, {config.horizon}-day "
        f"horizon, up to {config.epochs} epochs ..."
    )
    if distribution.kind != "none":
        print(distribution.describe(config.batch_size))
    started = time.perf_counter()
    history = common.fit(
        model, parts[0], parts[1], epochs=config.epochs,
        batch_size=distribution.global_batch(config.batch_size), patience=4,
        verbose=config.progress, distribution=distribution,
    )  # fmt: skip
    if (epoch := common.diverged(history)) is not None:
        raise UserError(
            f"training diverged: the loss stopped being a number in epoch {epoch}; "
            "the data's daily returns may be extreme (check the prices)"
        )
    return distribution.local_copy(model), history, time.perf_counter() - started


@dataclass
class Report:
    """What the run found: the test tables, the verdict and the forecasts behind them."""

    table: dict
    quantile_rows: dict
    verdict: str
    actual: np.ndarray  # (test examples, horizon) prices
    predicted_prices: np.ndarray  # (test examples, horizon, 3) quantile prices
    baselines: dict  # "persistence" / "drift" -> (test examples, horizon) prices
    future: pd.DataFrame  # q10 / median / q90 for the business days after the last date


def report(data, model, config):
    """Score the test days beside persistence and drift, forecast past the end, print it all."""
    prices, in_test, in_train = data.prices.to_numpy(), data.masks["test"], data.masks["train"]
    predicted = predict_quantiles(model, data.inputs[in_test], config.horizon)
    predicted = predicted * data.scaler.scale[0]
    table, quantile_rows, actual, forecasts = evaluate(
        prices,
        data.origins[in_test],
        data.targets[in_test],
        predicted,
        float(data.scaler.mean[0]),  # the training period's average daily return: drift
        prices[: data.train_end],
        data.targets[in_train],
    )
    test_start = data.prices.index[data.origins[in_test][0] + 1]
    print()
    common.print_table(
        table,
        title=f"Test split, {test_start:%Y-%m-%d} to {data.prices.index[-1]:%Y-%m-%d}, "
        f"{config.target_col} price, {data.count('test')} forecasts of {config.horizon} day(s):",
    )
    print()
    common.print_table(
        quantile_rows,
        title="Quantile forecasts (pinball loss: lower is better; coverage: 80% is ideal):",
    )
    said = verdict(table, config.model_name)
    print("\n" + said)
    future = forecast_future(model, data.prices, data.scaler, config.window, config.horizon)
    print_future(future, config.target_col, data.source)
    predicted_prices = prices[data.origins[in_test]][:, None, None] * np.exp(predicted)
    baselines = {name: forecasts[name] for name in ("persistence", "drift")}
    return Report(table, quantile_rows, said, actual, predicted_prices, baselines, future)


def save(out, data, model, history, seconds, found, config, distribution):
    """Write the model, its config, the metrics, the forecasts and the plots into ``out``."""
    save_model_atomically(model, out / "model.keras")
    saved = {
        "app": "forecast",
        "window": config.window,
        "horizon": config.horizon,
        "cell": config.cell,
        "units": list(config.units),
        "attention": config.attention,
        "quantiles": list(QUANTILES),
        "target_col": config.target_col,
        "source": data.source,
        "scaler": data.scaler.to_dict(),
        "seed": config.seed,
    }
    write_json(out / "config.json", saved)
    in_test, prices = data.masks["test"], data.prices
    write_forecast_csv(
        out / "forecast.csv", prices, data.origins[in_test], found.actual,
        found.predicted_prices, found.baselines, found.future,
    )  # fmt: skip
    epochs_run = len(history.history["loss"])
    test_period = [prices.index[data.origins[in_test][0] + 1], prices.index[-1]]
    metrics = {
        "test": found.table,
        "quantiles": found.quantile_rows,
        "verdict": found.verdict,
        "examples": {part: data.count(part) for part in data.masks},
        "epochs_run": epochs_run,
        "train_seconds": round(seconds, 2),
        "trained_on": distribution.summary(config.batch_size),
        "train_windows_per_second": round(data.count("train") * epochs_run / seconds, 1),
        "test_period": [f"{day:%Y-%m-%d}" for day in test_period],
        "config": {key: value for key, value in saved.items() if key != "scaler"},
    }
    write_json(out / "metrics.json", metrics, reasons=NULL_REASONS)
    plot_run(out, data, found, config)
    common.plot_history(history, out / "training.png", title="Quantile loss")


@report_user_errors
def main(argv=None):
    started = time.perf_counter()
    config = read_config(argv)
    if config.load:
        return forecast_from_saved_run(config)
    distribution = start_distribution(config)  # before TensorFlow runs anything
    data = load_data(config)
    model, history, seconds = train(data, config, distribution)
    found = report(data, model, config)
    if not distribution.is_chief:  # one run folder per cluster: worker 0 writes it
        return finish_worker(distribution)
    # Everything is computed; only now touch the output folder, which gets the run whole or not at all.
    with run_folder(config.out, config.overwrite) as out:
        save(out, data, model, history, seconds, found, config, distribution)
    distribution.finish()
    print(
        f"\nSaved model.keras, metrics.json, forecast.csv, forecast.png and training.png in "
        f"{config.out}/ ({time.perf_counter() - started:.0f} s; reload with --load {config.out})"
    )
    return 0


def plot_run(out, data, found, config):
    """``forecast.png``: the history, the farthest step ahead on the test days, and the future."""
    last_step = found.actual.shape[1] - 1  # for --horizon 1, the next day
    prices, test_origins = data.prices, data.origins[data.masks["test"]]
    target_days = test_origins + last_step + 1
    first_test = target_days[0]
    bands = found.predicted_prices[:, last_step]
    common.plot_forecast(
        prices.index[:first_test],
        prices.to_numpy()[:first_test],
        prices.index[target_days],
        found.actual[:, last_step],
        bands[:, 1],
        bands[:, 0],
        bands[:, 2],
        found.future.index,
        found.future["median"],
        found.future["q10"],
        found.future["q90"],
        path=out / "forecast.png",
        ylabel=f"{config.target_col} price",
        title=f"{data.source}: {config.model_name}, {last_step + 1}-day-ahead forecasts on the "
        "test split and past the last date",
    )


def check_saved_forecaster(model, scaler, window, horizon, folder):
    """A saved model and its config.json must agree before they forecast anything."""
    shapes = [tuple(tensor.shape) for tensor in model.inputs]
    reads = shapes[0][1] if len(shapes[0]) == 3 else None
    ahead = 1 if len(shapes) == 1 else shapes[1][1]
    if reads is None or tuple(model.outputs[0].shape)[-1] != len(QUANTILES):
        raise UserError(f"--load {folder}: model.keras is not a forecast model")
    if (reads, ahead) != (window, horizon):
        raise UserError(
            f"--load {folder}: config.json says window {window} and horizon {horizon}, but "
            f"model.keras reads {reads} days and forecasts {ahead}; the run is damaged"
        )
    numbers = np.concatenate([np.ravel(scaler.mean), np.ravel(scaler.scale)]).astype("float64")
    if numbers.shape != (2,) or not np.isfinite(numbers).all() or numbers[1] <= 0:
        raise UserError(
            f"--load {folder}: config.json's scaler is damaged (expected one finite mean and one "
            f"positive scale, got {numbers.tolist()[:4]})"
        )


def forecast_from_saved_run(config):
    """``--load``: forecast past the last date of the data with a saved model; nothing is trained."""
    model = load_model_from_dir(config.load, app="forecast")
    config_path = Path(config.load) / "config.json"
    try:
        saved = json.loads(config_path.read_text())
        scaler = common.StandardScaler.from_dict(saved["scaler"])
        window, horizon = int(saved["window"]), int(saved["horizon"])
    except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError) as error:
        raise UserError(
            f"--load {config.load}: config.json is missing or damaged ({type(error).__name__})"
        ) from None
    check_saved_forecaster(model, scaler, window, horizon, config.load)
    if config.csv is None and not config.ticker:  # the bundled data: the column the run used
        config = dataclasses.replace(config, target_col=saved.get("target_col", config.target_col))
    prices, source = load_prices(config)
    if len(prices) < window + 1:
        raise UserError(
            f"too little data: the saved model reads {window} returns, the data has {len(prices)} days"
        )
    future = forecast_future(model, prices, scaler, window, horizon)
    print_future(future, config.target_col, source)
    if config.out is not None:
        with run_folder(config.out, config.overwrite) as out:
            future.to_csv(out / "forecast.csv", float_format="%.6g")
            write_json(out / "config.json", {"app": "forecast", "forecast_with": str(config.load)})
        print(f"Saved forecast.csv and config.json in {config.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
