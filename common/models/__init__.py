"""Layer 1, models and training: recurrent builders for every topology, encoder-decoders with
attention, a small transformer to compare them with, the training loop, CTC's labels and
decoding (:mod:`ctc`), the fastest way to run a training step on this CPU (:mod:`steps`), and
the small NumPy models the notebooks check Keras against.

Imports only :mod:`common.scale` (the training loop runs under a distribution strategy).
"""

from common.models.recurrent import (
    CELLS,
    as_units_tuple,
    build_many_to_many,
    build_many_to_one,
    build_one_to_many,
    build_one_to_one,
    check_cell,
    check_fraction,
    recurrent_layer,
    recurrent_stack,
)
from common.models import audio, ctc, lessons, seq2seq, steps, training, transformer  # noqa: E402, F401
