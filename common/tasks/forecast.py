"""Forecasting a price a few days ahead from its daily log returns, with quantiles.

The model reads the last ``window`` daily log returns and predicts the log
return from the last close to each of the next ``horizon`` closes, as three
quantiles (:data:`QUANTILES`); prices are rebuilt from those returns. Returns
look alike in every decade, unlike price levels, so what is learned on old data
applies to new data.

The pipeline, in the order ``apps/forecast.py`` runs it:

1. :func:`prepare`: examples (:func:`make_examples`), split by date
   (:func:`split_examples`), scaled by training returns only -> :class:`Dataset`.
2. :func:`build_model`: a many-to-one network for one day ahead, an
   encoder-decoder (optionally with attention) for more, trained on the
   pinball loss of each quantile.
3. :func:`score`: the test days beside persistence and drift
   (:func:`evaluate`), the :func:`verdict`, and the business days after the
   last date (:func:`forecast_future`) -> :class:`Report`.
4. :func:`write_forecast_csv` and :func:`plot_forecasts` save what was found.

>>> prices = pd.Series([100.0, 101, 99, 100, 102, 103])
>>> inputs, targets, origins = make_examples(prices, window=2, horizon=2)
>>> inputs.shape, targets.shape, origins.tolist()
((2, 2, 1), (2, 2, 1), [2, 3])
"""

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from common.data.windows import (
    StandardScaler,
    assign_windows,
    chronological_split,
    make_windows,
    window_starts,
)
from common.models.recurrent import build_many_to_one
from common.models.seq2seq import build_encoder_decoder, predict_autoregressive
from common.models.training import QuantileLoss
from common.report import metrics
from common.report.plots import plot_forecast

QUANTILES = (0.1, 0.5, 0.9)
NULL_REASONS = {  # why a figure in metrics.json can be null
    "MASE": "the training prices never change, so the naive error MASE divides by is 0",
    "direction %": "the forecast never moves from the last close (or the price never did): "
    "no direction to score",
}

# ---------------------------------------------------------------- examples


def make_examples(prices, window, horizon):
    """Inputs: ``window`` daily log returns. Targets: the log return from the last close to
    each of the next ``horizon`` closes.

    Returns:
        inputs (n, window, 1), targets (n, horizon, 1), and the index in
        ``prices`` of each example's last observed close ("origin"), shape (n,).
    """
    log_prices = np.log(np.asarray(prices, dtype="float64"))
    returns = np.diff(log_prices)  # returns[i] is the move from close i to close i + 1
    inputs, _ = make_windows(returns, window, horizon=horizon)
    starts = window_starts(len(returns), window, horizon)
    origins = starts + window  # the close right after the window's last return
    steps_ahead = origins[:, None] + np.arange(1, horizon + 1)
    targets = (log_prices[steps_ahead] - log_prices[origins][:, None])[..., None]
    return inputs, targets, origins


def split_examples(num_prices, origins, horizon, val_fraction, test_fraction):
    """Chronological split by day; an example belongs where all its target days lie.

    Returns:
        The three slices of days (train, validation, test) and three boolean
        masks over the examples.
    """
    split = chronological_split(num_prices, val_fraction, test_fraction)
    # An example's target days are origin + 1 .. origin + horizon: a window of length 1 at origin.
    return split, assign_windows(origins, 1, horizon, split)


MIN_EXAMPLES = {"train": 100, "validation": 10, "test": 10}  # fewer teach or score nothing


def example_counts(days, window, horizon, val_fraction, test_fraction):
    """How many examples of each part ``days`` prices give, as :func:`prepare` would cut them.

    >>> example_counts(1500, 30, 300, 0.15, 0.15)
    {'train': 720, 'validation': 0, 'test': 0}
    """
    origins = np.arange(
        window, days - horizon
    )  # as make_examples: a window behind, a horizon ahead
    try:
        _, masks = split_examples(days, origins, horizon, val_fraction, test_fraction)
    except ValueError:  # too few days to split three ways
        return dict.fromkeys(MIN_EXAMPLES, 0)
    return {part: int(mask.sum()) for part, mask in zip(MIN_EXAMPLES, masks)}


def enough_examples(counts):
    return all(counts[part] >= least for part, least in MIN_EXAMPLES.items())


