"""common/tasks/translate_baselines.py: IBM Model 1 worked by hand, word for word, retrieval."""

from collections import defaultdict
from fractions import Fraction as F

import numpy as np
import pytest

from common.tasks.translate_baselines import (
    NULL,
    NearestNeighbour,
    ibm_model1,
    nearest_columns,
    word_for_word,
)

# Koehn, Statistical Machine Translation (2010), section 4.2.3. The source side is German,
# the target side English: the model learns t(English word | German word).
GERMAN = [["das", "Haus"], ["das", "Buch"], ["ein", "Buch"]]
ENGLISH = [["the", "house"], ["the", "book"], ["a", "book"]]


def table_as_dict(lexicon):
    """{(target word, source word): t} for every stored entry."""
    table = lexicon.table.tocoo()
    return {
        (lexicon.target_words[j], lexicon.source_words[i]): t
        for i, j, t in zip(table.row, table.col, table.data)
    }


# ---------------------------------------------------------------- EM by hand


def test_first_iteration_by_hand_null_included():
    # t starts uniform, so the first E-step shares each target word evenly among NULL and the
    # two source words of its pair: 1/3 each. Expected counts c(target, source) then are:
    #   das:  the 1/3 + 1/3 (pairs 1, 2), house 1/3, book 1/3      total 4/3
    #   Haus: the 1/3, house 1/3                                    total 2/3
    #   Buch: the 1/3, book 1/3 + 1/3 (pairs 2, 3), a 1/3           total 4/3
    #   ein:  a 1/3, book 1/3                                       total 2/3
    #   NULL: the 2/3, house 1/3, book 2/3, a 1/3 (in every pair)   total 2
    # and the M-step divides each by its source word's total. NULL's share is the same
    # 1/3 in every pair, so the real words' rows equal Koehn's table (which has no NULL).
    expected = {
        ("the", "das"): F(1, 2), ("house", "das"): F(1, 4), ("book", "das"): F(1, 4),
        ("the", "Haus"): F(1, 2), ("house", "Haus"): F(1, 2),
        ("book", "Buch"): F(1, 2), ("the", "Buch"): F(1, 4), ("a", "Buch"): F(1, 4),
        ("a", "ein"): F(1, 2), ("book", "ein"): F(1, 2),
        ("the", NULL): F(1, 3), ("book", NULL): F(1, 3),
        ("house", NULL): F(1, 6), ("a", NULL): F(1, 6),
    }  # fmt: skip
    found = table_as_dict(ibm_model1(GERMAN, ENGLISH, iterations=1))
    assert found.keys() == expected.keys()  # only words that met in a pair are stored
    for key, value in expected.items():
        assert found[key] == pytest.approx(float(value), abs=1e-12), key


def test_second_iteration_by_hand_shows_null_at_work():
    # E-step with the table above; each target word's t over NULL and its pair's words, summed:
    #   pair 1 "the":   NULL 1/3, das 1/2, Haus 1/2  sum 4/3   -> das 3/8,  Haus 3/8
    #   pair 1 "house": NULL 1/6, das 1/4, Haus 1/2  sum 11/12 -> das 3/11, Haus 6/11
    #   pair 2 "the":   NULL 1/3, das 1/2, Buch 1/4  sum 13/12 -> das 6/13
    #   pair 2 "book":  NULL 1/3, das 1/4, Buch 1/2  sum 13/12 -> das 3/13
    # M-step, das:  the 3/8 + 6/13 = 87/104, house 3/11, book 3/13; over 1144ths:
    #               957 + 312 + 264 = 1533, so t(the|das) = 957/1533 = 319/511,
    #               t(house|das) = 312/1533 = 104/511, t(book|das) = 264/1533 = 88/511.
    #         Haus: the 3/8, house 6/11; total 81/88: t(the|Haus) = 33/81, t(house|Haus) = 48/81.
    # Without NULL (Koehn's table) t(house|Haus) would be 4/7 = 0.571; NULL takes part of
    # "the" away from Haus, so here it is 16/27 = 0.593.
    lexicon = ibm_model1(GERMAN, ENGLISH, iterations=2)
    assert lexicon.probability("the", "das") == pytest.approx(319 / 511)
    assert lexicon.probability("house", "das") == pytest.approx(104 / 511)
    assert lexicon.probability("book", "das") == pytest.approx(88 / 511)
    assert lexicon.probability("the", "Haus") == pytest.approx(11 / 27)
    assert lexicon.probability("house", "Haus") == pytest.approx(16 / 27)


def test_after_20_iterations_the_right_word_leads_each_row():
    lexicon = ibm_model1(GERMAN, ENGLISH, iterations=20)
    for source, target in [("das", "the"), ("Buch", "book"), ("Haus", "house"), ("ein", "a")]:
        row = {word: lexicon.probability(word, source) for word in lexicon.target_words}
        assert max(row, key=row.get) == target == lexicon.best(source)
        assert row[target] > 0.99
    assert np.allclose(lexicon.table.sum(axis=1), 1.0)  # every row, NULL's too, is a distribution


