"""The user contract, for every app, with generated bad input (hypothesis).

Whatever a careless user or a hostile file gives an app, ``main()`` either
works or ends with exit status 2 and exactly one line on stderr, never a
traceback; and a run saved earlier is byte-identical afterwards, with no
debris beside it. Examples are derandomized, so CI sees the same ones every
time; each app's suite takes a few seconds.
"""

import gzip
import math
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import call_app as call
from conftest import examples, load_app

APPS = ("forecast", "sentiment", "textgen", "anomaly", "translate", "speech")
FUZZ = settings(
    max_examples=int(os.environ.get("CONTRACT_EXAMPLES", examples(100))),  # more: a deeper search
    deadline=None,
    derandomize=True,  # the same examples on every run: CI never flakes
    database=None,  # and no .hypothesis folder in the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# The smallest runs that still save every file; each contract test starts from one.
SAVE = {
    "forecast": ["--quick", "--epochs", "1"],
    "sentiment": ["--quick", "--epochs", "1"],
    "textgen": ["--quick", "--epochs", "1"],
    "anomaly": ["--detector", "zscore"],
    "translate": ["--quick"],
    "speech": ["--quick"],
}


def slow(value):
    """A parameter that runs in the whole suite only (``-m "not slow"`` leaves it out)."""
    return pytest.param(value, marks=pytest.mark.slow)


def snapshot(folder):
    """Every file under ``folder`` with its bytes and permission mode."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mode)
        for path in sorted(Path(folder).rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def saved(quick_runs, tmp_path_factory):
    """One saved run per app, each alone in its own folder: ``{app: run folder}``; the apps'
    shared --quick runs (conftest.quick_runs), and for anomaly the fastest detector's run."""

    class Runs(dict):  # made when a test first asks: the fast tier never trains translate's
        def __missing__(self, app):
            if app == "anomaly":
                run = tmp_path_factory.mktemp("anomaly") / "run"
                status, _, err = call("anomaly", *SAVE["anomaly"], "--seed", "1", "--out", run)
            else:
                status, _, err, run = quick_runs(app)
            assert status == 0, err
            self[app] = run
            return run

    return Runs()


def assert_contract(status, err, run, before, extra=()):
    """Exit 2, one line on stderr, no traceback, the saved run untouched, nothing beside it."""
    assert status == 2, err
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and ": error: " in err, err
    assert snapshot(run) == before
    assert sorted(path.name for path in run.parent.iterdir()) == sorted(["run", *extra])


# ---------------------------------------------------------------- generated bad input

JUNK_VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "", " ", "0x10", "1_0", "--", "-", "٣"]),
)


def is_int(text, low=1, high=math.inf):
    try:
        return low <= int(text) <= high
    except ValueError:
        return False


def is_float(text, low, high, high_open=True):
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and low <= value and (value < high if high_open else value <= high)


positive = is_int
seed = lambda text: is_int(text, 0, 2**32 - 1)  # noqa: E731
VALID = {  # option -> which values the app accepts; the fuzzer draws the others
    "forecast": {
        "--window": positive,
        "--horizon": positive,
        "--units": positive,
        "--epochs": positive,
        "--batch-size": positive,
        "--seed": seed,
        "--dropout": lambda text: is_float(text, 0, 1),
        "--val-fraction": lambda text: is_float(text, 0, 0.85) and float(text) > 0,
        "--start": lambda text: False if len(text) != 10 else text[4] == "-",
    },
    "sentiment": {
        "--units": positive,
        "--embedding-dim": positive,
        "--max-tokens": lambda text: is_int(text, 34),
        "--max-length": positive,
        "--seeds": positive,
        "--seed": seed,
        "--learning-rate": lambda text: is_float(text, 0, math.inf) and float(text) > 0,
        "--dropout": lambda text: is_float(text, 0, 1),
    },
    "textgen": {
        "--units": positive,
        "--seq-length": positive,
        "--steps-per-epoch": positive,
        "--temperature": lambda text: is_float(text, 0, math.inf) and float(text) > 0,
        "--top-k": lambda text: is_int(text, 0),
        "--minutes": lambda text: is_float(text, 0, math.inf),
        "--seed": seed,
        "--generate": positive,
        "--samples": positive,
    },
    "anomaly": {
        "--window": positive,
        "--units": positive,
        "--max-alarms": positive,
        "--false-alarms": lambda text: is_float(text, 0, math.inf) and float(text) > 0,
        "--seed": seed,
        "--train-fraction": lambda text: is_float(text, 0, 1) and float(text) > 0,
    },
    "translate": {
        "--units": positive,
        "--embedding-dim": positive,
        "--max-tokens": lambda text: is_int(text, 5),
        "--seed": seed,
        "--learning-rate": lambda text: is_float(text, 0, math.inf) and float(text) > 0,
        "--dropout": lambda text: is_float(text, 0, 1),
        "--minutes": lambda text: is_float(text, 0, math.inf) and float(text) > 0,
        "--beam-width": positive,
        "--length-penalty": lambda text: is_float(text, 0, 5, high_open=False),
        "--direction": lambda text: (
            len(text.split("-")) == 2
            and text.islower()
            and (text.split("-")[0] == "eng") != (text.split("-")[1] == "eng")
            and all(
                2 <= len(code) <= 3 and code.isascii() and code.isalpha()
                for code in text.split("-")
            )
        ),
    },
    "speech": {
        "--units": positive,
        "--strings": positive,
        "--epochs": positive,
        "--batch-size": positive,
        "--seed": seed,
        "--learning-rate": lambda text: is_float(text, 0, math.inf) and float(text) > 0,
        "--dropout": lambda text: is_float(text, 0, 1),
        "--minutes": lambda text: is_float(text, 0, math.inf) and float(text) > 0,
        "--beam-width": positive,
        "--test-speaker": lambda text: text in ("george", "jackson", "nicolas", "theo", "yweweler"),
    },
}

