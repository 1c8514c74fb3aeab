"""Translation (common.tasks.translate and apps/translate.py): reading pairs, a split that does not
leak, vocabularies fit on training text only, decoding, BLEU, and a saved run in use."""

import io
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO, examples
from conftest import call_app as call

import common  # quiet TensorFlow import first
import common.tasks.translate as mt
import keras
import tensorflow as tf


# ---------------------------------------------------------------- reading pairs


def test_pairs_keep_accents_and_marks_and_skip_empty_lines_and_attributions():
    text = "Go.\tVe.\n\n  \nWhere is it?\t¿Dónde está?\tCC-BY 2.0 (France) #1\n"
    pairs = mt.parse_pairs(text, direction="spa-eng")
    assert pairs.sources == ["Ve.", "¿Dónde está?"] and pairs.targets == ["Go.", "Where is it?"]
    english_first = mt.parse_pairs(text, direction="eng-spa")
    assert english_first.sources == ["Go.", "Where is it?"]
    # An accent typed as e + a combining mark is the same word as the precomposed é.
    assert mt.parse_pairs("Coffee.\tCafe\u0301.", "spa-eng").sources == ["Café."]


@pytest.mark.parametrize(
    "text, message",
    [
        ("Go.\tVe.\nHi. ¡Hola!\n", "line 2 has one: 'Hi. ¡Hola!'"),
        ("Go.\t \n", "line 1 has an empty sentence"),
        ("\n\n", "the file holds none"),
    ],
)
def test_a_bad_pairs_file_names_its_line(text, message):
    with pytest.raises(ValueError, match=message):
        mt.parse_pairs(text, origin="pairs.tsv")


@pytest.mark.parametrize("direction", ["spa-spa", "eng-eng", "spa", "SPA-ENG", "spa-eng-fra", ""])
def test_a_direction_must_be_from_or_to_english(direction):
    with pytest.raises(ValueError, match="Expected a direction from or to English"):
        mt.columns(direction)


