"""What every command-line app shares: options, run folders, and clean errors.

A user mistake (a missing file, a wrong column, too little data) should cost
the user one readable line, not a traceback.  Apps raise :class:`UserError` for
those, and :func:`report_user_errors` turns it into ``app: error: ...`` on
stderr and exit status 2, the status ``argparse`` uses for bad options.  A bug
still shows its traceback, because that is what a bug report needs.
"""

import argparse
import functools
import os
import sys
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

EXIT_USER_ERROR = 2


class UserError(ValueError):
    """Bad input from the user: reported as one line on stderr, exit status 2."""


def report_user_errors(main):
    """Decorate ``main(argv=None)``: a :class:`UserError` prints one line and returns 2."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UserError as error:
            program = Path(main.__code__.co_filename).stem
            print(f"{program}: error: {error}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper


def common_parser(epochs=20, batch_size=64, app="app"):
    """Options every app takes; pass as ``parents=[common_parser(...)]``.

    Defaults are the app's own, so ``--help`` shows the real values.
    """
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("training and output")
    group.add_argument("--epochs", type=positive_int, default=epochs, help="most passes over the training data; early stopping may end sooner (default: %(default)s)")
    group.add_argument("--batch-size", type=positive_int, default=batch_size, help="examples per gradient step (default: %(default)s)")
    group.add_argument("--seed", type=int, default=42, help="random seed, for a run you can repeat (default: %(default)s)")
    group.add_argument("--quick", action="store_true", help="tiny data and few epochs: a smoke test in seconds, for tests and CI")
    group.add_argument("--out", type=Path, default=None, help=f"folder for the model, metrics and plots (default: runs/{app}/<timestamp>/)")
    return parser


def app_parser(doc, app, epochs, batch_size):
    """An app's argument parser: its docstring as help, plus the options every app takes.

    The docstring's first paragraph is the description; everything after the
    second paragraph (the usage examples) is the epilog, kept as written.
    """
    return argparse.ArgumentParser(
        prog=f"{app}.py",
        description=doc.split("\n\n")[0],
        epilog=doc.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_parser(epochs=epochs, batch_size=batch_size, app=app)],
    )


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def run_dir(out, app):
    """The folder a run writes to: ``out``, or ``runs/<app>/<timestamp>/``. Created if needed."""
    path = Path(out) if out is not None else Path("runs") / app / datetime.now().strftime("%Y%m%d-%H%M%S")
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_model_atomically(model, path):
    """Save a ``.keras`` file so an interrupted save never leaves a half-written model.

    Keras writes to a temporary file beside ``path``; only a complete file
    replaces what was there.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(suffix=".keras", dir=path.parent)
    os.close(handle)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def load_model_from_dir(directory, filename="model.keras"):
    """Load ``directory/model.keras``, turning a missing or corrupt file into a :class:`UserError`."""
    import keras

    path = Path(directory) / filename
    if not Path(directory).is_dir():
        raise UserError(f"--load {directory}: no such folder")
    if not path.is_file():
        raise UserError(f"--load {directory}: no {filename} in that folder")
    if not zipfile.is_zipfile(path):
        raise UserError(f"--load {directory}: {filename} is damaged (not a .keras zip archive)")
    try:
        return keras.models.load_model(path)
    except Exception as error:  # Keras raises many types for a damaged zip/h5/config
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise UserError(f"--load {directory}: {filename} could not be read ({reason})") from None
