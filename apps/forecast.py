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
import sys
import time
from dataclasses import dataclass
from datetime import datetime
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
    dropout_rate,
    option,
    load_model_from_dir,
    positive_int,
    positive_int_up_to,
    prepare_out,
    report_user_errors,
    run_folder,
    save_model_atomically,
    save_run,
    shrink_for_quick,
    start_distribution,
    write_json,
)
from common.data.prices import MissingColumnError, download_prices, read_price_csv


import pandas as pd

# TensorFlow loads on first use: --help and option errors come first.
forecast = common.import_later("common.tasks.forecast")

REPO = Path(__file__).resolve().parent.parent
BUNDLED_CSV = REPO / "data" / "msft.csv"
YFINANCE_CACHE = Path.home() / ".cache" / "rnn-workshop" / "yfinance"


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
    # With --load the saved run keeps its settings; these options say the data to forecast from, and where to save the forecast.
    WITH_LOAD = {
        "csv",
        "ticker",
        "start",
        "end",
        "date_col",
        "target_col",
        "cache_dir",
        "out",
        "overwrite",
    }
    GROUPS = {
        "data": "data (default: bundled daily MSFT prices, 1986-2017)",
        "model": "model",
        "use": "use a saved model",
    }

    epochs: int = option(30, quick=2)  # this app's own default for a shared option
    csv: Path | None = option(
        None, "prices by date (yfinance exports too)", group="data", type=Path, exclusive="source"
    )
    ticker: str | None = option(
        None, "fetch SYMBOL's daily prices with yfinance (cached)", group="data", exclusive="source"
    )
    start: str | None = option(None, "first date to use, YYYY-MM-DD", group="data", type=iso_date)
    end: str | None = option(None, "last date to use, YYYY-MM-DD", group="data", type=iso_date)
    date_col: str = option("Date", "date column in --csv", group="data")
    target_col: str = option("Close", "price column to forecast", group="data")
    cache_dir: Path = option(
        YFINANCE_CACHE, "where --ticker downloads are kept", group="data", type=Path
    )
    cell: str = option("lstm", "recurrent cell", choices=["gru", "lstm", "rnn"])
    units: tuple = option(
        (32,), "units; several numbers stack layers", type=positive_int_up_to(4096), quick=(8,)
    )
    window: int = option(30, "past business days the model reads", type=positive_int, quick=20)
    horizon: int = option(
        1, "business days ahead to forecast; above 1 uses the encoder-decoder", type=positive_int
    )
    attention: str = option(
        "none", "encoder-decoder attention (--horizon > 1)", choices=["none", "dot", "additive"]
    )
    dropout: float = option(0.0, "dropout on recurrent inputs", type=dropout_rate)
    test_fraction: float = option(
        0.15, "last share of days held out for the test table", type=float
    )
    val_fraction: float = option(
        0.15, "share of days before the test part used for early stopping", type=float
    )
    load: Path | None = option(
        None, "forecast with the run in DIR; no training", group="use", type=Path, metavar="DIR"
    )

    @property
    def model_name(self):
        name = f"{self.cell.upper()}{'-'.join(map(str, self.units))}"
        if self.horizon > 1:
            name += " encoder-decoder"
            name += "" if self.attention == "none" else f" + {self.attention} attention"
        return name


def read_config(argv):
    """Parse and check the options before any work; ``--quick`` shrinks what was not typed."""
    parser = Config.parser(__doc__)
    args = parser.parse_args(argv)
    if args.load:
        refuse_unused_with_load(parser, argv, Config.WITH_LOAD)
    if args.ticker is not None and not args.ticker.strip():
        raise UserError("--ticker needs a symbol, for example --ticker MSFT")
    for name in ("val_fraction", "test_fraction"):
        if not 0 < getattr(args, name) < 1:
            option_name = "--" + name.replace("_", "-")
            raise UserError(f"{option_name} must be between 0 and 1, got {getattr(args, name)}")
    if args.target_col == args.date_col:
        raise UserError(
            f"--target-col and --date-col both name the column {args.target_col!r}: the prices "
            "and their dates are two columns"
        )
    if args.start and args.end and args.start > args.end:
        raise UserError(f"--start {args.start} is after --end {args.end}; no day lies between")
    if args.val_fraction + args.test_fraction >= 1:
        raise UserError(
            f"--val-fraction {args.val_fraction} and --test-fraction {args.test_fraction} "
            "leave no days to train on; their sum must be below 1"
        )
    if not args.load or args.out is not None:  # can the run be saved? Check before any work.
        args.out = prepare_out(args.out, "forecast", args.overwrite, args.load)
    if args.quick and not args.load:  # a smoke test: recent data, a small model, two epochs
        shrink_for_quick(args, argv, **Config.quick_values())
    refuse_missing("--csv", args.csv)
    refuse_missing("--load", args.load, "folder")
    return Config.from_args(args)


