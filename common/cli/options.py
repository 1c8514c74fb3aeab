"""The apps' options, each written once: a ``Config`` dataclass field is also its command-line option.

An app declares its options as fields made by :func:`option` (default, help text and
argparse settings in one place); :meth:`RunOptions.parser` builds ``--help`` and the
parser from those fields, so a default can never say one thing in ``--help`` and
another in the code. The argparse types below refuse bad values in one line.

>>> @dataclass(frozen=True)
... class Demo(RunOptions):
...     APP = "demo"
...     units: tuple = option((32,), "units per layer", type=int)
...     cell: str = option("gru", "recurrent cell", choices=["gru", "lstm"])
>>> config = Demo.from_args(Demo.parser("Demo.\\n\\nexamples").parse_args(["--units", "8", "8"]))
>>> config.units, config.cell, config.epochs
((8, 8), 'gru', 20)
"""

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from common.cli.errors import EXIT_USER_ERROR, UserError, one_line
from common.quiet import import_tensorflow_quietly

KEEP = object()  # an option that ``--quick`` leaves as it is


def option(default=None, help=None, *, group="model", quick=KEEP, **argparse_settings):
    """A ``Config`` field that is also the command-line option ``--field-name``.

    Args:
        default: the field's default, shown in ``--help``. A tuple takes one or more values
            (``nargs="+"``); ``False`` makes a flag (``store_true``).
        help: the option's help text; without it the field is not an option.
        group: the ``--help`` section, a key of the config's ``GROUPS`` (or its title).
        quick: the value ``--quick`` sets when the user did not type the option.
        **argparse_settings: passed to ``add_argument`` (``type``, ``choices``, ``metavar``,
            ``flag`` for another option name, ``exclusive`` to name a mutually exclusive set).
    """
    metadata = {"help": help, "group": group, "quick": quick, "argparse": argparse_settings}
    return dataclasses.field(default=default, metadata=metadata)


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


def _option_metadata(cls, name):
    """A field's option settings, merged along the class hierarchy: an app may redefine a
    shared option's default (``epochs: int = 30``) or its ``--quick`` value
    (``epochs: int = option(8, quick=2)``) and keep its help."""
    found, quick = None, KEEP
    for klass in cls.__mro__:
        field = getattr(klass, "__dataclass_fields__", {}).get(name)
        if field is None or not field.metadata:
            continue
        if quick is KEEP:
            quick = field.metadata["quick"]
        if found is None and field.metadata["help"] is not None:
            found = field.metadata
    return None if found is None else found | {"quick": quick}


def _shown(value):
    """A default as ``--help`` shows it: ``32 16`` for a tuple, ``\\n`` for a line break."""
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value).replace("\n", "\\n")


