"""What every command-line app shares: options, run folders, and clean errors.

A user mistake (a missing file, a wrong column, too little data) should cost
the user one readable line, not a traceback.  Apps raise :class:`UserError` for
those, and :func:`report_user_errors` turns it into ``app: error: ...`` on
stderr and exit status 2, the status ``argparse`` uses for bad options.  A bug
still shows its traceback, because that is what a bug report needs.
"""

import argparse
import contextlib
import functools
import itertools
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

EXIT_USER_ERROR = 2
EXIT_TRY_AGAIN = (
    75  # sysexits' EX_TEMPFAIL: a multi-worker run lost a worker; run it again to resume
)


class UserError(ValueError):
    """Bad input from the user: reported as one line on stderr, exit status 2."""


def report_user_errors(main):
    """Decorate ``main(argv=None)``: a :class:`UserError` prints one line and returns 2.

    So do the machine's limits: a disk that cannot be written (``OSError``) and
    memory that runs out (``MemoryError``, TensorFlow's ``ResourceExhaustedError``).
    Ctrl-C prints "interrupted; nothing was saved" and returns 130. A multi-worker
    run that lost a worker says how to resume and returns 75 (try again).
    """

    @functools.wraps(main)
    def wrapper(argv=None):
        program = Path(main.__code__.co_filename).stem
        _restore_ctrl_c()
        try:
            return main(argv)
        except UserError as error:
            return _one_line_error(program, error)
        except KeyboardInterrupt:
            print("interrupted; nothing was saved", file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader went away (``| head``): nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except OSError as error:  # the disk, not the code: full, removed, read-only
            where = f": {error.filename}" if error.filename else ""
            reason = error.strerror or error
            return _one_line_error(program, f"could not read or write{where} ({reason})")
        except Exception as error:
            if type(error).__name__ == "WorkerLost":  # common.distribute: a cluster lost a machine
                print(f"{program}: error: {one_line(error)}", file=sys.stderr)
                return EXIT_TRY_AGAIN
            if (
                type(error).__name__ == "ResumeError"
            ):  # common.training: checkpoints that do not fit
                return _one_line_error(program, error)
            if not isinstance(error, MemoryError) and type(error).__name__ != (
                "ResourceExhaustedError"  # TensorFlow's out of memory
            ):
                raise  # a bug: its traceback is what a bug report needs
            return _one_line_error(
                program, "out of memory; try smaller sizes (--units, --batch-size, ...)"
            )

    return wrapper


def _one_line_error(program, message):
    print(f"{program}: error: {one_line(message)}", file=sys.stderr)
    return EXIT_USER_ERROR


def _restore_ctrl_c():
    """Give Ctrl-C back to Python (KeyboardInterrupt) once ``main`` runs.

    An app run as a script handles Ctrl-C itself while TensorFlow loads (one
    line, no traceback); from ``main`` on, ``KeyboardInterrupt`` lets ``finally``
    blocks clean up.
    """
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def one_line(message):
    """``message`` as one line: a file name or a value holding a line break cannot split it.

    >>> one_line("no column 'a\\nb'")
    "no column 'a\\\\nb'"
    """
    text = str(message).replace("\r", "\\r").replace("\n", "\\n")
    # Bytes that are not UTF-8 reach Python as surrogates; show them as \udcff, not a crash.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class RunOptions:
    """What every app's options hold (see :func:`common_parser`); each app's ``Config`` extends it.

    Frozen: once read and checked, a run's options do not change under it.
    """

    epochs: int = 20
    batch_size: int = 64
    seed: int = 42
    load: Path | None = None
    out: Path | None = None
    overwrite: bool = False
    quick: bool = False
    distribute: str = "none"  # see common.distribute
    mixed_precision: bool = False
    progress: int = 0  # Keras' verbose: a progress bar in a terminal, else one line per epoch

    @classmethod
    def from_args(cls, args, **converted):
        """The config of parsed ``args``; ``converted`` gives values that need changing (lists)."""
        from common.training import progress_verbosity

        given = vars(args) | {"progress": progress_verbosity()} | converted
        return cls(**{name: given[name] for name in cls.__dataclass_fields__})

    def fingerprint(self):
        """The settings that make a run what it is, as text: a checkpoint from other settings is not resumed."""
        ignored = {"progress", "overwrite"}  # how a run reports or saves, not what it trains
        settings = {name: str(value) for name, value in vars(self).items() if name not in ignored}
        return json.dumps(settings, sort_keys=True)


def common_parser(epochs=20, batch_size=64, app="app"):
    """Options every app takes; pass as ``parents=[common_parser(...)]``.

    Defaults are the app's own, so ``--help`` shows the real values.
    """
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("training and output")
    group.add_argument(
        "--epochs",
        type=positive_int,
        default=epochs,
        help="most passes over the training data; early stopping may end sooner (default: %(default)s)",
    )
    group.add_argument(
        "--batch-size",
        type=positive_int_up_to(65536),
        default=batch_size,
        help="examples per gradient step (default: %(default)s)",
    )
    group.add_argument(
        "--seed",
        type=seed_int,
        default=42,
        help="random seed 0 to 2**32 - 1, for a run you can repeat (default: %(default)s)",
    )
    group.add_argument(
        "--quick",
        action="store_true",
        help="tiny data and few epochs: a smoke test in seconds, for tests and CI",
    )
    group.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"new folder for the model, metrics and plots (default: runs/{app}/<time>-<process>/)",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out folder, once the new run is complete",
    )
    scaling = parser.add_argument_group('scaling out (see the README\'s "Scaling out")')
    scaling.add_argument(
        "--distribute",
        choices=("none", "mirrored", "multiworker"),
        default="none",
        help="data-parallel training: none (one device), mirrored (every local GPU, or the CPU "
        "split into two devices), multiworker (the machines in TF_CONFIG; needs --out, "
        "and resumes from its last epoch if restarted) (default: %(default)s)",
    )
    scaling.add_argument(
        "--mixed-precision",
        action="store_true",
        help="compute in float16 and keep float32 weights: faster on GPUs with tensor cores; "
        "needs a GPU",
    )
    return parser