# The fast tier fuzzes the four apps whose --quick run takes seconds.
FUZZED_APPS = [slow(app) if app in ("translate", "speech") else app for app in APPS]


@pytest.mark.parametrize("app", FUZZED_APPS)
@FUZZ
@given(data=st.data())
def test_a_bad_option_value_is_one_line_and_the_saved_run_is_untouched(app, saved, data):
    option = data.draw(st.sampled_from(sorted(VALID[app])), label="option")
    value = data.draw(JUNK_VALUES, label="value")
    assume(not VALID[app][option](value))
    run = saved[app]
    before = snapshot(run)
    # --overwrite: only the check of the bad value stands between this call and the saved run.
    status, _, err = call(app, *SAVE[app], f"{option}={value}", "--out", run, "--overwrite")
    assert_contract(status, err, run, before)


def csv_text(draw, columns, rows, cells):
    header = draw(st.lists(st.sampled_from(columns), min_size=1, max_size=4))
    separator = draw(st.sampled_from([",", "\t", ";"]))
    lines = [separator.join(header)]
    for _ in range(draw(st.integers(0, rows))):
        width = draw(st.integers(0, len(header) + 1))
        lines.append(separator.join(draw(cells) for _ in range(width)))
    return "\n".join(lines)


CELLS = st.one_of(
    st.sampled_from(["2020-01-02", "2020-13-45", "01/02/2020", "NaN", "inf", "-1", "0", "1e400"]),
    st.sampled_from(
        ["pos", "negative", "1", "0", "fresh", "", '"', "\\N", "2020-01-02T00:00+01:00"]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=10),
)