def test_unknown_words_have_no_best_and_probability_zero():
    lexicon = ibm_model1(GERMAN, ENGLISH, iterations=5)
    assert lexicon.best("Auto") is None
    assert lexicon.probability("car", "das") == 0.0
    assert lexicon.probability("the", "Auto") == 0.0
    assert lexicon.probability("a", "Haus") == 0.0  # both known, never in one pair


def naive_model1(sources, targets, iterations):
    """Model 1 as the textbook's loops, with dicts, to compare the vectorised version with."""
    t = defaultdict(lambda: 1.0)  # uniform start: any constant gives the same first E-step
    for _ in range(iterations):
        counts, totals = defaultdict(float), defaultdict(float)
        for source, target in zip(sources, targets):
            source = [NULL] + list(source)
            for f in target:
                norm = sum(t[f, e] for e in source)
                for e in source:
                    counts[f, e] += t[f, e] / norm
                    totals[e] += t[f, e] / norm
        t = defaultdict(float, {(f, e): c / totals[e] for (f, e), c in counts.items()})
    return t


def test_matches_the_textbook_loops_with_repeats_and_empty_sentences():
    rng = np.random.default_rng(0)
    sources = [list(rng.choice(["a", "b", "c", "d", "e"], rng.integers(0, 5))) for _ in range(30)]
    targets = [list(rng.choice(["v", "w", "x", "y"], rng.integers(0, 5))) for _ in range(30)]
    targets[0] = ["v"]  # a target that needs NULL: its source sentence is emptied next
    sources[0] = []
    expected = naive_model1(sources, targets, iterations=3)
    found = table_as_dict(ibm_model1(sources, targets, iterations=3))
    assert found.keys() == {key for key, value in expected.items() if value > 0}
    for key, value in found.items():
        assert value == pytest.approx(expected[key], rel=1e-9), key


# ---------------------------------------------------------------- align


def test_align_rows_sum_to_one_and_pick_the_right_words():
    lexicon = ibm_model1(GERMAN, ENGLISH, iterations=20)
    posterior = lexicon.align(["das", "Haus"], ["the", "house"])
    assert posterior.shape == (2, 2)  # (target words, source words); NULL left out
    assert np.allclose(posterior.sum(axis=1), 1.0)
    assert list(posterior.argmax(axis=1)) == [0, 1]  # the -> das, house -> Haus
    crossed = lexicon.align(["ein", "Buch", "das"], ["the", "book", "a"])
    assert np.allclose(crossed.sum(axis=1), 1.0)
    assert list(crossed.argmax(axis=1)) == [2, 1, 0]  # the -> das, book -> Buch, a -> ein


def test_align_spreads_a_word_no_source_word_met_evenly():
    lexicon = ibm_model1(GERMAN, ENGLISH, iterations=5)
    posterior = lexicon.align(["das", "Auto"], ["the", "car"])
    assert posterior[0].tolist() == [1.0, 0.0]  # "Auto" is unknown: t(the|Auto) = 0
    assert posterior[1].tolist() == [0.5, 0.5]  # "car" is unknown: no evidence either way
    with pytest.raises(ValueError, match="at least one source token"):
        lexicon.align([], ["the"])


# ---------------------------------------------------------------- word for word


def test_word_for_word_translates_and_copies_unknown_words():
    lexicon = ibm_model1(GERMAN, ENGLISH, iterations=20)
    found = word_for_word(lexicon, [["das", "Buch"], ["ein", "Haus"], ["das", "Auto"], []])
    assert found == [["the", "book"], ["a", "house"], ["the", "Auto"], []]


def test_word_for_word_drops_a_word_null_explains_better():
    # Spanish drops the subject pronoun: nothing in "corro ." stands for "i". And "." ends
    # every Spanish sentence but no English one, so NULL (in every pair) explains it. "i" meets
    # "." three times but each of its verbs (como, duermo, corro) only once, so its best word
    # is "." too, and t(. | NULL) > t(. | i): Model 1 gives "i" no word of its own.
    english = ["i eat", "i sleep", "you sleep", "we eat", "i run", "you run"]
    spanish = ["como .", "duermo .", "duermes .", "comemos .", "corro .", "corres ."]
    english, spanish = [s.split() for s in english], [s.split() for s in spanish]
    lexicon = ibm_model1(english, spanish, iterations=5)
    assert lexicon.best("i") == "." and lexicon.best(NULL) == "."
    assert lexicon.probability(".", NULL) > lexicon.probability(".", "i")
    assert lexicon.prefers_null("i") and not lexicon.prefers_null("run")
    assert not lexicon.prefers_null(NULL) and not lexicon.prefers_null("unknown")
    assert word_for_word(lexicon, [["i", "run"]]) == [["corro"]]
    assert word_for_word(lexicon, [["i", "run"]], drop_null_words=False) == [[".", "corro"]]


