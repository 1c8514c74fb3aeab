"""Shared Keras RNN builders and helpers for the apps and notebooks.

Importing ``common`` first keeps TensorFlow's start-up log lines out of the
terminal (see :mod:`common.quiet`); then everything a lesson or app needs is
one name away::

    import common
    model = common.build_many_to_one((30, 1), output_units=1, cell="gru")
"""

from common.quiet import import_tensorflow_quietly

import_tensorflow_quietly()

from common.data.windows import (  # noqa: E402
    StandardScaler,
    assign_windows,
    chronological_split,
    make_windows,
    window_starts,
    windows_dataset,
)
from common.report.metrics import (  # noqa: E402
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
from common.models.recurrent import (  # noqa: E402
    CELLS,
    build_many_to_many,
    build_many_to_one,
    build_one_to_many,
    build_one_to_one,
    recurrent_layer,
    recurrent_stack,
)
from common.report.plots import (  # noqa: E402
    draw_recurrence,
    plot_alarms,
    plot_forecast,
    plot_history,
    save_figure,
)
from common.models.seq2seq import (  # noqa: E402
    attention_scores,
    build_encoder_decoder,
    beam_search,
    predict_autoregressive,
    teacher_forcing_inputs,
)
from common.models.training import (  # noqa: E402
    CosineDecayInTime,
    QuantileLoss,
    TimeBudget,
    diverged,
    fit,
    fit_distributed,
    progress_verbosity,
    set_seed,
)

# The task modules. Importing them here registers their custom Keras layers, so a
# saved sentiment or text-generation model reloads after a plain ``import common``.
from common import data, models, report, scale, tasks  # noqa: E402, F401
