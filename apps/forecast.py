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

import json
import sys
import time
from datetime import datetime
from pathlib import Path

import common  # first: keeps TensorFlow's start-up log noise out of the terminal
from common.cli import shrink_for_quick, write_json
from common.series import CSV_READ_ERRORS, error_reason
from common.cli import (
    UserError,
    app_parser,
    load_model_from_dir,
    positive_int,
    report_user_errors,
    prepare_out,
    run_folder,
    save_model_atomically,
)

import keras
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
BUNDLED_CSV = REPO / "data" / "msft.csv"
QUANTILES = (0.1, 0.5, 0.9)


def iso_date(text):
    """A ``YYYY-MM-DD`` date for --start and --end; anything else is one clear error."""
    import argparse

    try:
        return pd.Timestamp(datetime.strptime(text, "%Y-%m-%d")).strftime("%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def parse_args(argv):
    parser = app_parser(__doc__, "forecast", epochs=30, batch_size=64)
    data = parser.add_argument_group("data (default: bundled daily MSFT prices, 1986-2017)")
    source = data.add_mutually_exclusive_group()
    source.add_argument(
        "--csv",
        type=Path,
        help="CSV with a date column and a price column (yfinance exports welcome)",
    )
    source.add_argument(
        "--ticker",
        help="download daily prices for SYMBOL with yfinance (needs the network once; cached)",
    )
    data.add_argument("--start", type=iso_date, help="first date to use, YYYY-MM-DD")
    data.add_argument("--end", type=iso_date, help="last date to use, YYYY-MM-DD")
    data.add_argument(
        "--date-col", default="Date", help="date column in --csv (default: %(default)s)"
    )
    data.add_argument(
        "--target-col", default="Close", help="price column to forecast (default: %(default)s)"
    )
    data.add_argument(
        "--cache-dir",
        type=Path,
        default=Path.home() / ".cache" / "rnn-workshop" / "yfinance",
        help="where --ticker downloads are kept (default: %(default)s)",
    )

    model = parser.add_argument_group("model")
    model.add_argument(
        "--cell",
        choices=sorted(common.CELLS),
        default="lstm",
        help="recurrent cell (default: %(default)s)",
    )
    model.add_argument(
        "--units",
        type=positive_int,
        nargs="+",
        default=[32],
        help="units per recurrent layer; several numbers stack layers, e.g. --units 64 32 (default: 32)",
    )
    model.add_argument(
        "--window",
        type=positive_int,
        default=30,
        help="past business days the model reads (default: %(default)s)",
    )
    model.add_argument(
        "--horizon",
        type=positive_int,
        default=1,
        help="business days ahead to forecast; above 1 uses the encoder-decoder (default: %(default)s)",
    )
    model.add_argument(
        "--attention",
        choices=["none", "dot", "additive"],
        default="none",
        help="attention in the encoder-decoder, for --horizon above 1 (default: %(default)s)",
    )
    model.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="dropout on recurrent inputs (default: %(default)s)",
    )
    model.add_argument(
        "--test-fraction",
        type=float,
        default=0.15,
        help="last share of days held out for the test table (default: %(default)s)",
    )
    model.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="share of days before the test part used for early stopping (default: %(default)s)",
    )
    model.add_argument(
        "--load",
        type=Path,
        metavar="DIR",
        help="skip training: forecast past the last date with the model saved in DIR",
    )
    return parser.parse_args(argv)


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
        rows = raw.iloc[3:] if str(raw.iloc[2, 0]).strip() == "Date" else raw.iloc[2:]
    frame = pd.DataFrame(rows.values, columns=header)
    return price_series(frame, date_col, target_col, origin=f"--csv {path}")


def price_series(frame, date_col, target_col, origin):
    """Check a frame's date and price columns; return the prices as a sorted, dated Series."""
    for column, option in ((date_col, "--date-col"), (target_col, "--target-col")):
        if column not in frame.columns:
            raise UserError(
                f"{origin}: no column '{column}'; columns are {', '.join(map(str, frame.columns))} (choose with {option})"
            )
    dates = pd.to_datetime(
        frame[date_col].astype(str).str.strip().str[:10], errors="coerce", format="%Y-%m-%d"
    )
    if dates.isna().any():
        dates = pd.to_datetime(frame[date_col], errors="coerce")
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


def load_prices(args):
    if args.ticker:
        prices = download_prices(args.ticker, args.start, args.end, args.cache_dir)
        source = f"yfinance {args.ticker.upper()}"
    else:
        path = args.csv or BUNDLED_CSV
        prices = read_price_csv(path, args.date_col, args.target_col)
        source = str(path) if args.csv else "bundled MSFT (data/msft.csv)"
    if args.start:
        prices = prices[prices.index >= pd.Timestamp(args.start)]
    if args.end:
        prices = prices[prices.index <= pd.Timestamp(args.end)]
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


