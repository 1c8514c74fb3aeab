"""common.tasks.dna: the bundled splice windows, one-hot nucleotides, near-duplicate groups,
the grouped split and occlusion, each against a hand computation or a brute-force one."""

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import common.tasks.dna as dna


def test_the_bundled_windows_are_the_uci_set():
    splice = dna.read_splice()
    assert len(splice) == 3190 and len(splice.names) == 3190
    assert np.bincount(splice.labels).tolist() == [767, 768, 1655]  # EI, IE, N
    assert {len(sequence) for sequence in splice.sequences} == {60}
    assert splice.sequences[0] == "CCAGCTGCATCACAGGAGGCCAGCGAGCAGGTCTGTTCCAAGGGCCTTCGAGCCAGTCTG"
    assert splice.names[0] == "ATRINS-DONOR-521" and dna.CLASSES[splice.labels[0]] == "EI"


@pytest.mark.parametrize(
    "content, message",
    [
        ("id,seq\n", "Expected a header 'class,instance,dna'"),
        ("", "Expected a header"),
        ("class,instance,dna\nXX,a," + "A" * 60 + "\n", "Expected a class in .* on line 2"),
        ("class,instance,dna\nEI,a," + "A" * 59 + "\n", "Expected 60 nucleotides .* on line 2"),
        ("class,instance,dna\nN,a," + "A" * 59 + "Z\n", r"unknown: \['Z'\]"),
        ("class,instance,dna\n\nN,a,b,c\n", "Expected 3 fields on line 3"),
    ],
)
def test_a_damaged_file_is_a_value_error_naming_the_line(tmp_path, content, message):
    path = tmp_path / "splice.csv.gz"
    path.write_bytes(gzip.compress(content.encode()))
    with pytest.raises(ValueError, match=message):
        dna.read_splice(path)


def test_one_hot_by_hand_and_ambiguity_codes_spread_evenly():
    x = dna.one_hot(["ACGT", "NRSD"])
    assert x.shape == (2, 4, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], np.eye(4))
    np.testing.assert_allclose(x[1, 0], [0.25] * 4)  # N: any
    np.testing.assert_allclose(x[1, 1], [0.5, 0, 0.5, 0])  # R: A or G
    np.testing.assert_allclose(x[1, 2], [0, 0.5, 0.5, 0])  # S: C or G
    np.testing.assert_allclose(x[1, 3], [1 / 3, 0, 1 / 3, 1 / 3])  # D: not C
    np.testing.assert_allclose(x.sum(axis=-1), 1.0)
    with pytest.raises(ValueError, match="one length"):
        dna.one_hot(["ACGT", "ACG"])
    with pytest.raises(ValueError, match="Received: 'X'"):
        dna.one_hot(["ACXT"])


def brute_mismatches(sequences, shift):
    n = len(sequences)
    return np.array(
        [
            [sum(a != b for a, b in zip(sequences[i][shift:], sequences[j])) for j in range(n)]
            for i in range(n)
        ]
    )


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 8).flatmap(
        lambda length: st.tuples(
            st.lists(st.text("ACGTN", min_size=length, max_size=length), min_size=1, max_size=6),
            st.integers(0, length - 1),
        )
    )
)
def test_mismatches_equal_a_brute_force_count(case):
    sequences, shift = case
    np.testing.assert_array_equal(
        dna.mismatches(sequences, shift), brute_mismatches(sequences, shift)
    )


def test_near_copies_share_a_group_also_when_shifted_and_chained():
    rng = np.random.default_rng(0)
    random = ["".join(rng.choice(list("ACGT"), 60)) for _ in range(6)]
    one_change = random[0][:10] + ("A" if random[0][10] != "A" else "C") + random[0][11:]
    shifted = random[1][4:] + "ACGT"  # the same stretch, cut out 4 places later
    swap = str.maketrans("ACGT", "CATG")  # changes every letter
    middle_changed = random[2][:20] + random[2][20:40].translate(swap) + random[2][40:]
    # A chain: 10 changes, then 10 more; the ends differ in 20 places but are linked.
    step = random[3][:10].translate(swap) + random[3][10:]
    two_steps = step[:30] + step[30:40].translate(swap) + step[40:]
    sequences = [*random, one_change, shifted, middle_changed, step, two_steps]
    groups = dna.near_duplicate_groups(sequences, max_mismatches=12, max_shift=10)
    assert groups[6] == groups[0] and groups[7] == groups[1]
    assert groups[8] != groups[2]  # 20 of 60 changed: not a copy
    assert groups[9] == groups[3] and groups[10] == groups[3]
    assert dna.mismatches([random[3], two_steps])[0, 1] == 20
    assert len(set(groups[:6])) == 6  # unrelated windows stay apart
    no_shift = dna.near_duplicate_groups(sequences, max_mismatches=12, max_shift=0)
    assert no_shift[7] != no_shift[1]


def test_the_grouped_split_keeps_each_group_on_one_side():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 150, 600)
    labels = rng.integers(0, 3, 600)
    train, test = dna.grouped_split(groups, labels, test_fraction=0.2, seed=0)
    assert sorted([*train, *test]) == list(range(600))
    assert not set(groups[train]) & set(groups[test])
    assert 0.12 < len(test) / 600 < 0.28
    with pytest.raises(ValueError, match="0 < test_fraction < 1"):
        dna.grouped_split(groups, labels, test_fraction=1.5)


def test_occlusion_is_the_fall_in_the_true_class_probability_by_hand():
    def predict(x):  # P(class 1) = the share of G at position 2; class 0 the rest
        g = x[:, 2, 2]
        return np.stack([1 - g, g], axis=1)

    x = dna.one_hot(["ACGT", "GGGG"])
    drops = dna.occlusion(predict, x, np.array([1, 0]))
    expected = np.zeros((2, 4))
    expected[0, 2] = 1 - 0.25  # G hidden: P(class 1) falls from 1 to a quarter
    expected[1, 2] = (1 - 1) - (1 - 0.25)  # class 0 gains: a negative fall
    np.testing.assert_allclose(drops, expected)