# ---------------------------------------------------------------- retrieval


def lower_split(sentence):
    return sentence.lower().split()


SOURCES = ["the old red car is fast", "the blue sky", "hello there", "good night"]
TARGETS = ["el viejo coche rojo es rápido", "el cielo azul", "hola", "buenas noches"]


def test_a_training_source_returns_its_own_target():
    retrieval = NearestNeighbour(SOURCES, TARGETS, tokenize=lower_split)
    assert retrieval.translate(SOURCES) == TARGETS
    assert retrieval.translate(["Good Night"]) == ["buenas noches"]  # tokenize lower-cases


def test_a_paraphrase_returns_the_closest_sentence():
    retrieval = NearestNeighbour(SOURCES, TARGETS, tokenize=lower_split)
    # One word changed, to one ("blue") that also occurs in the second sentence.
    assert retrieval.translate(["the old blue car is fast"]) == [TARGETS[0]]
    assert retrieval.translate(["the blue sea"]) == [TARGETS[1]]


def test_a_query_of_unknown_words_gets_the_most_common_target():
    targets = ["hola", "adiós", "gracias", "adiós"]
    retrieval = NearestNeighbour(["hi", "bye", "thanks", "goodbye"], targets, lower_split)
    assert retrieval.translate(["xyzzy plugh", ""]) == ["adiós", "adiós"]
    # Equally common targets: the first seen.
    retrieval = NearestNeighbour(["a", "b", "c", "d"], ["uno", "dos", "dos", "uno"], lower_split)
    assert retrieval.translate(["zzz"]) == ["uno"]


def test_ties_go_to_the_lower_training_index():
    # Same source twice: identical vectors.
    retrieval = NearestNeighbour(["red car", "blue sky", "red car"], ["0", "1", "2"], lower_split)
    assert retrieval.translate(["red car"]) == ["0"]
    # Different sources equally close to "x" (mirror images); the lower index wins either way.
    for sources in (["a x", "b x"], ["b x", "a x"]):
        retrieval = NearestNeighbour(sources, ["first", "second"], lower_split)
        assert retrieval.translate(["x"]) == ["first"]


def test_chunks_and_dense_features_change_nothing():
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(40)]
    sources = [" ".join(rng.choice(words, rng.integers(1, 8))) for _ in range(300)]
    targets = [f"t{i}" for i in range(300)]
    queries = [" ".join(rng.choice(words, rng.integers(1, 6))) for _ in range(50)]
    reference = NearestNeighbour(sources, targets, lower_split, chunk_size=1000, num_common=0)
    other = NearestNeighbour(sources, targets, lower_split, chunk_size=7, num_common=20)
    assert other.translate(queries) == reference.translate(queries)


def test_nearest_columns_ties_and_empty_rows():
    similarity = np.array([[0.3, 0.3 + 1e-12, 0.1], [0.0, 0.0, 0.0], [0.1, 0.2, 0.9]])
    assert nearest_columns(similarity).tolist() == [0, -1, 2]


# ---------------------------------------------------------------- bad input


def test_model1_rejects_bad_corpora():
    with pytest.raises(ValueError, match="received 3 source and 2 target sentences"):
        ibm_model1(GERMAN, ENGLISH[:2])
    with pytest.raises(ValueError, match="empty corpus"):
        ibm_model1([], [])
    with pytest.raises(ValueError, match="list of tokens, received the str 'das Haus'"):
        ibm_model1(["das Haus"], [["the", "house"]])
    with pytest.raises(ValueError, match="only empty target sentences"):
        ibm_model1([["das"]], [[]])
    with pytest.raises(ValueError, match="at least 1 iteration, received 0"):
        ibm_model1(GERMAN, ENGLISH, iterations=0)
    lexicon = ibm_model1(GERMAN, ENGLISH)
    with pytest.raises(ValueError, match="list of tokens"):
        word_for_word(lexicon, ["das Haus"])


def test_retrieval_rejects_bad_corpora():
    with pytest.raises(ValueError, match="received 4 source and 3 target sentences"):
        NearestNeighbour(SOURCES, TARGETS[:3], lower_split)
    with pytest.raises(ValueError, match="empty corpus"):
        NearestNeighbour([], [], lower_split)
    with pytest.raises(ValueError, match="as a str, received list"):
        NearestNeighbour([["tokens"]], ["x"], lower_split)
    retrieval = NearestNeighbour(SOURCES, TARGETS, lower_split)
    with pytest.raises(ValueError, match="received a str; wrap it in a list"):
        retrieval.translate("the blue sky")
