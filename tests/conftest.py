"""Shared test fixtures.

Apps are modules of the ``apps`` package, so ``load_app("forecast")`` imports
``apps/forecast.py``; tests then call ``app.main([...])`` in-process, which is
fast (TensorFlow is imported once per test session) and lets a test read the
return code and the captured stderr.
"""

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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