# ---------------------------------------------------------------- data


def load_prices(config):
    """The prices the options name, between --start and --end, and where they came from."""
    try:
        if config.ticker:
            name = f"--ticker {config.ticker}"
            prices = download_prices(
                config.ticker, config.start, config.end, config.cache_dir, name
            )
            source = f"yfinance {config.ticker.upper()}"
        else:
            path = config.csv or BUNDLED_CSV
            prices = read_price_csv(path, config.date_col, config.target_col, f"--csv {path}")
            source = str(path) if config.csv else "bundled MSFT (data/msft.csv)"
    except MissingColumnError as error:
        flag = "--date-col" if error.column == config.date_col else "--target-col"
        raise UserError(f"{error} (choose with {flag})") from None
    except ValueError as error:
        raise UserError(str(error)) from None
    for note in prices.attrs.get("notes", []):
        print(f"{source}: {note}")
    first, last = prices.index[0], prices.index[-1]
    if config.start:
        prices = prices[prices.index >= pd.Timestamp(config.start)]
    if config.end:
        prices = prices[prices.index <= pd.Timestamp(config.end)]
    if prices.empty:  # only --start and --end can leave nothing: the reader refuses empty files
        chosen = " ".join(
            f"--{flag} {day}" for flag, day in (("start", config.start), ("end", config.end)) if day
        )
        raise UserError(
            f"{chosen}: no prices in that range; {source} runs from {first:%Y-%m-%d} to "
            f"{last:%Y-%m-%d}"
        )
    return prices, source


def print_future(future, target_col, source):
    print(f"\nForecast of {target_col} past the last date ({source}):")
    rows = {f"{date:%Y-%m-%d}": dict(row) for date, row in future.iterrows()}
    common.print_table(rows)


# ---------------------------------------------------------------- the run's four steps


def load_data(config):
    """Read the prices and cut them into chronologically split, scaled examples."""
    prices, source = load_prices(config)
    if config.quick:
        prices = prices.iloc[-1200:]
    counts = forecast.example_counts(
        len(prices), config.window, config.horizon, config.val_fraction, config.test_fraction
    )
    if not forecast.enough_examples(counts):
        raise UserError(too_little_data(len(prices), counts, config))
    try:
        data = forecast.prepare(
            prices, source, config.window, config.horizon, config.val_fraction, config.test_fraction
        )
    except ValueError as error:
        raise UserError(str(error)) from None
    counts = {part: data.count(part) for part in data.masks}
    print(
        f"Data: {source}, {len(prices)} days {prices.index[0]:%Y-%m-%d} to "
        f"{prices.index[-1]:%Y-%m-%d}; examples: {counts['train']} train, "
        f"{counts['validation']} validation, {counts['test']} test"
    )
    return data


def too_little_data(days, counts, config):
    """Why the examples are too few, and the option to change: --horizon when the validation
    and test parts cannot hold one horizon, --window when the training part is short."""
    sizes = (config.window, config.horizon, config.val_fraction, config.test_fraction)
    needed = forecast.days_needed(*sizes)
    smaller = []
    if min(counts["validation"], counts["test"]) < forecast.MIN_EXAMPLES["test"]:
        smaller.append("--horizon")  # each of those parts must hold horizon + 9 days
    if counts["train"] < forecast.MIN_EXAMPLES["train"]:
        smaller.append("--window")
    return (
        f"too little data: {days} days give {counts['train']} training, {counts['validation']} "
        f"validation and {counts['test']} test examples for --window {config.window} --horizon "
        f"{config.horizon} (need at least {forecast.MIN_EXAMPLES['train']}, "
        f"{forecast.MIN_EXAMPLES['validation']} and {forecast.MIN_EXAMPLES['test']}); use about "
        f"{needed} days (see --start, --end), or a smaller {' or '.join(smaller)}"
    )


