"""Shared test fixtures.

Apps are scripts, not a package, so ``load_app("forecast")`` imports
``apps/forecast.py`` as a module; tests then call ``app.main([...])`` in-process,
which is fast (TensorFlow is imported once per test session) and lets a test
read the return code and the captured stderr.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def load_app(name):
    """Import ``apps/<name>.py`` once and return the module."""
    module_name = f"app_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, REPO / "apps" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


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