def build_model(args):
    quantiles = len(QUANTILES)
    if args.horizon == 1:
        model = common.build_many_to_one(
            (args.window, 1),
            quantiles,
            cell=args.cell,
            units=tuple(args.units),
            dropout=args.dropout,
            name="forecaster",
        )
    else:
        model = common.build_encoder_decoder(
            (args.window, 1),
            (args.horizon, 1),
            quantiles,
            cell=args.cell,
            units=tuple(args.units),
            dropout=args.dropout,
            attention=None if args.attention == "none" else args.attention,
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


# ---------------------------------------------------------------- main


@report_user_errors
def main(argv=None):
    args = parse_args(argv)
    if not args.load or args.out is not None:  # can the run be saved? Check before any work.
        args.out = prepare_out(args.out, "forecast", args.overwrite, args.load)
    started = time.perf_counter()
    if not 0 <= args.dropout < 1:
        raise UserError(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.load:
        return forecast_from_saved_run(args)

    if args.quick:  # a smoke test: recent data, a small model, two epochs
        shrink_for_quick(args, argv, epochs=2, window=20, units=[8])
    common.set_seed(args.seed)
    prices, source = load_prices(args)
    if args.quick:
        prices = prices.iloc[-1200:]

    inputs, targets, origins = make_examples_checked(prices, args.window, args.horizon)
    split, (in_train, in_val, in_test) = split_examples(
        len(prices), origins, args.horizon, args.val_fraction, args.test_fraction
    )
    counts = {
        "train": int(in_train.sum()),
        "validation": int(in_val.sum()),
        "test": int(in_test.sum()),
    }
    if min(counts.values()) < 10 or counts["train"] < 100:
        need = args.window + args.horizon
        raise UserError(
            f"too little data: {len(prices)} days give {counts['train']} training, {counts['validation']} validation and "
            f"{counts['test']} test examples for --window {args.window} --horizon {args.horizon}; "
            f"need about {int((need + 100) / (1 - args.val_fraction - args.test_fraction)) + 20} days or a smaller --window"
        )

    # Scale by statistics of training returns only: nothing from later days leaks in.
    train_returns = np.diff(np.log(prices.to_numpy()[: split[0].stop]))
    scaler = common.StandardScaler().fit(train_returns)
    scaled_inputs = scaler.transform(inputs).astype("float32")
    scaled_targets = (targets / scaler.scale[0]).astype("float32")

    model = build_model(args)
    model_inputs = scaled_inputs
    train_x, val_x = model_inputs[in_train], model_inputs[in_val]
    train_y, val_y = scaled_targets[in_train], scaled_targets[in_val]
    if args.horizon == 1:
        train_y, val_y = train_y[:, 0], val_y[:, 0]
    else:  # teacher forcing: the decoder reads the true previous step, starting from 0 (the last close itself)
        train_x = [train_x, common.teacher_forcing_inputs(train_y, 0.0)]
        val_x = [val_x, common.teacher_forcing_inputs(val_y, 0.0)]

    print(
        f"Data: {source}, {len(prices)} days {prices.index[0]:%Y-%m-%d} to {prices.index[-1]:%Y-%m-%d}; "
        f"examples: {counts['train']} train, {counts['validation']} validation, {counts['test']} test"
    )
    model_name = f"{args.cell.upper()}{'-'.join(map(str, args.units))}" + (
        f" encoder-decoder{'' if args.attention == 'none' else ' + ' + args.attention + ' attention'}"
        if args.horizon > 1
        else ""
    )
    print(
        f"Training {model_name} on {args.window}-day windows, {args.horizon}-day horizon, up to {args.epochs} epochs ..."
    )
    train_started = time.perf_counter()
    history = common.fit(
        model,
        (train_x, train_y),
        (val_x, val_y),
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=4,
        verbose=common.progress_verbosity(),
    )
    train_seconds = time.perf_counter() - train_started
    epochs_run = len(history.history["loss"])

    predicted = predict_quantiles(model, scaled_inputs[in_test], args.horizon) * scaler.scale[0]
    table, quantile_rows, actual, forecasts = evaluate(
        prices.to_numpy(),
        origins[in_test],
        targets[in_test],
        predicted,
        float(train_returns.mean()),
        prices.to_numpy()[: split[0].stop],
        targets[in_train],
    )
    test_start, test_end = prices.index[origins[in_test][0] + 1], prices.index[-1]
    print()
    common.print_table(
        table,
        title=f"Test split, {test_start:%Y-%m-%d} to {test_end:%Y-%m-%d}, {args.target_col} price, {counts['test']} forecasts of {args.horizon} day(s):",
    )
    print()
    common.print_table(
        quantile_rows,
        title="Quantile forecasts (pinball loss: lower is better; coverage: 80% is ideal):",
    )
    print("\n" + verdict(table, model_name))

    # Everything is computed; only now touch the output folder.
    with run_folder(args.out, args.overwrite) as out:  # saved whole, or not at all
        save_model_atomically(model, out / "model.keras")
        config = {
            "app": "forecast",
            "window": args.window,
            "horizon": args.horizon,
            "cell": args.cell,
            "units": args.units,
            "attention": args.attention,
            "quantiles": list(QUANTILES),
            "target_col": args.target_col,
            "source": source,
            "scaler": scaler.to_dict(),
            "seed": args.seed,
        }
        (out / "config.json").write_text(json.dumps(config, indent=2))
        future = forecast_future(model, prices, scaler, args.window, args.horizon)
        predicted_prices = prices.to_numpy()[origins[in_test]][:, None, None] * np.exp(predicted)
        write_forecast_csv(
            out / "forecast.csv",
            prices,
            origins[in_test],
            actual,
            predicted_prices,
            forecasts,
            future,
        )
        metrics = {
            "test": table,
            "quantiles": quantile_rows,
            "verdict": verdict(table, model_name),
            "examples": counts,
            "epochs_run": epochs_run,
            "train_seconds": round(train_seconds, 2),
            "train_windows_per_second": round(counts["train"] * epochs_run / train_seconds, 1),
            "test_period": [f"{test_start:%Y-%m-%d}", f"{test_end:%Y-%m-%d}"],
            "config": {k: v for k, v in config.items() if k != "scaler"},
        }
        write_json(out / "metrics.json", metrics)
        plot_run(
            out,
            prices,
            origins[in_test],
            actual,
            predicted_prices,
            future,
            args.target_col,
            source,
            model_name,
        )
        common.plot_history(history, out / "training.png", title="Quantile loss")
        print_future(future, args.target_col, source)
    print(
        f"\nSaved model.keras, metrics.json, forecast.csv, forecast.png and training.png in {args.out}/ "
        f"({time.perf_counter() - started:.0f} s; reload with --load {args.out})"
    )
    return 0


def make_examples_checked(prices, window, horizon):
    if len(prices) < window + horizon + 2:
        raise UserError(
            f"too little data: {len(prices)} days, but --window {window} and --horizon {horizon} need far more"
        )
    return make_examples(prices, window, horizon)


def plot_run(
    out, prices, test_origins, actual, predicted_prices, future, target_col, source, model_name
):
    last_step = (
        actual.shape[1] - 1
    )  # draw the farthest step ahead; for --horizon 1 that is the next day
    target_days = test_origins + last_step + 1
    first_test = target_days[0]
    common.plot_forecast(
        prices.index[:first_test],
        prices.to_numpy()[:first_test],
        prices.index[target_days],
        actual[:, last_step],
        predicted_prices[:, last_step, 1],
        predicted_prices[:, last_step, 0],
        predicted_prices[:, last_step, 2],
        future.index,
        future["median"],
        future["q10"],
        future["q90"],
        path=out / "forecast.png",
        ylabel=f"{target_col} price",
        title=f"{source}: {model_name}, {last_step + 1}-day-ahead forecasts on the test split and past the last date",
    )


def forecast_from_saved_run(args):
    model = load_model_from_dir(args.load, app="forecast")
    config_path = Path(args.load) / "config.json"
    try:
        config = json.loads(config_path.read_text())
        scaler = common.StandardScaler.from_dict(config["scaler"])
        window, horizon = int(config["window"]), int(config["horizon"])
    except (OSError, ValueError, KeyError) as error:
        raise UserError(
            f"--load {args.load}: config.json is missing or damaged ({type(error).__name__})"
        ) from None
    args.target_col = (
        config.get("target_col", args.target_col)
        if args.csv is None and not args.ticker
        else args.target_col
    )
    prices, source = load_prices(args)
    if len(prices) < window + 1:
        raise UserError(
            f"too little data: the saved model reads {window} returns, the data has {len(prices)} days"
        )
    future = forecast_future(model, prices, scaler, window, horizon)
    print_future(future, args.target_col, source)
    if args.out is not None:
        with run_folder(args.out, args.overwrite) as out:
            future.to_csv(out / "forecast.csv", float_format="%.6g")
        print(f"Saved forecast.csv in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
