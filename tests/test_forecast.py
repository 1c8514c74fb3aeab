"""Tests of the forecast task (common.tasks.forecast), its price readers (common.data.prices) and
apps/forecast.py end to end: a seeded quick run, reloading, yfinance offline, bad input."""

import json
import shutil
import sys
import types

import keras
import numpy as np
import pandas as pd
import pytest

import common
from common.data import prices as price_files
from common.tasks import forecast as task
from conftest import REPO, load_app

forecast = load_app("forecast")
MSFT = pd.read_csv(REPO / "data" / "msft.csv")


@pytest.fixture(scope="module")
def quick_run(quick_runs):
    """The seeded --quick run the tests share (conftest.quick_runs)."""
    status, stdout, _, out = quick_runs("forecast")
    return status, stdout, out


def test_quick_run_writes_every_output(quick_run):
    status, stdout, out = quick_run
    assert status == 0
    for name in (
        "model.keras",
        "config.json",
        "metrics.json",
        "forecast.csv",
        "forecast.png",
        "training.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert "persistence" in stdout and "drift" in stdout and "Verdict:" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"model (median)", "persistence", "drift"}
    assert set(metrics["test"]["model (median)"]) == {
        "MAE",
        "RMSE",
        "MAPE %",
        "MASE",
        "direction %",
    }
    # Persistence never moves, so it calls no direction: null in strict JSON, and why.
    assert metrics["test"]["persistence"]["direction %"] is None
    assert "never moves" in metrics["test"]["persistence"]["direction %_null_reason"]
    assert set(metrics["quantiles"]["model"]) == {
        "pinball q10",
        "pinball q50",
        "pinball q90",
        "coverage 10-90 %",
    }


def test_metrics_agree_with_the_forecast_csv(quick_run):
    _, _, out = quick_run
    metrics = json.loads((out / "metrics.json").read_text())
    rows = pd.read_csv(out / "forecast.csv")
    test = rows[rows["split"] == "test"]
    assert len(test) == metrics["examples"]["test"]
    # Recompute the table's MAEs by hand from the saved forecasts.
    assert np.mean(np.abs(test["actual"] - test["persistence"])) == pytest.approx(
        metrics["test"]["persistence"]["MAE"], rel=1e-4
    )
    assert np.mean(np.abs(test["actual"] - test["median"])) == pytest.approx(
        metrics["test"]["model (median)"]["MAE"], rel=1e-4
    )
    inside = (test["actual"] >= test["q10"]) & (test["actual"] <= test["q90"])
    # The CSV rounds to 6 significant figures, which may move one boundary case.
    assert 100 * inside.mean() == pytest.approx(
        metrics["quantiles"]["model"]["coverage 10-90 %"], abs=100 / len(test) + 1e-9
    )
    assert (test["q10"] <= test["median"]).all() and (test["median"] <= test["q90"]).all()
    # Persistence is "tomorrow = today": each test row's persistence is the previous row's actual.
    np.testing.assert_allclose(
        test["persistence"].to_numpy()[1:], test["actual"].to_numpy()[:-1], rtol=1e-5
    )


def test_test_split_is_the_last_part_and_the_scaler_saw_training_data_only(quick_run):
    _, _, out = quick_run
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    prices = MSFT.set_index("Date")["Close"].iloc[-1200:]  # what --quick uses
    assert metrics["test_period"][1] == prices.index[-1]
    # The saved scaler equals statistics of returns before the validation part, by hand.
    returns = np.diff(np.log(prices.to_numpy()))
    train_end = 1200 - round(1200 * 0.15) - round(1200 * 0.15)
    assert config["scaler"]["mean"][0] == pytest.approx(returns[: train_end - 1].mean())
    assert config["scaler"]["scale"][0] == pytest.approx(returns[: train_end - 1].std())


def test_saved_model_reloads_to_identical_forecasts(quick_run, run_app, tmp_path):
    _, _, out = quick_run
    model = keras.models.load_model(out / "model.keras")
    assert model.output.shape[-1] == 3  # three quantiles
    status, stdout, _ = run_app("forecast", "--load", out, "--out", tmp_path)
    assert status == 0 and "median" in stdout
    trained = pd.read_csv(out / "forecast.csv").query("split == 'future'")
    reloaded = pd.read_csv(tmp_path / "forecast.csv")
    np.testing.assert_array_equal(
        reloaded[["q10", "median", "q90"]].to_numpy(), trained[["q10", "median", "q90"]].to_numpy()
    )


def test_encoder_decoder_horizon_with_attention(run_app, tmp_path):
    status, stdout, err = run_app(
        "forecast", "--quick", "--horizon", "3", "--attention", "dot", "--out", tmp_path
    )
    assert status == 0, err
    rows = pd.read_csv(tmp_path / "forecast.csv")
    assert sorted(rows["step"].unique()) == [1, 2, 3]
    assert (rows["split"] == "future").sum() == 3
    attention = keras.models.load_model(tmp_path / "model.keras").get_layer("attention")
    assert isinstance(attention, keras.layers.Attention)  # dot-product attention, reloaded


# --- yfinance, with its real return shape standing in for the network ----------------------


def fake_history(rows=700):
    """What ``yfinance.Ticker(...).history(auto_adjust=True)`` returns: a tz-aware 'Date' index."""
    recent = MSFT.iloc[-rows:]
    index = pd.DatetimeIndex(pd.to_datetime(recent["Date"]), name="Date").tz_localize(
        "America/New_York"
    )
    frame = recent[["Open", "High", "Low", "Close", "Volume"]].set_axis(index)
    return frame.assign(Dividends=0.0, **{"Stock Splits": 0.0})


def install_fake_yfinance(monkeypatch, history):
    calls = []

    class Ticker:
        def __init__(self, symbol):
            self.symbol = symbol

        def history(self, **kwargs):
            calls.append((self.symbol, kwargs))
            return history() if callable(history) else history

    module = types.ModuleType("yfinance")
    module.Ticker = Ticker
    module.exceptions = types.SimpleNamespace(
        YFException=YFException, YFRateLimitError=YFRateLimitError
    )
    monkeypatch.setitem(sys.modules, "yfinance", module)
    return calls


def test_ticker_downloads_once_then_reads_the_cache(monkeypatch, tmp_path):
    calls = install_fake_yfinance(monkeypatch, fake_history())
    prices = price_files.download_prices("msft", "2015-01-01", None, tmp_path)
    assert len(calls) == 1 and calls[0][1]["auto_adjust"] is True
    # Calendar dates survive the time zone: the first row is the exchange's date.
    assert prices.index[0] == pd.Timestamp(MSFT["Date"].iloc[-700])
    np.testing.assert_allclose(prices.to_numpy(), MSFT["Close"].iloc[-700:].to_numpy())
    again = price_files.download_prices("MSFT", "2015-01-01", None, tmp_path)
    assert len(calls) == 1  # served from the cache
    pd.testing.assert_series_equal(again, prices)


def test_ticker_run_end_to_end(monkeypatch, run_app, tmp_path):
    install_fake_yfinance(monkeypatch, fake_history(900))
    status, stdout, err = run_app(
        "forecast",
        "--ticker",
        "MSFT",
        "--quick",
        "--cache-dir",
        tmp_path / "cache",
        "--out",
        tmp_path / "run",
    )
    assert status == 0, err
    assert "yfinance MSFT" in stdout
    assert (tmp_path / "run" / "model.keras").is_file()


def raise_(error):
    def history():
        raise error

    return history


class YFException(Exception):
    """Stands in for yfinance.exceptions.YFException, the base of yfinance's own errors."""


class YFTickerMissingError(YFException):
    """Like yfinance's own error for an unknown symbol."""


class YFRateLimitError(YFException):
    """Like yfinance's error when Yahoo Finance refuses too many requests."""


@pytest.mark.parametrize(
    "history, message",
    [
        (
            raise_(OSError("Could not resolve host: query2.finance.yahoo.com")),
            "could not reach Yahoo Finance (no network?)",
        ),
        (
            raise_(YFTickerMissingError("$NOPE: possibly delisted")),
            "Yahoo Finance has no prices for it",
        ),
        (pd.DataFrame(), "Yahoo Finance has no prices for it"),
        (raise_(YFRateLimitError("Too Many Requests")), "too many requests"),
        (raise_(RuntimeError("odd\nsecond line")), "download failed (RuntimeError: odd)"),
    ],
)
def test_ticker_failures_are_one_line(monkeypatch, run_app, tmp_path, history, message):
    install_fake_yfinance(monkeypatch, history)
    status, _, err = run_app("forecast", "--ticker", "NOPE", "--cache-dir", tmp_path)
    assert status == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing cached from a failed download


# --- CSV input ----------------------------------------------------------------------------------


def test_reads_yfinance_multi_row_header_export(tmp_path):
    recent = MSFT.iloc[-5:]
    lines = ["Price,Close,High,Low,Open,Volume", "Ticker,MSFT,MSFT,MSFT,MSFT,MSFT", "Date,,,,,"]
    lines += [
        f"{r.Date},{r.Close},{r.High},{r.Low},{r.Open},{r.Volume}" for r in recent.itertuples()
    ]
    path = tmp_path / "msft_download.csv"
    path.write_text("\n".join(lines) + "\n")
    prices = price_files.read_price_csv(path, "Date", "Close")
    np.testing.assert_allclose(prices.to_numpy(), recent["Close"].to_numpy())
    assert prices.index[-1] == pd.Timestamp(recent["Date"].iloc[-1])


def test_reads_a_plain_csv_with_other_column_names(tmp_path):
    path = tmp_path / "prices.csv"
    pd.DataFrame({"day": ["2020-01-03", "2020-01-02"], "price": [2.0, 1.0]}).to_csv(
        path, index=False
    )
    prices = price_files.read_price_csv(path, "day", "price")
    assert prices.tolist() == [1.0, 2.0]  # sorted by date


def test_price_readers_raise_value_errors_that_start_with_the_name(tmp_path):
    path = write_prices(tmp_path / "p.csv", np.linspace(10, 20, 50))
    with pytest.raises(price_files.MissingColumnError, match=r"^prices: no column 'Adj'") as info:
        price_files.read_price_csv(path, "Date", "Adj", name="prices")
    assert info.value.column == "Adj"
    with pytest.raises(ValueError, match=r"^x\.csv: no such file$"):
        price_files.read_price_csv(tmp_path / "x.csv", "Date", "Close", name="x.csv")


def dated(text, closes):
    """CSV text of ``closes`` on consecutive business days from 4 January 2016."""
    days = pd.bdate_range("2016-01-04", periods=len(closes))
    return "".join(text.format(day=day, close=close) for day, close in zip(days, closes))


def test_day_first_dates_are_read_day_first(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("Date,Close\n" + dated("{day:%d.%m.%Y},{close}\n", range(10, 50)))
    prices = price_files.read_price_csv(path, "Date", "Close")
    assert prices.index[0] == pd.Timestamp("2016-01-04") and prices.is_monotonic_increasing
    assert prices.tolist() == list(range(10, 50))  # in the file's order: no row moved
    assert prices.attrs["notes"] == [
        "read dates with the day first ('04.01.2016' is 2016-01-04 00:00:00)"
    ]


@pytest.mark.parametrize("layout", ["{day:%d-%m-%Y}", "{day:%m-%d-%Y}", "{day:%d-%b-%Y}"])
def test_dates_with_dashes_and_the_year_last_keep_their_year(tmp_path, layout):
    # "-2016" once read as a UTC offset and was cut off: the dates fell into the year 1.
    path = tmp_path / "p.csv"
    path.write_text("Date,Close\n" + dated(layout + ",{close}\n", range(10, 50)))
    prices = price_files.read_price_csv(path, "Date", "Close")
    assert prices.index[0] == pd.Timestamp("2016-01-04") and prices.is_monotonic_increasing


@pytest.mark.parametrize(
    "closes, message",
    [  # ';' files: "1.000" after 999 is one thousand; read as 1 it would be a 999-fold fall
        (["998", "999", "1.000", "1.001"], "from 999 on 2016-01-05 to 1 on 2016-01-06"),
        (["150,13", "149.994"], "from 150.13 on 2016-01-04 to 149994 on 2016-01-05"),
    ],
)
def test_a_price_that_jumps_500_fold_in_a_day_is_refused(tmp_path, closes, message):
    path = tmp_path / "p.csv"
    closes = closes + closes[-1:] * 20
    path.write_text("Date;Close\n" + dated("{day:%Y-%m-%d};{close}\n", closes))
    with pytest.raises(ValueError, match="check the decimal marks") as error:
        price_files.read_price_csv(path, "Date", "Close")
    assert message in str(error.value)


def test_dots_that_may_group_thousands_are_read_as_decimals_with_a_note(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("Date;Close\n" + dated("{day:%Y-%m-%d};3.0{close}\n", range(10, 50)))
    prices = price_files.read_price_csv(path, "Date", "Close")
    assert prices.iloc[0] == 3.01
    assert prices.attrs["notes"] == [
        "read '3.010' with a decimal point; if the dots group thousands, remove them"
    ]


def test_dates_written_yyyymmdd_are_named_as_such(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("Date,Close\n" + dated("{day:%Y%m%d},{close}\n", range(10, 50)))
    with pytest.raises(ValueError, match="look like dates written YYYYMMDD"):
        price_files.read_price_csv(path, "Date", "Close")


@pytest.mark.parametrize(
    "header, row, first",
    [
        ("Date;Close", '{day:%Y-%m-%d};"2.5{close},00"', 2510.0),  # European Excel
        ("Date;Close", "{day:%Y-%m-%d};1{close},95", 110.95),
        ("Date,Close", '{day:%Y-%m-%d},"2,5{close}.00"', 2510.0),
        ("Date,Close", "{day:%Y-%m-%d},${close}.28", 10.28),
        ("Date\tClose", "{day:%Y-%m-%d}\t{close}.5", 10.5),
    ],
)
def test_separators_decimal_marks_and_currency_signs(tmp_path, header, row, first):
    path = tmp_path / "p.csv"
    path.write_text(f"{header}\n" + dated(row + "\n", range(10, 50)))
    assert price_files.read_price_csv(path, "Date", "Close").iloc[0] == first


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            "{day:%s},{close}\n",
            "expected dates in column 'Date' such as 2024-01-31, 31/01/2024 or 01/31/2024; "
            "40 of 40 rows have none (first: '1451865600' in row 1); numbers there look like "
            "Unix times: convert them to dates",
        ),
        (
            "{day:%Y-%m-%d},{close} ms\n",
            "40 of 40 rows in 'Close' are empty, NaN or not numbers (first: '10 ms' in row 1, "
            "dated 2016-01-04)",
        ),
        (
            "{day:%Y-%m-%d} 09:{close},1{close}\n{day:%Y-%m-%d} 10:{close},2{close}\n",
            "expected one price per day in column 'Date'; received times of day, 80 rows sharing "
            "a date with another (first: '2016-01-04 09:10' in row 1); forecast works on daily "
            "prices",
        ),
    ],
)
def test_unreadable_rows_show_the_first_value_and_its_row(tmp_path, rows, message):
    path = tmp_path / "p.csv"
    path.write_text("Date,Close\n" + dated(rows, range(10, 50)))
    with pytest.raises(ValueError) as error:
        price_files.read_price_csv(path, "Date", "Close")
    assert message in str(error.value)


def test_an_empty_row_and_a_total_row_are_skipped_with_a_note(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "Date,Close\n" + dated("{day:%Y-%m-%d},{close}\n", range(10, 50)) + ",\nTotal,1180\n"
    )
    prices = price_files.read_price_csv(path, "Date", "Close")
    assert len(prices) == 40
    assert prices.attrs["notes"] == [
        "skipped 1 empty row(s)",
        "skipped the last row ('Total' holds no date)",
    ]


def test_a_workbook_given_as_csv_is_named(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(b"PK\x03\x04\x14\x00[Content_Types].xml")
    with pytest.raises(ValueError, match="received an Excel workbook \\(xlsx\\); export it as CSV"):
        price_files.read_price_csv(path, "Date", "Close")


def test_the_days_needed_give_enough_examples_and_one_fewer_does_not():
    needed = task.days_needed(30, 300, 0.15, 0.15)
    assert task.enough_examples(task.example_counts(needed, 30, 300, 0.15, 0.15))
    assert not task.enough_examples(task.example_counts(needed - 1, 30, 300, 0.15, 0.15))


# --- the task: examples, split, scores --------------------------------------------------------


def test_examples_are_log_returns_and_multi_day_targets_from_the_last_close():
    prices = pd.Series([100.0, 110, 99, 120, 130, 125])
    inputs, targets, origins = task.make_examples(prices, window=2, horizon=3)
    log = np.log(prices.to_numpy())
    assert inputs.shape == (1, 2, 1) and targets.shape == (1, 3, 1) and origins.tolist() == [2]
    np.testing.assert_allclose(inputs[0, :, 0], [log[1] - log[0], log[2] - log[1]])
    np.testing.assert_allclose(targets[0, :, 0], log[3:6] - log[2])


def test_split_puts_each_example_where_all_its_target_days_lie():
    origins = np.arange(0, 19)  # targets origin + 1 .. origin + 2 in 21 prices
    split, (train, validation, test) = task.split_examples(21, origins, 2, 0.25, 0.25)
    assert split[0] == slice(0, 11) and split[2] == slice(16, 21)
    assert origins[train].max() + 2 < 11 and origins[test].min() + 1 >= 16
    assert not (train & validation).any() and not (validation & test).any()
    assert (origins[validation] + 1 >= 11).all() and (origins[validation] + 2 < 16).all()


def test_evaluate_scores_persistence_and_drift_by_hand():
    prices = np.array([10.0, 11.0, 12.0, 11.0])
    origins, targets = np.array([1, 2]), np.log(np.array([[12.0 / 11], [11.0 / 12]]))[..., None]
    predicted = np.zeros((2, 1, 3))  # every quantile says "no change": the model is persistence
    table, rows, actual, _ = task.evaluate(
        prices, origins, targets, predicted, 0.0, prices[:2], targets
    )
    np.testing.assert_allclose(actual[:, 0], [12.0, 11.0])
    assert table["persistence"]["MAE"] == pytest.approx(1.0)
    assert table["model (median)"]["MAE"] == table["drift"]["MAE"] == pytest.approx(1.0)
    assert "did NOT beat persistence" in task.verdict(table, "LSTM")


def test_a_saved_model_that_disagrees_with_its_config_is_refused():
    model = task.build_model(5, 1, units=(4,))
    scaler = common.StandardScaler().fit(np.arange(10.0))
    task.check_saved_model(model, scaler, 5, 1)  # agrees: no error
    with pytest.raises(ValueError, match="window 6 and horizon 1, but model.keras reads 5 days"):
        task.check_saved_model(model, scaler, 6, 1)


# --- bad input: one line on stderr, exit status 2, nothing overwritten -------------------------


def gzip_half(path):
    """The first half of ``path`` gzipped: a truncated download."""
    import gzip

    data = gzip.compress(path.read_bytes())
    target = path.with_suffix(".csv.gz")
    target.write_bytes(data[: len(data) // 2])
    return target


def write_prices(path, closes):
    dates = pd.bdate_range("2000-01-03", periods=len(closes)).strftime("%Y-%m-%d")
    pd.DataFrame({"Date": dates, "Close": closes}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda tmp: ["--csv", tmp / "missing.csv"], "no such file"),
        (
            lambda tmp: [
                "--csv",
                write_prices(tmp / "p.csv", np.linspace(10, 20, 50)),
                "--target-col",
                "Adj Close",
            ],
            "no column 'Adj Close'; columns are Date, Close (choose with --target-col)",
        ),
        (
            lambda tmp: [
                "--csv",
                write_prices(tmp / "p.csv", [10.0, np.nan, 11.0, "n/a", 12.0] * 200),
            ],
            "400 of 1000 rows in 'Close' are empty, NaN or not numbers (first: an empty value in row 2",
        ),
        (
            lambda tmp: ["--csv", write_prices(tmp / "p.csv", np.linspace(10, 20, 60))],
            "too little data: 60 days",
        ),
        (
            lambda tmp: ["--csv", write_prices(tmp / "p.csv", [10.0, -1.0] * 300)],
            "zero or negative",
        ),
        (
            lambda tmp: ["--csv", write_prices(tmp / "p.csv", [5.0] * 400)],
            "constant series has nothing to forecast",
        ),
        (
            lambda tmp: [
                "--csv",
                write_prices(tmp / "p.csv", ["1e400"] + [5.0 + i / 100 for i in range(399)]),
            ],
            "1 prices in 'Close' are infinite or above 1e+100 (first: '1e400' in row 1",
        ),
        (  # finite, but their sums and a plot's axis overflow: a traceback from matplotlib
            lambda tmp: [
                "--csv",
                write_prices(tmp / "p.csv", [1.5e308 * (1 + i / 1e3) for i in range(400)]),
            ],
            "400 prices in 'Close' are infinite or above 1e+100",
        ),
        (
            lambda tmp: ["--csv", gzip_half(write_prices(tmp / "p.csv", np.linspace(10, 20, 400)))],
            "expected a gzip file; this one is damaged or cut short",
        ),
        (lambda tmp: ["--csv", tmp], "expected a file; received a folder"),
        (lambda tmp: ["--csv", "/dev/zero"], "received something that is not a regular file"),
        (
            lambda tmp: (
                ["--csv", write_prices(tmp / "p.csv", np.linspace(10, 20, 1500))]
                + ["--horizon", "300"]
            ),
            "1500 days give 720 training, 0 validation and 0 test examples for --window 30 "
            "--horizon 300 (need at least 100, 10 and 10); use about 2057 days (see --start, "
            "--end), or a smaller --horizon",
        ),
        (
            lambda tmp: (
                ["--csv", write_prices(tmp / "p.csv", np.linspace(10, 20, 400))]
                + ["--start", "2030-01-01"]
            ),
            "p.csv runs from 2000-01-03 to 2001-07-13",
        ),
        (
            lambda tmp: ["--start", "2010-01-01", "--end", "2009-01-01"],
            "--start 2010-01-01 is after --end 2009-01-01",
        ),
        (lambda tmp: ["--load", tmp / "no_run"], "no such folder"),
        (lambda tmp: ["--load", tmp], "no model.keras"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_app, tmp_path, make_args, message):
    status, out, err = run_app("forecast", *make_args(tmp_path))
    assert status == 2
    assert message in err, err
    assert err.startswith("forecast: error: ") and err.count("\n") == 1


def test_a_bad_date_option_is_one_line_before_any_work(run_app, capsys):
    with pytest.raises(SystemExit) as exit_info:
        forecast.main(["--start", "notadate"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "expected a date as YYYY-MM-DD, got 'notadate'" in err


def test_empty_csv_is_reported(run_app, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    status, _, err = run_app("forecast", "--csv", tmp_path / "empty.csv")
    assert status == 2 and "the file is empty" in err


def test_corrupt_model_is_reported_and_left_alone(quick_run, run_app, tmp_path):
    _, _, out = quick_run
    damaged = tmp_path / "run"
    damaged.mkdir()
    (damaged / "config.json").write_text((out / "config.json").read_text())
    (damaged / "model.keras").write_bytes(
        (out / "model.keras").read_bytes()[:2000]
    )  # a truncated download
    status, _, err = run_app("forecast", "--load", damaged)
    assert status == 2 and "model.keras" in err and err.count("\n") == 1
    assert (damaged / "model.keras").stat().st_size == 2000
    # A config.json edited by hand: a list where a column name belongs.
    shutil.copy(out / "model.keras", damaged / "model.keras")
    config = json.loads((out / "config.json").read_text()) | {"target_col": ["Close"]}
    (damaged / "config.json").write_text(json.dumps(config))
    status, _, err = run_app("forecast", "--load", damaged)
    assert status == 2 and "config.json is missing or damaged" in err, err


def test_a_failed_run_leaves_an_earlier_run_untouched(quick_run, run_app, tmp_path):
    _, _, out = quick_run
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    bad_csv = write_prices(tmp_path / "short.csv", np.linspace(10, 20, 60))
    status, _, _ = run_app("forecast", "--csv", bad_csv, "--out", out, "--overwrite")
    assert status == 2
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_help_explains_why_returns(run_app, capsys):
    with pytest.raises(SystemExit) as exit_info:
        forecast.main(["--help"])
    text = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "Why returns, not prices" in text and "--ticker" in text and "--horizon" in text