def test_a_non_utf8_pairs_file_is_refused(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("Coffee.\tCafé.\n".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        mt.read_pairs(path)


@pytest.mark.slow  # unpacks the bundled file
def test_the_bundled_pairs_are_read_whole():
    pairs = mt.read_pairs(REPO / "data" / "spa_eng.tsv.xz")
    assert len(pairs) == 103_596
    assert pairs.sources[0] and "¿" in "".join(pairs.sources[:5000])


# ---------------------------------------------------------------- a split that does not leak


@settings(max_examples=examples(50), deadline=None, derandomize=True, database=None)
@given(
    sentences=st.lists(
        st.sampled_from(["Ve.", "ve", "¡Ve!", "Hola.", "hola", "Corre.", "Sí.", "No.", "Ya."]),
        min_size=3,
        max_size=40,
    ),
    seed=st.integers(0, 1000),
)
def test_the_split_keeps_every_source_sentence_on_one_side(sentences, seed):
    keys = {mt.source_key(s) for s in sentences}
    pairs = mt.Pairs(sentences, [f"t{i}" for i in range(len(sentences))])
    if len(keys) < 3:
        with pytest.raises(ValueError, match="at least 3 different source sentences"):
            mt.split_by_source(pairs, seed=seed)
        return
    splits = mt.split_by_source(pairs, seed=seed)
    sides = [{mt.source_key(s) for s in split.sources} for split in splits.values()]
    assert all(sides)  # no side empty
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    # Every pair is on exactly one side, still with its own translation.
    together = sorted(t for split in splits.values() for t in split.targets)
    assert together == sorted(pairs.targets)


@pytest.mark.slow  # reads and splits the 103,596 bundled pairs
def test_the_test_split_shares_no_source_with_training_on_the_bundled_pairs():
    splits = mt.split_by_source(mt.read_pairs(REPO / "data" / "spa_eng.tsv.xz"), seed=0)
    train = {mt.source_key(s) for s in splits["train"].sources}
    assert not train & {mt.source_key(s) for s in splits["test"].sources}
    assert [len(splits[part]) for part in ("validation", "test")] == [5164, 5188]


def test_overlap_counts_shared_references_and_near_copies():
    train = mt.Pairs(["Tengo un gato.", "Hola."], ["I have a cat.", "Hello."])
    test = mt.Pairs(
        ["Tengo un perro.", "Buenos días.", "Buenos días."], ["I have a dog.", "Hello.", "Hi."]
    )
    found = mt.overlap(train, test)
    # "Buenos días." has a reference seen in training; "Tengo un perro." is one word away.
    assert found == {"reference_seen": 0.5, "one_word_away": 0.5}


def test_two_edits_apart_is_not_one_word_away():
    train = mt.Pairs(["x a b c", "uno dos"], ["t", "u"])
    test = mt.Pairs(["a b c y", "dos uno", "a b c", "x a b c d"], ["v", "w", "x", "y"])
    # A word removed and another added, or two words swapped: two edits. A word fewer, or
    # one more, than a training sentence: one.
    assert mt.overlap(train, test)["one_word_away"] == 0.5


def test_grouped_references_collect_every_translation_of_a_sentence():
    pairs = mt.Pairs(["Ve.", "Hola.", "Ve.", "Ve."], ["Go.", "Hi.", "Leave.", "Go."])
    assert mt.grouped_references(pairs) == (["Ve.", "Hola."], [["Go.", "Leave."], ["Hi."]])


# ---------------------------------------------------------------- words and vocabularies


def test_tokens_split_punctuation_off_and_keep_words_whole():
    assert mt.tokenize(["¿Dónde está el baño?", "Don't go, Tom!"]) == [
        ["¿", "Dónde", "está", "el", "baño", "?"],
        ["Don't", "go", ",", "Tom", "!"],
    ]
    assert mt.tokenize(["ÉL ESTÁ AQUÍ."], lower=True) == [["él", "está", "aquí", "."]]
    assert mt.detokenize(["¡", "Hola", ",", "Tom", "!"]) == "¡Hola, Tom!"
    # A no-break space (French writes one before "!") is a space; a combining accent stays
    # in its word.
    assert mt.tokenize(["Bonjour\u202f!", "Cafe\u0301 noir."]) == [
        ["Bonjour", "!"],
        ["Cafe\u0301", "noir", "."],
    ]


def test_vocabularies_are_fit_on_training_text_only():
    splits = {
        "train": mt.Pairs(["el gato come.", "el perro come."] * 2, ["the cat eats."] * 4),
        "test": mt.Pairs(["el caballo come."], ["the horse eats."]),
    }
    vocab = mt.Vocabularies.fit(splits["train"].sources, splits["train"].targets, min_count=1)
    assert "caballo" not in vocab.source and "horse" not in vocab.target
    ids = vocab.source_ids(splits["test"].sources)[0]
    assert list(ids[:4]) == [
        vocab.source.index("el"),
        1,
        vocab.source.index("come"),
        vocab.source.index("."),
    ]
    # The saved model's own vectorizer and word list give the same ids as the training code.
    model = mt.saved_model(vocab, mt.build_translator(vocab, units=4, embedding_dim=4))
    assert list(mt.Translator(model).vocabulary) == vocab.target
    assert model.get_layer("source_vectorizer").get_vocabulary() == vocab.source
    np.testing.assert_array_equal(
        mt.Translator(model).source_ids(splits["test"].sources),
        vocab.source_ids(splits["test"].sources),
    )


def test_teacher_forcing_feeds_the_true_previous_word():
    vocab = mt.Vocabularies.fit(["a b"], ["x y"], min_count=1)
    (source, decoder_inputs), targets = mt.teacher_forcing(vocab, ["a b"], ["x y"])
    x, y = vocab.target.index("x"), vocab.target.index("y")
    assert decoder_inputs.tolist() == [[2, x, y]] and targets.tolist() == [[x, y, 3]]
    assert source.shape == (1, vocab.source_length)


# ---------------------------------------------------------------- decoding


@pytest.fixture(scope="module")
def tiny():
    """An untrained translator on a handful of pairs: decoding is exact whatever the weights."""
    common.set_seed(0)
    sources = ["¿Dónde está Tom?", "Tengo un gato.", "Hola.", "Él come pan.", "Ve."] * 2
    targets = ["Where is Tom?", "I have a cat.", "Hello.", "He eats bread.", "Go."] * 2
    vocab = mt.Vocabularies.fit(sources, targets, min_count=1)
    return mt.saved_model(vocab, mt.build_translator(vocab, units=8, embedding_dim=8)), sources


def test_beam_width_one_is_greedy_decoding(tiny):
    model, sources = tiny
    translator = mt.Translator(model)
    ids = translator.source_ids(sources)
    greedy = translator.greedy(ids)
    beam = translator.beam_search(ids, beam_width=1)
    np.testing.assert_array_equal(greedy[0], beam[0])
    np.testing.assert_allclose(greedy[1], beam[1], rtol=1e-6)


def test_decoding_never_writes_padding_or_start_and_a_beam_may_outgrow_the_vocabulary(tiny):
    model, sources = tiny
    translator = mt.Translator(model)
    ids = translator.source_ids(sources)
    words = len(translator.vocabulary)
    for tokens, _, _ in (translator.greedy(ids), translator.beam_search(ids, beam_width=words + 3)):
        for row in tokens:
            written = list(row[: list(row).index(3)] if 3 in row else row)
            assert 0 not in written and 2 not in written


def test_a_wider_beam_finds_an_output_at_least_as_likely(tiny):
    model, sources = tiny
    translator = mt.Translator(model)
    ids = translator.source_ids(sources)
    _, greedy, _ = translator.greedy(ids)
    # Without length normalisation both rank by total log-probability; a finished greedy
    # path survives in a beam of 8 unless 8 likelier prefixes push it out.
    _, beam, _ = translator.beam_search(ids, beam_width=8, length_penalty=0.0)
    assert np.all(beam >= greedy - 1e-5)


def test_greedy_matches_the_training_model_under_teacher_forcing(tiny):
    """The step-by-step decoder reuses the trained layers: same numbers as the whole model."""
    model, sources = tiny
    translator = mt.Translator(model)
    tokens, totals, _ = translator.greedy(translator.source_ids(sources[:3]))
    decoder_inputs = np.zeros((3, translator.max_length), dtype="int64")
    decoder_inputs[:, 0] = 2
    decoder_inputs[:, 1 : tokens.shape[1]] = tokens[:, :-1]
    outputs = model([tf.constant(sources[:3]), tf.constant(decoder_inputs)], training=False)
    probabilities = keras.ops.convert_to_numpy(outputs["probabilities"])
    for row in range(3):
        steps = list(tokens[row]).index(3) + 1 if 3 in tokens[row] else tokens.shape[1]
        expected = sum(math.log(probabilities[row, t, tokens[row, t]]) for t in range(steps))
        assert totals[row] == pytest.approx(expected, abs=1e-3)


def test_a_saved_model_reloads_to_identical_translations(tiny, tmp_path):
    model, sources = tiny
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    for width in (1, 3):
        before = mt.Translator(model).translate(sources, beam_width=width)
        after = mt.Translator(reloaded).translate(sources, beam_width=width)
        assert [t.text for t in before] == [t.text for t in after]
        assert [t.log_probability for t in before] == pytest.approx(
            [t.log_probability for t in after]
        )


def test_an_unknown_output_word_is_copied_from_the_source_word_attended_to(tiny):
    model, _ = tiny
    translator = mt.Translator(model)
    vocabulary = list(translator.vocabulary)
    attention = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6]])
    ids = [vocabulary.index("Hello"), 1, 3]  # Hello [UNK] [END]
    found = translator._translation(ids, -1.0, attention, ["hola", "Zaragoza", "."])
    # [UNK] at step 1 attends most to "hola" (0.7): that word is copied.
    assert found.tokens == ["Hello", "hola"] and found.attention.shape == (3, 3)


