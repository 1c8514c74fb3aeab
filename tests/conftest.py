"""Shared test fixtures.

Apps are modules of the ``apps`` package, so ``load_app("forecast")`` imports
``apps/forecast.py``; tests then call ``app.main([...])`` in-process, which is
fast (TensorFlow is imported once per test session) and lets a test read the
return code and the captured stderr.
"""

import contextlib
import importlib
import io
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FAST = False  # set in pytest_configure: the contributor's loop, python -m pytest -m "not slow"


def pytest_configure(config):
    global FAST
    FAST = "not slow" in (config.option.markexpr or "")


def examples(full):
    """Generated examples per hypothesis property: ``full`` in the whole suite, 10 in the fast
    tier (``-m "not slow"``), which still runs every property, only less deeply."""
    return min(full, 10) if FAST else full


def load_app(name):
    """The app ``apps/<name>.py``, imported as ``apps.<name>``."""
    return importlib.import_module(f"apps.{name}")


@pytest.fixture
def run_app(capsys):
    """Run an app's ``main(argv)``; return (exit status, stdout, stderr)."""

    def run(name, *argv):
        try:
            status = load_app(name).main([str(arg) for arg in argv])
        except SystemExit as exit:  # argparse ends a bad option (or --help) this way
            status = exit.code
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def call_app(app, *argv):
    """Run ``apps/<app>.py``'s main in-process: (exit status, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = load_app(app).main([str(arg) for arg in argv])
        except SystemExit as exit:  # argparse ends a bad option this way
            status = exit.code
    return status, stdout.getvalue(), stderr.getvalue()


# The one seeded --quick run of each app that the tests share (sentiment averages two networks).
QUICK_RUNS = {
    "forecast": ["--quick"],
    "sentiment": ["--quick", "--seeds", "2"],
    "textgen": ["--quick"],
    "anomaly": ["--quick"],
    "translate": ["--quick"],
    "speech": ["--quick"],
}


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory):
    """``quick_runs(app)``: (exit status, stdout, stderr, run folder) of the app's shared
    ``--quick --seed 3`` run, made the first time a test asks. Tests read it, never change it."""
    made = {}

    def run(app):
        if app not in made:
            out = tmp_path_factory.mktemp(f"{app}_quick") / "run"
            made[app] = (*call_app(app, *QUICK_RUNS[app], "--seed", "3", "--out", out), out)
        return made[app]

    return run