def start_distribution(config):
    """The :class:`common.distribute.Distribution` for ``config``; call before TensorFlow runs anything."""

    from common import distribute

    if config.load is not None:  # a saved model is used and nothing is trained: one device
        return distribute.setup("none")
    backup = backup_folder(config.out)
    if config.distribute == "multiworker" and (
        backup.is_symlink() or (backup.exists() and not backup.is_dir())
    ):  # checkpoints go only into a real folder of their own
        raise UserError(f"--out {config.out}: {backup} exists and is not a folder of checkpoints")
    wait = 300.0  # seconds for every worker of a cluster to start
    if config.distribute == "multiworker":
        try:  # NaN would wait for ever, like no limit at all
            wait = positive_float(os.environ.get("RNN_WORKSHOP_WAIT_SECONDS", "300"))
        except argparse.ArgumentTypeError as error:
            raise UserError(f"RNN_WORKSHOP_WAIT_SECONDS: {error}") from None
    try:
        distribution = distribute.setup(
            config.distribute, config.mixed_precision, backup=backup,
            fingerprint=config.fingerprint(), wait_seconds=wait,
        )  # fmt: skip
    except ValueError as error:
        raise UserError(f"--distribute {config.distribute}: {error}") from None
    if distribution.workers > 1:  # TensorFlow's cluster takes SIGTERM over; stop cleanly instead
        _raise_on_sigterm()
    return distribution


def finish_worker(distribution):
    """End a worker other than the chief: it trained its share, and the chief saves the run. Returns 0."""
    print(
        f"\nWorker {distribution.worker_index} of {distribution.workers}: training done; "
        "worker 0 saves the run"
    )
    distribution.finish()  # waits for the chief's run folder, then deletes the checkpoints
    return 0


def backup_folder(out):
    """Where a multi-worker run keeps its per-epoch checkpoints: ``<out>.backup`` beside the run."""
    out = Path(out)
    return out.with_name(out.name + ".backup")


def app_parser(doc, app, epochs, batch_size):
    """An app's argument parser: its docstring as help, plus the options every app takes.

    The docstring's first paragraph is the description; everything after the
    second paragraph (the usage examples) is the epilog, kept as written.
    """
    return OneLineErrorParser(
        prog=f"{app}.py",
        allow_abbrev=False,  # --quick must know which options were typed; no abbreviations
        description=doc.split("\n\n")[0],
        epilog=doc.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_parser(epochs=epochs, batch_size=batch_size, app=app)],
    )


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and a pointer to ``--help``, not the usage block."""

    def parse_known_args(self, args=None, namespace=None):
        # argparse (before Python 3.12) turns "--window=--" into an empty list that no type
        # function sees; refuse it here like any other bad value.
        for arg in sys.argv[1:] if args is None else args:
            if isinstance(arg, str) and arg.startswith("--") and arg.endswith("=--"):
                self.error(f"argument {arg[:-3]}: expected a value, got '--'")
        namespace, extras = super().parse_known_args(args, namespace)
        if getattr(namespace, "mixed_precision", False):
            import tensorflow as tf

            if not tf.config.list_physical_devices("GPU"):
                self.error("argument --mixed-precision: needs a GPU (float16 on a CPU is slower)")
        trains = not (getattr(namespace, "load", None) or getattr(namespace, "predict", None))
        if getattr(namespace, "distribute", None) == "multiworker" and trains:
            if getattr(namespace, "out", None) is None:  # every worker must find the same run again
                self.error(
                    "argument --distribute multiworker: needs --out DIR, the same on every "
                    "worker, so that a restarted run finds its checkpoints"
                )
        return namespace, extras

    def error(self, message):
        self.exit(
            EXIT_USER_ERROR,
            f"{self.prog.removesuffix('.py')}: error: {one_line(message)} (see --help)\n",
        )


def positive_int(text, limit=10**6):
    """An integer from 1 to ``limit``: sizes beyond it exhaust memory before they mean anything."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not 1 <= value <= limit:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {limit:,}, got {text}")
    return value