def test_a_model_from_elsewhere_is_refused_by_the_translator():
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="head")], name="other")
    with pytest.raises(ValueError, match="Expected a model made by common.tasks.translate"):
        mt.Translator(other)


# ---------------------------------------------------------------- scores


def test_bleu_by_hand_equals_sacrebleu():
    # Hypothesis 7 words, reference 6: n-gram precisions 6/7, 5/6, 4/5, 3/4; no brevity penalty.
    by_hand = 100 * (6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** (1 / 4)
    found = mt.scores(["the cat sat on the mat today"], [["the cat sat on the mat"]])
    assert found["BLEU"] == pytest.approx(by_hand, abs=1e-9)  # 80.91
    # Too short: every n-gram matches, and the brevity penalty exp(1 - 6/5) is the score.
    found = mt.scores(["the cat sat on the"], [["the cat sat on the mat"]])
    assert found["BLEU"] == pytest.approx(100 * math.exp(1 - 6 / 5), abs=1e-9)  # 81.87


def test_bleu_clips_by_the_best_reference_and_smooths_missing_orders_as_sacrebleu_does():
    # Two references. Unigrams: "the" counts at most twice (the first reference has it twice),
    # "cat" once: 3/4. Bigrams: only "the cat" (second reference): 1/3. No 3- or 4-gram
    # matches; sacrebleu's default "exp" smoothing counts the k-th empty order as 1 / (2^k
    # n-grams): 1/(2 * 2) and 1/(4 * 1). The closest reference length is 4: no penalty.
    by_hand = 100 * (3 / 4 * 1 / 3 * 1 / 4 * 1 / 4) ** (1 / 4)  # 35.36
    found = mt.scores(["the cat the the"], [["the dog and the", "the cat"]])
    assert found["BLEU"] == pytest.approx(by_hand, abs=1e-9) and found["exact match"] == 0.0
    found = mt.scores(["Go.", "Hi."], [["Leave.", "Go."], ["Hello."]])
    assert found["exact match"] == 0.5


def test_scores_need_one_reference_list_per_hypothesis():
    with pytest.raises(ValueError, match="one list of references per hypothesis"):
        mt.scores(["a", "b"], [["a"]])


# ---------------------------------------------------------------- the app


@pytest.mark.slow  # the app's shared --quick run
def test_quick_run_saves_a_run_that_translates_and_evaluates(quick_runs, tmp_path):
    status, out, err, run = quick_runs("translate")
    assert status == 0, err
    for name in (
        "network, greedy",
        "network, beam 4",
        "retrieval (TF-IDF)",
        "word for word (IBM 1)",
    ):
        assert f"| {name}" in out
    assert "Verdict: " in out
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        "attention.png",
        "config.json",
        "metrics.json",
        "model.keras",
        "training.png",
    ]
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"network, greedy", "retrieval (TF-IDF)"}
    assert json.loads((run / "config.json").read_text())["direction"] == "spa-eng"

    # A sentence of unknown words and a 10,000-word one: translated, with a note for the long one.
    long = " ".join(["palabra"] * 10_000)
    status, out, err = call("translate", "--load", run, "--translate", "Zxq wvv.", long)
    assert status == 0, err
    assert len(out.splitlines()) == 2
    assert "sentence 2 has 10000 words and marks; the model reads the first" in err

    pairs = tmp_path / "more.tsv"
    pairs.write_text("Go.\tVe.\nLeave.\tVe.\nHello.\tHola.\n", encoding="utf-8")
    status, out, err = call("translate", "--load", run, "--evaluate", pairs, "--beam-width", "2")
    assert status == 0, err
    assert "2 sentences, 3 references" in out and "| network, beam 2" in out


