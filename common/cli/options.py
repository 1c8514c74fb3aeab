"""The apps' options: argparse types that refuse bad values in one line, and the options every app shares."""

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli.errors import EXIT_USER_ERROR, one_line


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
    distribute: str = "none"  # see common.scale.distribute
    mixed_precision: bool = False
    progress: int = 0  # Keras' verbose: a progress bar in a terminal, else one line per epoch

    @classmethod
    def from_args(cls, args, **converted):
        """The config of parsed ``args``; ``converted`` gives values that need changing (lists)."""
        from common.models.training import progress_verbosity

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