def days_needed(window, horizon, val_fraction, test_fraction):
    """The fewest days that give :data:`MIN_EXAMPLES` of each part (found by bisection).

    >>> days_needed(30, 1, 0.15, 0.15)
    187
    """
    sizes = (window, horizon, val_fraction, test_fraction)
    low, high = 1, 64
    while not enough_examples(example_counts(high, *sizes)):
        low, high = high, high * 2
    while low + 1 < high:  # enough at high, not at low
        middle = (low + high) // 2
        if enough_examples(example_counts(middle, *sizes)):
            high = middle
        else:
            low = middle
    return high


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
    scaler: StandardScaler

    def count(self, part):
        return int(self.masks[part].sum())

    @property
    def test_period(self):
        """The first and last day the test examples forecast."""
        return self.prices.index[self.origins[self.masks["test"]][0] + 1], self.prices.index[-1]


def prepare(prices, source, window, horizon, val_fraction, test_fraction):
    """Examples from ``prices``, split by date, inputs scaled by training returns only."""
    inputs, targets, origins = make_examples(prices, window, horizon)
    split, masks = split_examples(len(prices), origins, horizon, val_fraction, test_fraction)
    train_end = split[0].stop
    # Scale by statistics of training returns only: nothing from later days leaks in.
    scaler = StandardScaler().fit(np.diff(np.log(prices.to_numpy()[:train_end])))
    masks = dict(zip(("train", "validation", "test"), masks))
    scaled = scaler.transform(inputs).astype("float32")
    return Dataset(prices, source, scaled, targets, origins, train_end, masks, scaler)


# ---------------------------------------------------------------- model


def build_model(window, horizon, *, cell="lstm", units=(32,), dropout=0.0, attention="none"):
    """A compiled quantile forecaster: (batch, window, 1) scaled returns in, three quantiles out.

    One day ahead it is many-to-one, (batch, 3). Further ahead it is an
    encoder-decoder, ``[(batch, window, 1), (batch, horizon, 1)] -> (batch, horizon, 3)``,
    whose decoder reads the previous step (teacher forcing while training).
    """
    if horizon == 1:
        model = build_many_to_one(
            (window, 1), len(QUANTILES), cell=cell, units=units, dropout=dropout, name="forecaster"
        )
    else:
        model = build_encoder_decoder(
            (window, 1),
            (horizon, 1),
            len(QUANTILES),
            cell=cell,
            units=units,
            dropout=dropout,
            attention=None if attention == "none" else attention,
            name="forecaster",
        )
    model.compile(optimizer=keras.optimizers.Adam(1e-3, clipnorm=1.0), loss=QuantileLoss(QUANTILES))
    return model


def predict_quantiles(model, inputs, horizon):
    """Scaled inputs -> sorted quantiles of the scaled target, shape (n, horizon, 3)."""
    if horizon == 1:
        predicted = model.predict(inputs, batch_size=1024, verbose=0)[:, None, :]
    else:
        # Autoregressive decoding: the median forecast for one day feeds the next.
        predicted = predict_autoregressive(
            model, inputs, start_value=0.0, feedback=lambda step: step[:, 1:2]
        )
    return np.sort(predicted, axis=-1)  # quantiles must not cross


def check_saved_model(model, scaler, window, horizon):
    """A saved model and its saved settings must agree before they forecast anything."""
    shapes = [tuple(tensor.shape) for tensor in model.inputs]
    reads = shapes[0][1] if len(shapes[0]) == 3 else None
    ahead = 1 if len(shapes) == 1 else shapes[1][1]
    if reads is None or tuple(model.outputs[0].shape)[-1] != len(QUANTILES):
        raise ValueError("model.keras is not a forecast model")
    if (reads, ahead) != (window, horizon):
        raise ValueError(
            f"config.json says window {window} and horizon {horizon}, but model.keras reads "
            f"{reads} days and forecasts {ahead}; the run is damaged"
        )
    numbers = np.concatenate([np.ravel(scaler.mean), np.ravel(scaler.scale)]).astype("float64")
    if numbers.shape != (2,) or not np.isfinite(numbers).all() or numbers[1] <= 0:
        raise ValueError(
            "config.json's scaler is damaged (expected one finite mean and one positive scale, "
            f"got {numbers.tolist()[:4]})"
        )


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
            "MAE": metrics.mae(actual, forecast),
            "RMSE": metrics.rmse(actual, forecast),
            "MAPE %": metrics.mape(actual, forecast),
            "MASE": metrics.mase(actual, forecast, training_prices),
            "direction %": 100
            * metrics.directional_accuracy(actual - last_close, forecast - last_close),
        }
    # Quantiles: the model's against the training period's own return quantiles (no learning).
    historical = np.quantile(train_targets[..., 0], QUANTILES, axis=0).T  # (horizon, 3)
    model_prices = last_close[..., None] * np.exp(predicted_returns)
    historical_prices = last_close[..., None] * np.exp(historical[None])
    quantile_rows = {}
    for name, bands in (("model", model_prices), ("historical quantiles", historical_prices)):
        row = {
            f"pinball q{int(q * 100)}": metrics.pinball_loss(actual, bands[..., i], q)
            for i, q in enumerate(QUANTILES)
        }
        row["coverage 10-90 %"] = 100 * metrics.coverage(actual, bands[..., 0], bands[..., 2])
        quantile_rows[name] = row
    return table, quantile_rows, actual, forecasts


