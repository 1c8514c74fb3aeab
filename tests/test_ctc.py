"""common.models.ctc, shared by the speech app and the OCR notebook: labels, decoding to symbol
lists, the per-frame path and the error rate (the speech tests check the loss by hand)."""

import numpy as np
import pytest

from common.models import ctc


def spikes(frames, classes=11):
    """Logits that say class ``frames[t]`` at frame t, clearly."""
    logits = np.full((1, len(frames), classes), -5.0, dtype="float32")
    logits[0, np.arange(len(frames)), frames] = 5.0
    return logits


def test_decoding_gives_symbols_with_repeats_merged_and_blanks_dropped():
    logits = spikes([4, 4, 0, 4, 8, 8, 0, 0, 1, 11 - 1])  # 3 3 - 3 7 7 - - 0 9
    assert ctc.ctc_decode(logits, [10]) == [[3, 3, 7, 0, 9]]
    assert ctc.ctc_decode(logits, [10], beam_width=4) == [[3, 3, 7, 0, 9]]
    assert ctc.ctc_decode(logits, [2]) == [[3]]  # only the frames that count
    assert ctc.frame_symbols(logits).tolist() == [[3, 3, -1, 3, 7, 7, -1, -1, 0, 9]]


def test_labels_round_trip_through_decoding():
    sequences = [[0, 9, 9], [5]]
    labels = ctc.ctc_labels(sequences)
    assert labels.tolist() == [[1, 10, 10], [6, 0, 0]] and labels.dtype == np.int32
    # Frames that spell each label with blanks between: decoding gives the symbols back.
    frames = [[1, 0, 10, 0, 10], [6, 0, 0, 0, 0]]
    logits = np.concatenate([spikes(row) for row in frames])
    assert ctc.ctc_decode(logits, [5, 5]) == sequences
    with pytest.raises(ValueError, match="at least one symbol"):
        ctc.ctc_labels([[1], []])
    with pytest.raises(ValueError, match="at least one sequence"):
        ctc.ctc_labels([])


def test_the_error_rate_counts_edits_per_reference_symbol():
    assert ctc.symbol_error_rate(["abc"], ["abc"]) == 0.0
    assert ctc.symbol_error_rate(["abc", "d"], ["xbc", ""]) == pytest.approx(2 / 4)
    assert ctc.symbol_error_rate([[1, 2], [3]], [[1], [3, 4]]) == pytest.approx(2 / 3)