@dataclass(frozen=True)
class RunOptions:
    """What every app's options hold; each app's ``Config`` extends it with its own fields.

    Frozen: once read and checked, a run's options do not change under it. A subclass
    sets ``APP`` (its name), ``GROUPS`` (section titles of ``--help``) and may give the
    shared options its own defaults by redefining them (``epochs: int = 30``).
    """

    APP: ClassVar[str] = "app"
    GROUPS: ClassVar[dict] = {}
    SHARED_GROUPS: ClassVar[dict] = {
        "run": "training and output",
        "scaling": 'scaling out (see the README\'s "Scaling out")',
    }

    epochs: int = option(
        20,
        "most passes over the training data; early stopping may end sooner",
        group="run",
        type=positive_int,
    )
    batch_size: int = option(
        64, "examples per gradient step", group="run", type=positive_int_up_to(65536)
    )
    seed: int = option(
        42, "random seed 0 to 2**32 - 1, for a run you can repeat", group="run", type=seed_int
    )
    quick: bool = option(
        False, "tiny data and few epochs: a smoke test in seconds, for tests and CI", group="run"
    )
    out: Path | None = option(
        None,
        "new folder for the model, metrics and plots (default: runs/{app}/<time>-<process>/)",
        group="run",
        type=Path,
    )
    overwrite: bool = option(
        False, "replace an existing --out folder, once the new run is complete", group="run"
    )
    distribute: str = option(
        "none",
        "data-parallel training: none (one device), mirrored (every local GPU, or the CPU "
        "split into two devices), multiworker (the machines in TF_CONFIG; needs --out, "
        "and resumes from its last epoch if restarted)",
        group="scaling",
        choices=("none", "mirrored", "multiworker"),
    )
    mixed_precision: bool = option(
        False,
        "compute in float16 and keep float32 weights: faster on GPUs with tensor cores; "
        "needs a GPU",
        group="scaling",
    )
    load: Path | None = None  # each app that can reload a run declares --load with its own help
    progress: int = 0  # Keras' verbose: a progress bar in a terminal, else one line per epoch

    @classmethod
    def parser(cls, doc):
        """The app's argument parser, built from the fields; ``doc`` gives ``--help``'s text.

        The docstring's first paragraph is the description; everything after the
        second paragraph (the usage examples) is the epilog, kept as written.
        """
        parser = OneLineErrorParser(
            prog=f"{cls.APP}.py",
            allow_abbrev=False,  # --quick must know which options were typed; no abbreviations
            description=doc.split("\n\n")[0],
            epilog=doc.split("\n\n", 2)[2] if doc.count("\n\n") >= 2 else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        titles = cls.GROUPS | cls.SHARED_GROUPS
        order = list(cls.GROUPS) + list(cls.SHARED_GROUPS)
        fields = [field for field in dataclasses.fields(cls) if _option_metadata(cls, field.name)]
        fields.sort(key=lambda field: _group_rank(order, _option_metadata(cls, field.name)))
        groups, exclusive = {}, {}
        for field in fields:
            meta = _option_metadata(cls, field.name)
            title = titles.get(meta["group"], meta["group"])
            if title not in groups:
                groups[title] = parser.add_argument_group(title)
            settings = dict(meta["argparse"])
            flag = settings.pop("flag", "--" + field.name.replace("_", "-"))
            target = groups[title]
            if "exclusive" in settings:  # options of which at most one may be given
                key = (title, settings.pop("exclusive"))
                if key not in exclusive:
                    exclusive[key] = target.add_mutually_exclusive_group()
                target = exclusive[key]
            help_text = meta["help"].replace("{app}", cls.APP)
            default = field.default
            if isinstance(default, bool):
                settings.setdefault("action", "store_true")
            elif isinstance(default, tuple) and "action" not in settings:
                settings.setdefault("nargs", "+")
            shown = not (default is None or default is False or default == ())
            if shown and "(default:" not in help_text:
                help_text += f" (default: {_shown(default)})"
            target.add_argument(
                flag,
                dest=field.name,
                default=list(default) if isinstance(default, tuple) else default,
                help=help_text.replace("%", "%%"),  # argparse formats help with %
                **settings,
            )
        return parser

    @classmethod
    def quick_values(cls):
        """What ``--quick`` sets, option by option (see :func:`shrink_for_quick`)."""
        values = {}
        for field in dataclasses.fields(cls):
            meta = _option_metadata(cls, field.name)
            if meta is not None and meta["quick"] is not KEEP:
                values[field.name] = meta["quick"]
        return values

    @classmethod
    def from_args(cls, args, **converted):
        """The config of parsed ``args``; ``converted`` overrides values the app worked out."""
        given = vars(args) | {"progress": progress_verbosity()} | converted
        values = {}
        for field in dataclasses.fields(cls):
            value = given.get(field.name, field.default)
            values[field.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    def fingerprint(self):
        """The settings that make a run what it is, as text: a checkpoint from other settings is not resumed."""
        ignored = {"progress", "overwrite"}  # how a run reports or saves, not what it trains
        settings = {name: str(value) for name, value in vars(self).items() if name not in ignored}
        return json.dumps(settings, sort_keys=True)


def progress_verbosity():
    """Keras' ``verbose`` for training progress: a live bar in a terminal, one line per epoch in a log."""
    return 1 if sys.stdout.isatty() else 2


def _group_rank(order, meta):
    group = meta["group"]
    return order.index(group) if group in order else len(order)


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and a pointer to ``--help``, not the usage block."""

    def parse_known_args(self, args=None, namespace=None):
        # argparse (before Python 3.12) turns "--window=--" into an empty list that no type
        # function sees; refuse it here like any other bad value.
        for arg in sys.argv[1:] if args is None else args:
            if isinstance(arg, str) and arg.startswith("--") and arg.endswith("=--"):
                self.error(f"argument {arg[:-3]}: expected a value, got '--'")
        namespace, extras = super().parse_known_args(args, namespace)
        # Asking TensorFlow for a GPU takes seconds; with --load the option is refused anyway.
        if getattr(namespace, "mixed_precision", False) and not getattr(namespace, "load", None):
            tf = import_tensorflow_quietly()
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
    changed = {}
    for name, value in small.items():
        if not was_typed("--" + name.replace("_", "-"), argv):
            setattr(args, name, value)
            changed[name] = value
    if changed:
        shown = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in changed.items())
        print(f"--quick: {shown}")
    return changed


def was_typed(flag, argv):
    """Whether the user typed the option ``flag`` (``--window 10`` or ``--window=10``) in ``argv``
    (``None``: the command line)."""
    given = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    return any(arg == flag or arg.startswith(flag + "=") for arg in given)


def refuse_missing(flag, paths, kind="file"):
    """Refuse a path that does not exist, before any work (TensorFlow takes seconds to load).

    ``paths``: one path, several, or None; "-" (standard input) is left alone. What the path
    holds is checked where it is read; this answers the commonest mistake, a typo, at once.
    """
    if paths is None:
        return
    for path in paths if isinstance(paths, (list, tuple)) else [paths]:
        if str(path) != "-" and not Path(path).exists() and not Path(path).is_symlink():
            raise UserError(f"{flag} {path}: no such {kind}")


def refuse_unused_with_load(parser, argv, used):
    """With ``--load``, refuse in one line the options the saved run does not use: a saved
    model cannot change its ``--horizon`` or ``--cell``, so typing one is a mistake to say,
    not to ignore. ``used`` names the options (their ``dest``) that a ``--load`` run reads."""
    used = set(used) | {"load", "quick", "help"}
    ignored = [
        flag
        for action in parser._actions
        if action.dest not in used
        for flag in action.option_strings
        if flag.startswith("--") and was_typed(flag, argv)
    ]
    if ignored:
        parser.error(
            f"{', '.join(ignored)}: not used with --load, which keeps the saved run's settings "
            "(drop them, or train a new run)"
        )