def build_model(config):
    """The quantile forecaster the options describe (see common.tasks.forecast.build_model)."""
    return forecast.build_model(
        config.window,
        config.horizon,
        cell=config.cell,
        units=config.units,
        dropout=config.dropout,
        attention=config.attention,
    )


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
    print(distribution.describe(config.batch_size))
    started = time.perf_counter()
    history = common.fit(
        model,
        parts[0],
        parts[1],
        epochs=config.epochs,
        patience=4,
        verbose=config.progress,
        batch_size=distribution.global_batch(config.batch_size),
        distribution=distribution,
    )
    if (epoch := common.diverged(history)) is not None:
        raise UserError(
            f"training diverged: the loss stopped being a number in epoch {epoch}; "
            "the data's daily returns may be extreme (check the prices)"
        )
    return distribution.local_copy(model), history, time.perf_counter() - started


def report(data, model, config):
    """Score the test days beside persistence and drift, forecast past the end, print it all."""
    found = forecast.score(model, data, config.model_name)
    first, last = data.test_period
    print()
    common.print_table(
        found.table,
        title=f"Test split, {first:%Y-%m-%d} to {last:%Y-%m-%d}, {config.target_col} price, "
        f"{data.count('test')} forecasts of {config.horizon} day(s):",
    )
    print()
    common.print_table(
        found.quantile_rows,
        title="Quantile forecasts (pinball loss: lower is better; coverage: 80% is ideal):",
    )
    print("\n" + found.verdict)
    print_future(found.future, config.target_col, data.source)
    return found


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
        "quantiles": list(forecast.QUANTILES),
        "target_col": config.target_col,
        "source": data.source,
        "scaler": data.scaler.to_dict(),
        "seed": config.seed,
    }
    write_json(out / "config.json", saved)
    forecast.write_forecast_csv(out / "forecast.csv", data, found)
    epochs_run = len(history.history["loss"])
    metrics = {
        "test": found.table,
        "quantiles": found.quantile_rows,
        "verdict": found.verdict,
        "examples": {part: data.count(part) for part in data.masks},
        "epochs_run": epochs_run,
        "train_seconds": round(seconds, 2),
        "trained_on": distribution.summary(config.batch_size),
        "train_windows_per_second": round(data.count("train") * epochs_run / seconds, 1),
        "test_period": [f"{day:%Y-%m-%d}" for day in data.test_period],
        "config": {key: value for key, value in saved.items() if key != "scaler"},
    }
    write_json(out / "metrics.json", metrics, reasons=forecast.NULL_REASONS)
    steps = found.actual.shape[1]
    forecast.plot_forecasts(
        out / "forecast.png",
        data,
        found,
        ylabel=f"{config.target_col} price",
        title=f"{data.source}: {config.model_name}, {steps}-day-ahead forecasts on the test "
        "split and past the last date",
    )
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
    # Everything is computed; only now touch the output folder, which gets the run whole or not at all.
    if save_run(
        config, distribution, save, data, model, history, seconds, found, config, distribution
    ):
        print(
            f"\nSaved model.keras, metrics.json, forecast.csv, forecast.png and training.png in "
            f"{config.out}/ ({time.perf_counter() - started:.0f} s; reload with --load {config.out})"
        )
    return 0


def forecast_from_saved_run(config):
    """``--load``: forecast past the last date of the data with a saved model; nothing is trained."""
    model = load_model_from_dir(config.load, app="forecast")
    try:
        saved = json.loads((Path(config.load) / "config.json").read_text())
        scaler = common.StandardScaler.from_dict(saved["scaler"])
        window, horizon = int(saved["window"]), int(saved["horizon"])
        if not isinstance(saved.get("target_col", ""), str):
            raise TypeError("target_col")
    except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError) as error:
        raise UserError(
            f"--load {config.load}: config.json is missing or damaged ({type(error).__name__})"
        ) from None
    try:
        forecast.check_saved_model(model, scaler, window, horizon)
    except ValueError as error:
        raise UserError(f"--load {config.load}: {error}") from None
    if config.csv is None and not config.ticker:  # the bundled data: the column the run used
        config = dataclasses.replace(config, target_col=saved.get("target_col", config.target_col))
    prices, source = load_prices(config)
    if len(prices) < window + 1:
        raise UserError(
            f"too little data: the saved model reads {window} returns, the data has "
            f"{len(prices)} days"
        )
    future = forecast.forecast_future(model, prices, scaler, window, horizon)
    print_future(future, config.target_col, source)
    if config.out is not None:
        with run_folder(config.out, config.overwrite) as out:
            future.to_csv(out / "forecast.csv", float_format="%.6g")
            write_json(out / "config.json", {"app": "forecast", "forecast_with": str(config.load)})
        print(f"Saved forecast.csv and config.json in {config.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