@st.composite
def hostile_file(draw, columns, rows):
    """Bytes of a small CSV-like file, raw junk, or either gzipped (whole or truncated)."""
    kind = draw(st.sampled_from(["csv", "bytes", "gzip", "truncated gzip"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300)), ".csv"
    content = csv_text(draw, columns, rows, CELLS).encode(
        draw(st.sampled_from(["utf-8", "latin-1", "utf-16"])), errors="replace"
    )
    if kind == "csv":
        return content, draw(st.sampled_from([".csv", ".tsv", ".txt"]))
    packed = gzip.compress(content)
    return (packed if kind == "gzip" else packed[: len(packed) // 2]), ".csv.gz"


# Each app's data option, the columns its files use, and few enough rows to be always refused.
DATA_FILES = {
    "forecast": ("--csv", ["Date", "Close", "Open", "Price", "x", ""], 25),
    "sentiment": ("--data", ["text", "label", "split", "review", ""], 15),
    "textgen": ("--text", ["ROMEO", "text", ""], 8),
    "anomaly": ("--csv", ["timestamp", "value", "is_anomaly", "x", ""], 14),
    "translate": ("--data", ["Go.", "Ve.", "¿Qué?", "x", ""], 15),
}


@pytest.mark.parametrize(
    "app", [app for app in FUZZED_APPS if getattr(app, "values", [app])[0] in DATA_FILES]
)
@FUZZ
@given(data=st.data())
def test_a_hostile_data_file_is_one_line_and_the_saved_run_is_untouched(
    app, saved, tmp_path_factory, data
):
    option, columns, rows = DATA_FILES[app]
    content, suffix = data.draw(hostile_file(columns, rows), label="file")
    folder = tmp_path_factory.mktemp("hostile")
    path = folder / f"input{suffix}"
    path.write_bytes(content)
    run = saved[app]
    before = snapshot(run)
    status, _, err = call(app, *SAVE[app], option, path, "--out", run, "--overwrite")
    assert_contract(status, err, run, before)
    assert path.read_bytes() == content  # the input is never touched either


@FUZZ
@given(labels=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_a_hostile_labels_file_works_or_is_one_line(saved, tmp_path_factory, labels):
    folder = tmp_path_factory.mktemp("labels")
    csv = folder / "cpu.csv"
    csv.write_text(
        "timestamp,value\n"
        + "".join(f"2024-01-01 {hour:02d}:00,{(hour * 7) % 11}\n" for hour in range(24))
    )
    (folder / "labels.json").write_bytes(labels)
    run = saved["anomaly"]
    before = snapshot(run)
    status, _, err = call(
        "anomaly",
        "--detector",
        "zscore",
        "--csv",
        csv,
        "--labels",
        folder / "labels.json",
        "--out",
        folder / "new",
    )
    assert snapshot(run) == before
    if status == 0:
        assert (folder / "new" / "metrics.json").is_file()
    else:
        assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert sorted(path.name for path in folder.iterdir()) == ["cpu.csv", "labels.json"]


@pytest.mark.parametrize(
    "app, option",
    [
        ("sentiment", "--predict"),
        ("textgen", "--prompt"),
        pytest.param("translate", "--translate", marks=pytest.mark.slow),
    ],
)
@settings(FUZZ, max_examples=10)
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_a_saved_model_reads_any_text_or_says_why_not(app, option, saved, texts):
    """sentiment --predict, textgen --prompt and translate --translate with any characters:
    output, or one line."""
    run = saved[app]
    before = snapshot(run)
    argv = [texts[0], "--generate", "5"] if app == "textgen" else [*texts]
    status, out, err = call(app, "--load", run, option, *argv)
    assert snapshot(run) == before
    if status == 0:
        assert out.strip()
    else:
        assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err


# ---------------------------------------------------------------- a save that fails midway


# A full disk for every app (the fast tier keeps the two that train in a second); Ctrl-C for
# one: every app saves through the same run_folder, whose cleanup the full disk already tests.
@pytest.mark.parametrize(
    "app, failure",
    [
        (app, OSError(28, "No space left on device"))
        if app in ("forecast", "anomaly")
        else pytest.param(app, OSError(28, "No space left on device"), marks=pytest.mark.slow)
        for app in APPS
    ]
    + [pytest.param("forecast", KeyboardInterrupt(), marks=pytest.mark.slow)],
)
def test_a_save_failing_midway_leaves_the_earlier_run_intact(app, failure, saved, monkeypatch):
    """The disk fills up (or Ctrl-C arrives) after the model is written: nothing changes."""
    run = saved[app]  # first: the shared run is made, if no test made it yet, before the patch
    module = load_app(app)
    original = module.write_json

    def write_json_then_fail(path, *args, **kwargs):
        original(path, *args, **kwargs)  # one more file is half the run: then the failure
        assert Path(path).parent != run  # never written into the earlier run
        raise failure

    monkeypatch.setattr(module, "write_json", write_json_then_fail)
    before = snapshot(run)
    status, _, err = call(app, *SAVE[app], "--seed", "2", "--out", run, "--overwrite")
    if isinstance(failure, KeyboardInterrupt):
        assert status == 130 and err == "interrupted; nothing was saved\n"
    else:
        assert status == 2 and err.count("\n") == 1 and "No space left" in err, err
    assert snapshot(run) == before
    assert [path.name for path in run.parent.iterdir()] == ["run"]  # no .partial debris


def test_overwrite_replaces_a_run_whole_with_one_permission_mode(saved, tmp_path):
    """--overwrite swaps in the complete new run; the old one's files do not linger."""
    from common.cli import runs

    run = tmp_path / "run"
    shutil.copytree(saved["forecast"], run)
    (run / "notes.txt").write_text("a file the old run wrote and the new one does not")
    runs._write_marker(run, "forecast")  # listed as the run's own (a user's would be refused)
    status, _, err = call("forecast", *SAVE["forecast"], "--seed", "2", "--out", run, "--overwrite")
    assert status == 0, err
    names = sorted(path.name for path in run.iterdir())
    assert "notes.txt" not in names and "model.keras" in names
    assert len({path.stat().st_mode for path in run.iterdir()}) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]


# ---------------------------------------------------------------- found by attacking the apps


def price_rows(dates, prices):
    return "".join(f"{date},{price}\n" for date, price in zip(dates, prices))


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("found")
    days = [f"{month:02d}/{day:02d}/2015" for month in range(1, 13) for day in range(1, 29)]
    prices = [50 + (i % 7) + i / 30 for i in range(len(days))]
    files = {
        "dupcol.csv": "Date,Close,Close\n"
        + "".join(f"2015-01-{d:02d},1,1\n" for d in range(1, 29)),
        "truncated_yfinance.csv": "Price,Close\nTicker,AAPL\n",
        "corrupt.txt.gz": None,
        "y9999.csv": "timestamp,value\n9999-12-31 23:59:59,1\n"
        + "".join(f"2020-01-01 {hour:02d}:00:00,{hour}\n" for hour in range(24)),
        "few_words.csv": "text,label\n" + "good film,1\nbad film,0\n" * 100,
        "no_words.csv": "text,label\n" + "😀 😀,1\n😡,0\n" * 100,
        "one_column.tsv": "Go.\n" * 200,
        "few_pairs.tsv": "Go.\tVe.\n" * 99,
        "clock_only.csv": "timestamp,value\n" + "".join(f"{h:02d}:00,{h}\n" for h in range(24)),
        "labelled.csv": "timestamp,value,is_anomaly\n"
        + "".join(f"2020-01-01 {h:02d}:00:00,{h},0\n" for h in range(24)),
        "nul.csv": "Date,Close\x00\n" + "".join(f"2015-01-{d:02d},1\n" for d in range(1, 29)),
        "repeated_text.csv": "text,label,text\n" + "id,1,good film\nid,0,bad film\n" * 20,
        "blank.txt": " \n\t\n" * 1000,
        "pipes/a.csv": "timestamp,value\n" + "".join(f"{h},{h}\n" for h in range(100)),
    }
    (folder / "pipes").mkdir()
    os.mkfifo(folder / "pipes" / "z.csv")  # opening it would wait for a writer for ever
    for name, content in files.items():
        if content is not None:
            (folder / name).write_text(content)
    packed = bytearray(gzip.compress(("To be, or not to be. " * 4000).encode()))
    packed[40:60] = bytes(20)  # a valid header, a damaged body
    (folder / "corrupt.txt.gz").write_bytes(bytes(packed))
    offsets = [f"{day} 00:00{'+01:00' if i % 2 else '+02:00'}" for i, day in enumerate(days)]
    (folder / "offsets.csv").write_text("Date,Close\n" + price_rows(offsets, prices))
    return folder


FOUND = {  # app, arguments (FILE/ is the folder above), the line it must print
    "duplicated column": ("forecast", ["--csv", "FILE/dupcol.csv"], "appears more than once"),
    "truncated yfinance header": (
        "forecast",
        ["--csv", "FILE/truncated_yfinance.csv"],
        "no data rows",
    ),
    "empty ticker": ("forecast", ["--ticker", ""], "--ticker needs a symbol"),
    "huge units": ("forecast", ["--units", "10000000"], "from 1 to 4,096"),
    "huge batch": ("sentiment", ["--batch-size", "100000000000"], "from 1 to 65,536"),
    "too few words": ("sentiment", ["--data", "FILE/few_words.csv"], "only 3 distinct words"),
    "no words": ("sentiment", ["--data", "FILE/no_words.csv", "--pretrain", "none"], "no words"),
    "damaged gzip body": ("textgen", ["--text", "FILE/corrupt.txt.gz"], "expected a gzip file"),
    "too many samples": ("textgen", ["--samples", "100000000"], "from 1 to 1,024"),
    "year 9999": ("anomaly", ["--csv", "FILE/y9999.csv"], "expected roughly regular times"),
    "one column": ("translate", ["--data", "FILE/one_column.tsv"], "line 1 has one: 'Go.'"),
    "few pairs": ("translate", ["--data", "FILE/few_pairs.tsv"], "at least 100 sentence pairs"),
    "only Spanish": ("translate", ["--direction", "spa-fra"], "from or to English"),
    "French without a file": ("translate", ["--direction", "fra-eng"], "give other languages'"),
    "nan penalty": ("translate", ["--length-penalty", "nan"], "between 0 and 5"),
    # Found by the third attack (a stranger's inputs; issue 27).
    "prices in the date column": ("forecast", ["--target-col", "Date"], "both name the column"),
    "NUL bytes": ("forecast", ["--csv", "FILE/nul.csv"], "received NUL bytes (UTF-16 text"),
    "clock times only": ("anomaly", ["--csv", "FILE/clock_only.csv"], "a time of day alone"),
    "labels as values": (
        "anomaly",
        ["--csv", "FILE/labelled.csv", "--value-col", "is_anomaly", "--label-col", "is_anomaly"],
        "received 'is_anomaly', the label column",
    ),
    "columns of no file": ("anomaly", ["--value-col", "cpu"], "only for --csv files"),
    "a pipe in a folder": ("anomaly", ["--csv", "FILE/pipes"], "received a named pipe"),
    "repeated heading": (
        "sentiment",
        ["--data", "FILE/repeated_text.csv"],
        "expected one column named 'text'; the file has several",
    ),
    "blank text": ("textgen", ["--text", "FILE/blank.txt"], "holds only spaces and line breaks"),
}


@pytest.mark.parametrize(
    "case", [slow(case) if FOUND[case][0] == "translate" else case for case in sorted(FOUND)]
)
def test_what_attacking_the_apps_found_is_one_line(case, saved, hostile_files):
    app, argv, message = FOUND[case]
    argv = [arg.replace("FILE", str(hostile_files)) for arg in argv]
    run = saved[app]
    before = snapshot(run)
    status, _, err = call(app, *SAVE[app], *argv, "--out", run, "--overwrite")
    assert_contract(status, err, run, before)
    assert message in err, err


def test_dates_with_utc_offsets_keep_their_calendar_day(hostile_files):
    from common.data.prices import read_price_csv

    prices = read_price_csv(hostile_files / "offsets.csv", "Date", "Close")
    assert str(prices.index[0].date()) == "2015-01-01" and prices.index.is_monotonic_increasing


def test_a_non_utf8_prediction_text_is_one_line(saved):
    status, _, err = call("sentiment", "--load", saved["sentiment"], "--predict", "fine", "\udcff")
    assert status == 2 and err == "sentiment: error: --predict: text 2 is not UTF-8 text\n"


def test_an_out_folder_name_with_a_line_break_is_refused_before_training(tmp_path):
    pasted = tmp_path / "run\n2"  # it would split every line that names the folder
    status, _, err = call("forecast", "--quick", "--out", pasted)
    assert status == 2 and err.count("\n") == 1 and not pasted.exists()
    assert err.startswith(f"forecast: error: --out {str(pasted)!r}: expected a folder name without")


@pytest.mark.slow  # two more training runs
def test_a_diverging_run_says_so_in_one_line(saved, tmp_path):
    for app in ("sentiment", "textgen"):
        status, _, err = call(app, *SAVE[app], "--learning-rate", "1e308", "--out", tmp_path / app)
        assert status == 2 and "training diverged" in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / app).exists()


def test_out_of_memory_is_one_line(monkeypatch, saved):
    import tensorflow as tf

    module = load_app("anomaly")

    def exhausted(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(module, "read_config", exhausted)
    status, _, err = call("anomaly", "--detector", "zscore", "--out", saved["anomaly"].parent / "x")
    assert status == 2 and err == (
        "anomaly: error: out of memory; try smaller sizes (--units, --batch-size, ...)\n"
    )


@pytest.mark.slow  # a training run of its own
def test_a_default_prompt_that_does_not_fit_the_text_is_replaced(tmp_path):
    text = tmp_path / "lower.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 3000)
    status, out, err = call("textgen", *SAVE["textgen"], "--text", text, "--out", tmp_path / "r")
    assert status == 0, err
    assert "--prompt: the default 'Romeo.\\n' does not fit this text; using 'the quick" in out


@pytest.mark.parametrize(
    "app, argv, named",
    [
        ("forecast", ["--horizon", "5", "--cell", "gru"], "--cell, --horizon"),
        ("sentiment", ["--predict", "fine", "--units", "8"], "--units"),
        ("textgen", ["--out", "elsewhere"], "--out"),
        ("anomaly", ["--window", "10"], "--window"),
        pytest.param(
            "translate", ["--translate", "Hola.", "--units", "8"], "--units", marks=pytest.mark.slow
        ),
        pytest.param(
            "speech",
            ["--wav", "a.wav", "--test-speaker", "theo"],
            "--test-speaker",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_options_a_loaded_run_would_ignore_are_refused(app, argv, named, saved, tmp_path):
    before = snapshot(saved[app])
    status, _, err = call(app, "--load", saved[app], *argv)
    assert status == 2 and err.count("\n") == 1, err
    assert f"{named}: not used with --load, which keeps the saved run's settings" in err
    assert snapshot(saved[app]) == before and not (tmp_path / "elsewhere").exists()
