"""Shared Keras RNN builders and helpers for the apps and notebooks.

Importing ``common`` first keeps TensorFlow's start-up log lines out of the
terminal (see :mod:`common.quiet`); then everything a lesson or app needs is
one name away::

    import common
    model = common.build_many_to_one((30, 1), output_units=1, cell="gru")

The apps are the one exception: they read their options before TensorFlow loads (seconds),
so that ``--help`` and a mistyped option answer at once. ``apps/_start.py`` asks for that.
TensorFlow then loads when an app first uses it: a name such as ``common.fit`` loads
everything here (:func:`load`), a module named with :class:`common.quiet.import_later`
loads that module.
"""

import importlib
import sys

from common.cli.options import progress_verbosity  # noqa: F401
from common.quiet import import_later, import_tensorflow_quietly  # noqa: F401


def load():
    """Import TensorFlow quietly, then every builder and task (seconds, once)."""
    import_tensorflow_quietly()
    from common.data.windows import (
        StandardScaler,
        assign_windows,
        chronological_split,
        make_windows,
        window_starts,
        windows_dataset,
    )
    from common.report.metrics import (
        coverage,
        directional_accuracy,
        format_table,
        mae,
        mape,
        mase,
        pinball_loss,
        print_table,
        rmse,
    )
    from common.models.recurrent import (
        CELLS,
        build_many_to_many,
        build_many_to_one,
        build_one_to_many,
        build_one_to_one,
        recurrent_layer,
        recurrent_stack,
    )
    from common.report.plots import (
        draw_recurrence,
        plot_alarms,
        plot_forecast,
        plot_history,
        save_figure,
    )
    from common.models.seq2seq import (
        attention_scores,
        build_encoder_decoder,
        beam_search,
        predict_autoregressive,
        teacher_forcing_inputs,
    )
    from common.models.training import (
        CosineDecayInTime,
        QuantileLoss,
        TimeBudget,
        diverged,
        fit,
        fit_distributed,
        set_seed,
    )

    globals().update(locals())
    # The task modules. Importing them here registers their custom Keras layers, so a
    # saved sentiment or text-generation model reloads after a plain ``import common``.
    for layer in ("data", "models", "report", "scale", "tasks"):
        importlib.import_module(f"common.{layer}")


def __getattr__(name):  # only called for a name not yet set: load everything, then look again
    if name.startswith("__"):
        raise AttributeError(name)
    load()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module 'common' has no attribute {name!r}") from None


if "apps._start" not in sys.modules:  # a notebook, a test or a user's script: load it all now
    load()