@pytest.mark.slow  # the app's shared --quick run
def test_stdin_is_read_one_sentence_a_line(quick_runs, monkeypatch):
    _, _, _, run = quick_runs("translate")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("Hola.\n\nAdiós.\n".encode())))
    status, out, err = call("translate", "--load", run, "--translate", "-")
    assert status == 0, err
    assert len(out.splitlines()) == 2 and "skipping sentence 2: it is empty" in err
    status, _, err = call("translate", "--load", run, "--translate", "-", "Hola.")
    assert status == 2 and "'-' (read standard input) cannot be mixed" in err, err


@pytest.mark.parametrize(
    "content, message",
    [
        (b"Go.\n" * 200, "line 1 has one"),
        ("Coffee.\tCafé.\n".encode("latin-1") * 200, "UTF-8"),
        (b"Go.\tVe.\n" * 50, "at least 100 sentence pairs"),
    ],
)
def test_a_bad_data_file_is_one_line_before_training(content, message, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(content)
    status, out, err = call("translate", "--quick", "--data", path, "--out", tmp_path / "run")
    assert status == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_another_apps_run_is_refused(quick_runs):
    _, _, _, run = quick_runs("forecast")
    status, _, err = call("translate", "--load", run, "--translate", "Hola.")
    assert status == 2 and "a run of forecast.py, not of translate.py" in err, err
