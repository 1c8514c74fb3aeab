"""CTC, the pieces every reader of unaligned sequences needs: labels padded the way Keras 3's
loss reads them, greedy and beam-search decoding, and the error rate in edits.

Connectionist temporal classification (Graves et al., 2006) lets a network read a sequence of
frames (sound, columns of an image) and answer at every frame with a symbol or a *blank*,
summing over every way of placing the target symbols on the frames; nobody marks where each
symbol starts. Symbol ``s`` (0, 1, ...) is class ``s + 1``; class 0 is the blank::

    labels = ctc_labels([[0, 4, 1, 2], [7]])          # (batch, longest), padded with the blank
    model.compile(loss=keras.losses.CTC(), ...)        # logits (batch, frames, symbols + 1)
    ctc_decode(logits, frame_counts, beam_width=8)     # [[0, 4, 1, 2], [7]]
    symbol_error_rate(["0412", "7"], ["042", "7"])     # 1 edit / 5 symbols

Used by ``common.tasks.speech`` (spoken digit strings) and notebook 17 (rows of handwritten
digits).
"""

import editdistance
import keras
import numpy as np

BLANK = 0  # CTC's "no symbol here"; symbol s is class s + 1


def ctc_labels(sequences):
    """(batch, longest) int32 CTC labels: symbol s as s + 1, padded with 0 (the blank).

    ``keras.losses.CTC`` counts each row's length as its non-zero labels, so
    padding with the blank is right, at any batch size (tested; the opposite
    of what Keras 2's ``ctc_batch_cost`` wanted, keras-team/keras#21876).

    >>> ctc_labels([[0, 9], [5]]).tolist()
    [[1, 10], [6, 0]]
    """
    if not sequences or min(map(len, sequences)) == 0:
        raise ValueError(
            f"Expected at least one sequence, each of at least one symbol. Received: {sequences!r}"
        )
    labels = np.zeros((len(sequences), max(map(len, sequences))), dtype="int32")
    for row, symbols in enumerate(sequences):
        labels[row, : len(symbols)] = np.asarray(symbols) + 1
    return labels


def ctc_decode(logits, lengths, beam_width=1):
    """Symbols read from per-frame logits ``(batch, frames, symbols + 1)``: a list per row.

    ``lengths`` says how many frames of each row count (the rest is padding).
    Beam width 1 is greedy: the likeliest class per frame, repeats merged,
    blanks dropped. Wider beams keep the ``beam_width`` likeliest prefixes,
    summing over the frame paths that spell each one.
    """
    strategy = "greedy" if beam_width == 1 else "beam_search"
    decoded, _ = keras.ops.ctc_decode(
        logits, lengths, strategy=strategy, beam_width=beam_width, mask_index=BLANK
    )
    best = keras.ops.convert_to_numpy(decoded)[0]
    return [[int(label) - 1 for label in row if label > 0] for row in best]


def frame_symbols(logits):
    """The likeliest class at each frame, ``(batch, frames)``: -1 for the blank, else the symbol.

    The raw path before greedy decoding merges repeats and drops blanks: what
    to draw under an input to show where the network answered.
    """
    return np.argmax(np.asarray(logits), axis=-1) - 1


def symbol_error_rate(references, hypotheses):
    """Edits (substituted, dropped or extra symbols) per reference symbol, over all rows.

    >>> symbol_error_rate(["1234", "555", "78"], ["1284", "55", "789"])  # 3 edits, 9 symbols
    0.3333333333333333
    """
    edits = sum(editdistance.eval(ref, hyp) for ref, hyp in zip(references, hypotheses))
    return edits / max(sum(len(ref) for ref in references), 1)