def positive_int_up_to(limit):
    """``positive_int`` with its own ``limit``, for an option such as ``--units`` (memory grows fast)."""

    def checked(text):
        return positive_int(text, limit)

    return checked


def positive_float(text):
    """A finite number above 0: ``nan``, ``inf`` and ``-1`` are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return value


def dropout_rate(text):
    """A dropout rate: a number from 0 up to, but not including, 1 (``nan`` is refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def seed_int(text):
    """A random seed NumPy and TensorFlow both accept: an integer from 0 to 2**32 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to 4294967295, got {text}")
    return value


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


def saved_by(directory):
    """The app that saved the run in ``directory`` (its ``config.json``'s ``"app"``), or None."""
    try:
        return json.loads((Path(directory) / "config.json").read_text()).get("app")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


def load_model_from_dir(directory, filename="model.keras", app=None):
    """Load ``directory/model.keras``, turning a missing or corrupt file into a :class:`UserError`.

    With ``app``, a run saved by another app is refused, naming that app.
    """
    import keras

    path = Path(directory) / filename
    if not Path(directory).is_dir():
        raise UserError(f"--load {directory}: no such folder")
    other = saved_by(directory)
    if app is not None and other is not None and other != app:
        raise UserError(f"--load {directory}: a run of {other}.py, not of {app}.py")
    if not path.is_file():
        raise UserError(f"--load {directory}: no {filename} in that folder")
    if not zipfile.is_zipfile(path):
        raise UserError(f"--load {directory}: {filename} is damaged (not a .keras zip archive)")
    try:
        return keras.models.load_model(path)
    except Exception as error:  # Keras raises many types for a damaged zip/h5/config
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise UserError(f"--load {directory}: {filename} could not be read ({reason})") from None


def write_json(path, data, reasons=None):
    """Write ``data`` as strict JSON: an undefined figure (NaN, infinity) becomes null, with why.

    Python's ``json`` writes ``NaN``, which no strict JSON parser reads. Each null
    figure gets a sibling ``"<key>_null_reason"``: ``reasons[key]`` if given, else
    a generic one.

    >>> import tempfile; path = Path(tempfile.mkdtemp()) / "m.json"
    >>> _ = write_json(path, {"f1": float("nan"), "n": 3}, {"f1": "no labelled anomalies"})
    >>> json.loads(path.read_text())
    {'f1': None, 'f1_null_reason': 'no labelled anomalies', 'n': 3}
    """
    reasons = reasons or {}

    def number(value):
        return isinstance(value, float) or type(value).__name__.startswith("float")

    def why(key, value):
        if key in reasons:
            return reasons[key]
        if math.isnan(value):
            return "undefined for this data (a division of zero by zero)"
        return "infinite for this data (a division by zero)"

    def clean(value):
        if isinstance(value, dict):
            cleaned = {}
            for key, item in value.items():
                if number(item) and not math.isfinite(item):
                    cleaned[key] = None
                    cleaned[f"{key}_null_reason"] = why(key, item)
                else:
                    cleaned[key] = clean(item)
            return cleaned
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        if number(value):
            return float(value) if math.isfinite(value) else None
        if type(value).__name__.startswith(("int", "uint")):
            return int(value)
        return value

    Path(path).write_text(json.dumps(clean(data), indent=2, default=str, allow_nan=False))
    return path


_run_counter = itertools.count()


def default_run_path(app):
    """``runs/<app>/<date>-<time>.<microseconds>-<process id>-<counter>``: two runs never share one."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S.%f")
    return Path("runs") / app / f"{stamp}-{os.getpid()}-{next(_run_counter)}"


def check_out_folder(out, overwrite=False, load=None):
    """Check, before any work, that a run can be saved at ``out``; raise ``ValueError`` if not.

    A run is never written into an existing non-empty folder (unless
    ``overwrite``), into a file, into the folder it was loaded from, or where
    the nearest existing parent cannot be written.
    """
    out = Path(out)
    resolved, here = out.resolve(), Path.cwd().resolve()
    if load is not None:
        loaded = Path(load).resolve()
        if resolved == loaded or resolved in loaded.parents or loaded in resolved.parents:
            raise ValueError(
                "Expected an output folder apart from the loaded run, which is never "
                f"overwritten. Received: {out}"
            )
    if resolved == here or resolved in here.parents:
        raise ValueError(
            f"Expected a folder of its own for the run. Received: {out}, which holds this one"
        )
    if out.is_symlink():  # a link's target could be anything, or nothing: write only real folders
        raise ValueError(
            f"Expected a folder for the run, not a symbolic link. Received: {out} -> "
            f"{os.readlink(out)}"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"Expected a folder to write the run into. Received: {out}, an existing file"
        )
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"Expected a new or empty folder. Received: {out}, which holds files")
        if saved_by(out) is None:  # replacing is for runs; a user's own folder is never deleted
            raise ValueError(
                "Expected a saved run to replace (its config.json names the app that made it). "
                f"Received: {out}, which holds other files"
            )
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    try:  # a real probe: permissions, read-only mounts and pseudo file systems all show here
        if not parent.is_dir():
            raise NotADirectoryError(parent)
        os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=parent))
    except OSError:
        raise ValueError(
            f"Expected a writable place for {out}. Received: {parent}, which cannot be written"
        ) from None


@contextlib.contextmanager
def run_folder(target, overwrite=False):
    """Write a run whole or not at all: yield a hidden temporary folder, rename it into place at the end.

    If the block raises (or is interrupted: Ctrl-C, or SIGTERM, turned into an
    exception here), the temporary folder is removed and whatever was at ``out``
    is untouched. With ``overwrite``, an existing ``out`` is replaced only once
    the new run is complete. Files get the usual permissions (0644 under a
    default umask), the model too.

    >>> target = Path(tempfile.mkdtemp()) / "run"
    >>> with run_folder(target) as folder:
    ...     _ = (folder / "metrics.json").write_text("{}")
    >>> sorted(path.name for path in target.iterdir())
    ['metrics.json']
    """
    target = Path(target)
    check_out_folder(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    previous = _raise_on_sigterm()
    try:
        yield temporary
        _share_permissions(temporary)
        # Empty, or --overwrite: set the old one aside until the new is in place.
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            try:
                os.replace(target, old / "run")
            except OSError:
                shutil.rmtree(old, ignore_errors=True)
                raise
            try:
                os.replace(temporary, target)
            except OSError:
                try:
                    os.replace(old / "run", target)  # put the earlier run back before giving up
                except OSError:  # keep the only copy where it is, and say where
                    raise OSError(
                        f"the earlier run could not be put back; it is in {old}"
                    ) from None
                shutil.rmtree(old, ignore_errors=True)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, target)
        temporary = None
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_on_sigterm():
    """Turn SIGTERM into an exception so ``finally`` blocks clean up; None off the main thread."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise KeyboardInterrupt("terminated")

    return signal.signal(signal.SIGTERM, stop)


def _share_permissions(folder):
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def prepare_out(out, app, overwrite=False, load=None):
    """The folder a run will be saved in, checked before any work: ``out`` or a new default.

    Raises :class:`UserError` naming ``--out`` when the run could not be saved
    there, so no training is wasted.
    """
    out = Path(out) if out is not None else default_run_path(app)
    try:
        check_out_folder(out, overwrite, load)
    except ValueError as error:
        hint = "" if overwrite else "; pass --overwrite to replace it"
        raise UserError(
            f"--out {out}: {error}{hint if 'holds files' in str(error) else ''}"
        ) from None
    return out


def shrink_for_quick(args, argv, **small):
    """``--quick``: set each option in ``small`` to its small value, unless the user typed it.

    Returns the options changed, and says so in one line, so a smoke test never
    silently overrides what was asked for.

    >>> import argparse
    >>> args = argparse.Namespace(epochs=30, window=64)
    >>> shrink_for_quick(args, ["--quick", "--window", "10"], epochs=2, window=20)
    --quick: epochs 2
    {'epochs': 2}
    >>> args.epochs, args.window
    (2, 64)
    """
    given = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    changed = {}
    for name, value in small.items():
        option = "--" + name.replace("_", "-")
        if not any(arg == option or arg.startswith(option + "=") for arg in given):
            setattr(args, name, value)
            changed[name] = value
    if changed:
        shown = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in changed.items())
        print(f"--quick: {shown}")
    return changed