def verdict(table, model_name):
    """One sentence: did the model's median beat persistence on the test days?"""
    model, persistence = table["model (median)"]["MAE"], table["persistence"]["MAE"]
    if persistence == 0:  # a test split of unchanging prices: persistence is exact
        return (
            f"Verdict: persistence is exact on the test split (MAE 0); the {model_name}'s MAE "
            f"is {model:.4g}."
        )
    change = 100 * (model - persistence) / persistence
    scores = f"(MAE {model:.4g} vs {persistence:.4g}, {change:+.2f}%)"
    if model < persistence:
        return f"Verdict: the {model_name} beat persistence on the test split {scores}."
    return (
        f"Verdict: the {model_name} did NOT beat persistence on the test split {scores}. "
        "Daily prices are close to a random walk; that is the usual result."
    )


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


@dataclass
class Report:
    """What a trained model did: the test tables, the verdict and the forecasts behind them."""

    table: dict
    quantile_rows: dict
    verdict: str
    actual: np.ndarray  # (test examples, horizon) prices
    predicted_prices: np.ndarray  # (test examples, horizon, 3) quantile prices
    baselines: dict  # "persistence" / "drift" -> (test examples, horizon) prices
    future: pd.DataFrame  # q10 / median / q90 for the business days after the last date


def score(model, data, model_name):
    """Score the test days beside persistence and drift, and forecast past the last date."""
    prices, in_test, in_train = data.prices.to_numpy(), data.masks["test"], data.masks["train"]
    horizon = data.targets.shape[1]
    predicted = predict_quantiles(model, data.inputs[in_test], horizon) * data.scaler.scale[0]
    table, quantile_rows, actual, forecasts = evaluate(
        prices,
        data.origins[in_test],
        data.targets[in_test],
        predicted,
        float(data.scaler.mean[0]),  # the training period's average daily return: drift
        prices[: data.train_end],
        data.targets[in_train],
    )
    window = data.inputs.shape[1]
    future = forecast_future(model, data.prices, data.scaler, window, horizon)
    predicted_prices = prices[data.origins[in_test]][:, None, None] * np.exp(predicted)
    baselines = {name: forecasts[name] for name in ("persistence", "drift")}
    said = verdict(table, model_name)
    return Report(table, quantile_rows, said, actual, predicted_prices, baselines, future)


# ---------------------------------------------------------------- outputs


def write_forecast_csv(path, data, found):
    """One row per test forecast and step (with both baselines), then the future days."""
    prices, origins = data.prices, data.origins[data.masks["test"]]
    rows = []
    for row, origin in enumerate(origins):
        for step in range(found.actual.shape[1]):
            rows.append(
                {
                    "origin_date": prices.index[origin].date(),
                    "target_date": prices.index[origin + step + 1].date(),
                    "step": step + 1,
                    "split": "test",
                    "actual": found.actual[row, step],
                    "q10": found.predicted_prices[row, step, 0],
                    "median": found.predicted_prices[row, step, 1],
                    "q90": found.predicted_prices[row, step, 2],
                    "persistence": found.baselines["persistence"][row, step],
                    "drift": found.baselines["drift"][row, step],
                }
            )
    for step, (date, values) in enumerate(found.future.iterrows()):
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


def plot_forecasts(path, data, found, ylabel, title):
    """The history, the farthest step ahead on the test days, and the future, saved at ``path``."""
    last_step = found.actual.shape[1] - 1  # for a horizon of 1, the next day
    prices = data.prices
    target_days = data.origins[data.masks["test"]] + last_step + 1
    first_test = target_days[0]
    bands = found.predicted_prices[:, last_step]
    future = found.future
    return plot_forecast(
        prices.index[:first_test],
        prices.to_numpy()[:first_test],
        prices.index[target_days],
        found.actual[:, last_step],
        bands[:, 1],
        bands[:, 0],
        bands[:, 2],
        future.index,
        future["median"],
        future["q10"],
        future["q90"],
        path=path,
        ylabel=ylabel,
        title=title,
    )
