"""apps/sentiment.py and common/tasks/sentiment.py: a seeded quick run end to end, reload, no leakage, bad input."""

import io
import json
import socket

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

import common  # quiet TensorFlow import first
import common.tasks.sentiment as text
from common.cli.runs import RUN_MARKER
from common.data.files import read_lines
import keras
import tensorflow as tf

BUNDLED = REPO / "data" / "rotten_tomatoes.csv.gz"


# ---------------------------------------------------------------- common.tasks.sentiment


def test_parse_labels_accepts_every_spelling():
    assert text.parse_labels(["fresh", "Rotten", " 1", 0, "POS", "negative", "1.0"]).tolist() == [
        1,
        0,
        1,
        0,
        1,
        0,
        1,
    ]


def test_parse_labels_rejects_non_binary_and_single_class():
    with pytest.raises(ValueError, match="binary"):
        text.parse_labels(["pos", "neg", "neutral"])
    with pytest.raises(ValueError, match="both classes"):
        text.parse_labels(["pos", "positive"])
    assert text.parse_labels(["pos", "positive"], need_both=False).tolist() == [1, 1]


def test_tokenize_keeps_letters_of_every_script_and_reads_accents_as_base_letters():
    assert text.tokenize("Фильм ХОРОШИЙ! Ταινία 映画") == [
        "фильм",
        "хороший",
        "!",
        "ταινία",
        "映画",
    ]
    # English words spelled with accents are the words the vocabulary knows, not "caf".
    assert text.tokenize("Café NAÏVE Straße, œuvre") == ["cafe", "naive", "strasse", ",", "oeuvre"]


def test_tokenize_keeps_sentiment_punctuation_and_negation():
    assert text.tokenize("Isn't it GREAT?! It's a 'film'<br />") == [
        "is",
        "n't",
        "it",
        "great",
        "?",
        "!",
        "it",
        "'s",
        "a",
        "film",
    ]


def test_truncate_tokens_layer():
    assert text.TruncateTokens(3)(np.array([[5, 6, 7, 8], [1, 0, 0, 0]])).shape == (2, 3)
    assert np.asarray(text.TruncateTokens(3)(np.array([[5, 0]]))).tolist() == [
        [5, 0, 0]
    ]  # a masked step
    assert text.TruncateTokens(3)(np.zeros((1, 0), dtype="int64")).shape == (1, 1)  # never empty


def test_one_enormous_text_is_cut_without_padding_the_others_to_its_length():
    vectorizer = text.make_vectorizer(np.array(["good film", "bad film"], dtype=object), 10)
    good, bad, film = (vectorizer.get_vocabulary().index(word) for word in ("good", "bad", "film"))
    # 3 million tokens: padding the 2,048 texts read together to its length needs 49 GB.
    texts = np.array(["good " * 3_000_000] + ["bad film"] * 2047, dtype=object)
    ids = text.vectorize(vectorizer, texts, max_length=5)
    assert len(ids) == 2048 and ids[0].tolist() == [good] * 5 and ids[1].tolist() == [bad, film]
    assert (
        text.count_cut(vectorizer, texts, 5) == 1 and text.count_cut(vectorizer, texts[1:], 2) == 0
    )


def test_predict_texts_reads_an_enormous_text_in_a_batch_of_its_own():
    class Lengths:  # a stand-in model: each text's length, and the batches it was given
        batches = []

        def predict_on_batch(self, strings):
            self.batches.append(len(strings))
            return np.array([[len(one)] for one in strings.numpy()], dtype="float32")

    texts = np.array(["fine"] * 300 + ["x" * 3_000_000] + ["ok"] * 10, dtype=object)
    model = Lengths()
    assert text.predict_texts(model, texts).tolist() == [len(one) for one in texts]
    assert model.batches == [256, 54, 1]


def test_bucketed_batches_pad_less_and_keep_every_text():
    rng = np.random.default_rng(0)
    token_ids = [rng.integers(2, 50, size=rng.integers(1, 60)) for _ in range(500)]
    labels = rng.integers(0, 2, size=500)
    bucketed = text.bucketed_batches(token_ids, labels, batch_size=32, seed=0)
    assert sum(int(ids.shape[0]) for ids, _ in bucketed) == 500
    assert bucketed.cardinality().numpy() == sum(1 for _ in bucketed)
    assert (
        text.padding_share(bucketed)
        < 0.15
        < 0.4
        < text.padding_share(text.padded_batches(token_ids, labels, 32, 60))
    )


def test_pretrained_embeddings_put_words_with_shared_contexts_together():
    # "good" and "fine" share their neighbours; "xylophone" never meets them.
    sentences = [[2, 3, 4, 5], [2, 6, 4, 5], [7, 8, 9, 10]] * 50
    vectors = text.pretrain_embeddings(
        [np.array(s) for s in sentences], vocab_size=12, embedding_dim=4, window=1
    )
    assert vectors.shape == (12, 4)
    cosine = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert cosine(vectors[3], vectors[6]) > 0.9
    assert cosine(vectors[3], vectors[8]) < 0.5


def test_stratified_split_reproduces_the_bundled_files_split():
    # data/build_sentiment.py drew the bundled split with this same function and seed.
    frame = pd.read_csv(BUNDLED, keep_default_na=False)
    reviews = frame[frame["split"] != "unlabelled"]
    split = text.stratified_split(reviews["label"].to_numpy())
    assert split.tolist() == reviews["split"].tolist()
    labels = text.parse_labels(reviews["label"])
    for part, share in zip(("train", "validation", "test"), text.SPLIT_FRACTIONS):
        for label in (0, 1):
            in_part = np.sum((split == part) & (labels == label))
            assert abs(in_part - share * np.sum(labels == label)) <= 1, (part, label)


def test_load_table_splits_a_file_and_refuses_too_little_data(tmp_path):
    path = tmp_path / "reviews.tsv"
    rows = {"review": [f"text {i}" for i in range(100)], "label": ["pos", "neg"] * 50}
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    corpus = text.load_table(path, text_col="review", name="--data reviews.tsv")
    assert {part: corpus.count(part) for part in corpus.splits} == {
        "train": 80,
        "validation": 10,
        "test": 10,
    }
    assert corpus.source == "--data reviews.tsv" and len(corpus.unlabelled) == 0
    # A split column without validation rows: a ninth of the training rows become validation.
    rows["split"] = ["train"] * 90 + ["test"] * 10
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    corpus = text.load_table(path, text_col="review")
    assert [corpus.count(part) for part in ("train", "validation", "test")] == [80, 10, 10]
    assert set(corpus.splits["test"][0]) == {f"text {i}" for i in range(90, 100)}
    # Rows with no text are skipped, and said (a heading with spaces is the same heading).
    rows = {"text": ["", *(f"text {i}" for i in range(1, 100))], " label ": ["pos", "neg"] * 50}
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    assert "skipped 1 row with no text (first: row 1)" in str(text.load_table(path))
    few = tmp_path / "few.csv"
    pd.DataFrame({"text": ["good", "bad"] * 10, "label": [1, 0] * 10}).to_csv(few, index=False)
    with pytest.raises(ValueError, match=r"^few: too little data \(16 train, 2 validation"):
        text.load_table(few, name="few")


def test_load_table_reads_dev_and_val_as_validation_and_refuses_unknown_splits(tmp_path):
    path = tmp_path / "reviews.csv"
    split = ["train"] * 80 + ["dev"] * 5 + ["VAL "] * 5 + ["test"] * 10
    rows = {"text": [f"text {i}" for i in range(100)], "label": [1, 0] * 50, "split": split}
    pd.DataFrame(rows).to_csv(path, index=False)
    corpus = text.load_table(path)
    assert [corpus.count(part) for part in ("train", "validation", "test")] == [80, 10, 10]
    rows["split"] = ["train"] * 80 + ["holdout"] * 10 + ["test"] * 10
    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(
        ValueError,
        match=r"^data: expected the split values train, validation .*"
        r"received 'holdout', the first in row 81 \('holdout'\)",
    ):
        text.load_table(path, name="data")
    # The heading in any case; a split column that names no test rows is refused, never
    # replaced by a silent 80/10/10 split.
    rows["split"] = ["train"] * 90 + ["dev"] * 10
    pd.DataFrame(rows).rename(columns={"split": " Split "}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"received 90 train, 10 validation, 0 test \(rename"):
        text.load_table(path, name="data")


def test_shrink_for_quick_run_samples_each_split_with_its_seed():
    corpus = text.load_rotten_tomatoes(BUNDLED)
    small = text.shrink_for_quick_run(corpus, seed=3)
    assert [small.count(part) for part in ("train", "validation", "test")] == [1500, 300, 300]
    assert len(small.unlabelled) == 200 and small.source == corpus.source
    again = text.shrink_for_quick_run(corpus, seed=3)
    assert small.splits["test"][0].tolist() == again.splits["test"][0].tolist()
    assert set(small.splits["test"][0]) <= set(corpus.splits["test"][0])


def test_scores_match_hand_counts():
    labels, probabilities = [1, 1, 0, 0, 1], [0.9, 0.4, 0.2, 0.6, 0.7]
    # Predicted 1, 0, 0, 1, 1: 3 of 5 right; 2 true positives, 1 false positive, 1 missed;
    # 5 of the 6 (positive, negative) pairs are ranked the right way round.
    assert text.scores(labels, probabilities) == pytest.approx(
        {"accuracy": 0.6, "F1": 2 / 3, "ROC AUC": 5 / 6}
    )
    assert np.isnan(text.scores([1, 1], [0.3, 0.8])["ROC AUC"])


def test_texts_to_label_skips_empty_texts_and_refuses_bad_ones():
    assert text.texts_to_label(["Fine.", " ", "", "Dull."]) == (["Fine.", "Dull."], [2, 3])
    with pytest.raises(ValueError, match="^text 2 is not UTF-8 text$"):
        text.texts_to_label(["fine", "\udcff"])
    with pytest.raises(ValueError, match="give at least one word"):
        text.texts_to_label(["  "])
    with pytest.raises(ValueError, match="every text is empty"):
        text.texts_to_label(["", " "])
    stdin = io.TextIOWrapper(io.BytesIO(b"good\n\xff bad\n"))
    with pytest.raises(ValueError, match=r"not UTF-8 text \(byte 0xff at position 5\)"):
        read_lines(stdin)
    assert read_lines(io.TextIOWrapper(io.BytesIO(b"good\nbad\n"))) == ["good", "bad"]


# ---------------------------------------------------------------- wide & deep


REVIEWS = [
    ("a great film , great cast", 1),
    ("not good at all", 0),
    ("great fun !", 1),
    ("dull and not funny", 0),
    ("a good , warm film", 1),
    ("bad , dull , long", 0),
    ("good fun", 1),
    ("not great", 0),
] * 3


def test_logit_inverts_the_sigmoid_and_stays_finite():
    probabilities = np.array([[0.5], [0.880797], [0.119203], [1.0], [0.0]], dtype="float32")
    logits = np.asarray(text.Logit()(probabilities))[:, 0]
    np.testing.assert_allclose(logits[:3], [0.0, 2.0, -2.0], atol=1e-4)
    assert np.all(np.isfinite(logits)) and logits[3] > 15 and logits[4] < -15


def test_standardize_words_tokenizes_as_scikit_learn_does():
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer = TfidfVectorizer().build_analyzer()
    texts = ["I don't like it, a B c!", "Café GREAT!!  _under_score 2nd", "x", "", "naïve--über 42"]
    standardized = text.standardize_words(tf.constant(texts)).numpy()
    assert [line.decode("utf-8").split() for line in standardized] == [analyzer(t) for t in texts]


def test_ngram_logistic_model_gives_scikit_learns_numbers():
    frame = pd.read_csv(BUNDLED, keep_default_na=False)
    part = {name: frame[frame["split"] == name] for name in ("train", "validation", "test")}
    train, validation = part["train"].iloc[:3000], part["validation"].iloc[:300]
    tfidf, regression, strength, accuracy = text.fit_tfidf_logistic(
        train["text"],
        text.parse_labels(train["label"]),
        validation["text"],
        text.parse_labels(validation["label"]),
    )
    assert strength in (1.0, 3.0, 10.0, 30.0) and 0.6 < accuracy < 0.9
    model = text.ngram_logistic_model(tfidf, regression)
    texts = part["test"]["text"].iloc[:300].tolist() + ["zzzz qqqq", "!!!", "Not good, not bad."]
    logits = np.asarray(model(tf.constant(texts)))[:, 0]
    expected = regression.decision_function(tfidf.transform(texts))
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    vocabulary = model.get_layer("ngram_vectorizer").get_vocabulary()
    assert vocabulary[0] == "[UNK]" and len(vocabulary) == len(tfidf.vocabulary_) + 1
    with pytest.raises(ValueError, match="Received: sublinear_tf=False, not fitted"):
        from sklearn.feature_extraction.text import TfidfVectorizer

        text.ngram_logistic_model(TfidfVectorizer(), regression)


def test_stack_weighs_an_informative_part_and_ignores_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    informative = (2 * labels - 1) * 2.0 + rng.normal(0, 1.5, 2000)
    noise = rng.normal(0, 3.0, 2000)
    weights, bias, accuracy = text.fit_stack(np.column_stack([informative, noise]), labels)
    assert weights[0] > 1.0 and abs(weights[1]) < 0.05 and abs(bias) < 0.2
    assert accuracy == pytest.approx(np.mean((informative > 0) == labels), abs=0.02)
    with pytest.raises(ValueError, match="Expected logits of shape"):
        text.fit_stack(informative, labels)


def test_wide_and_deep_adds_the_parts_log_odds_and_reloads(tmp_path):
    texts = np.array([review for review, _ in REVIEWS], dtype=object)
    labels = np.array([label for _, label in REVIEWS])
    vectorizer = text.make_vectorizer(texts, max_tokens=100)
    classifier = common.build_many_to_one(
        (None,),
        1,
        cell="gru",
        units=4,
        output_activation="sigmoid",
        vocab_size=vectorizer.vocabulary_size(),
        embedding_dim=4,
    )
    deep = text.end_to_end_model(vectorizer, classifier, max_length=20, name="deep")
    tfidf, regression, _, _ = text.fit_tfidf_logistic(texts, labels, texts, labels)
    wide = text.ngram_logistic_model(tfidf, regression)
    model = text.wide_and_deep_model(deep, wide, [0.5, 2.0], -0.25)
    batch = tf.constant(["great fun", "dull , not good at all", "zzz"])
    p_deep = np.asarray(deep(batch))[:, 0]
    by_hand = 1 / (
        1
        + np.exp(
            -(0.5 * np.log(p_deep / (1 - p_deep)) + 2.0 * np.asarray(wide(batch))[:, 0] - 0.25)
        )
    )
    np.testing.assert_allclose(np.asarray(model(batch))[:, 0], by_hand, rtol=1e-5)
    assert text.find_layer(model, "ngram_vectorizer") is wide.get_layer("ngram_vectorizer")
    with pytest.raises(ValueError, match="Expected a layer named 'nothing'"):
        text.find_layer(model, "nothing")
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.asarray(reloaded(batch)), np.asarray(model(batch)))


# ---------------------------------------------------------------- one quick run, shared


@pytest.fixture(scope="module")
def quick_run(quick_runs):
    """The seeded --quick run the tests share (conftest.quick_runs): two networks averaged."""
    status, stdout, stderr, out = quick_runs("sentiment")
    assert status == 0, stderr
    return out, stdout


def test_quick_run_writes_outputs_and_learns(quick_run):
    out, stdout = quick_run
    for name in ("model.keras", "metrics.json", "confusion_matrix.png", "training.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    rnn, baseline = metrics["test"]["RNN"], metrics["test"]["TF-IDF + logistic regression"]
    combined = metrics["test"]["wide & deep (RNN + n-gram logistic regression)"]
    assert set(rnn) == set(baseline) == set(combined) == {"accuracy", "F1", "ROC AUC"}
    assert "Verdict: the wide & deep" in stdout and "The RNN alone:" in stdout
    assert "TF-IDF + logistic regression" in stdout and "test accuracy by seed" in stdout
    assert set(metrics["wide"]["stack"]) == {"rnn", "ngram", "bias"}
    assert all(len(accuracies) == 2 for accuracies in metrics["test_accuracy_by_seed"].values())
    # Stacking fits three numbers on validation: it does not fall far below its better part.
    assert combined["ROC AUC"] > min(rnn["ROC AUC"], baseline["ROC AUC"]) - 0.03
    # Even the tiny quick model ranks reviews clearly better than chance (0.5).
    assert rnn["ROC AUC"] > 0.65
    assert 0.55 < baseline["accuracy"] < 1


@pytest.mark.slow  # a second training run
def test_wide_none_saves_the_rnn_alone_and_says_so(run_app, tmp_path):
    out = tmp_path / "run"
    status, stdout, stderr = run_app(
        "sentiment", "--quick", "--epochs", "1", "--wide", "none", "--out", out
    )
    assert status == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"RNN", "TF-IDF + logistic regression", "majority class"}
    assert "wide" not in metrics and "Verdict: the RNN " in stdout
    model = keras.models.load_model(out / "model.keras")
    assert model.name == "rnn" and not any(layer.name == "stack" for layer in model.layers)


def test_reload_gives_identical_probabilities(quick_run):
    out, _ = quick_run
    metrics = json.loads((out / "metrics.json").read_text())
    examples = metrics["example_predictions"]
    model = keras.models.load_model(out / "model.keras")  # plain Keras: no custom_objects
    texts = np.array([example["text"] for example in examples], dtype=object)
    reloaded = text.predict_texts(model, texts)
    np.testing.assert_allclose(
        reloaded, [example["probability"] for example in examples], rtol=0, atol=1e-6
    )
    assert np.all((reloaded > 0) & (reloaded < 1))


def test_a_text_scores_the_same_alone_or_in_a_batch_even_with_no_known_word(quick_run):
    out, _ = quick_run
    model = keras.models.load_model(out / "model.keras")
    predict = text.predict_texts
    texts = ["\U0001f600", "zzzqqq xxyyzz", "A triumph, moving and funny.", "", "Dull."]
    together = predict(model, np.array(texts, dtype=object))
    alone = [float(predict(model, np.array([one], dtype=object))[0]) for one in texts]
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-6)
    assert np.all(np.isfinite(together))


def test_predict_refuses_stdin_that_is_not_utf8(quick_run, run_app, monkeypatch):
    out, _ = quick_run
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"good\n\xff\xfe bad\n")))
    status, _, stderr = run_app("sentiment", "--load", out, "--predict", "-")
    assert_one_line_error(status, stderr, "not UTF-8")


def test_load_of_another_apps_model_is_refused(run_app, tmp_path):
    import keras as k

    other = tmp_path / "forecast_run"
    other.mkdir()
    inputs = k.Input((5, 1))
    k.Model(inputs, k.layers.Dense(1)(inputs)).save(other / "model.keras")
    status, _, stderr = run_app("sentiment", "--load", other, "--predict", "fine")
    assert_one_line_error(status, stderr, "not a sentiment model")


def test_vocabulary_never_sees_test_text(quick_run):
    out, _ = quick_run
    model = keras.models.load_model(out / "model.keras")
    vectorizer = text.find_layer(model, "vectorizer")  # inside the recurrent part
    vocabulary = set(vectorizer.get_vocabulary()[2:])  # after padding and [UNK]
    frame = pd.read_csv(BUNDLED, keep_default_na=False)
    # The wide part's n-grams, likewise, come from training snippets only.
    ngrams = text.find_layer(model, "ngram_vectorizer").get_vocabulary()[1:]  # after [UNK]
    standardized = text.standardize_words(tf.constant(frame.loc[frame["split"] == "train", "text"]))
    train_tokens = {word for line in standardized.numpy() for word in line.decode().split()}
    assert {word for gram in ngrams for word in gram.split()} <= train_tokens
    train_words = set(text.word_counts(frame.loc[frame["split"] == "train", "text"]))
    test_words = set(text.word_counts(frame.loc[frame["split"] == "test", "text"]))
    assert vocabulary <= train_words
    test_only = sorted(test_words - train_words)
    assert len(test_only) > 100
    assert not vocabulary & set(test_only)
    plain_word = next(word for word in test_only if word.isalpha())
    ids = vectorizer(np.array([f"a {plain_word} film"], dtype=object)).numpy()
    assert ids[0, 1] == 1 and ids[0, 0] > 1 and ids[0, 2] > 1  # the test-only word is [UNK]


def test_predict_prints_label_and_probability_and_skips_empty_text(quick_run, run_app):
    out, _ = quick_run
    status, stdout, stderr = run_app(
        "sentiment", "--load", out, "--predict", "A triumph.", "   ", "Dull and overlong."
    )
    assert status == 0
    lines = stdout.strip().splitlines()
    assert (
        len(lines) == 2
        and lines[0].endswith("A triumph.")
        and lines[1].endswith("Dull and overlong.")
    )
    assert all(
        line.split()[0] in ("positive", "negative") and "P(positive)=" in line for line in lines
    )
    assert "skipping text 2 of 3" in stderr
    # A word only the n-gram part knows is a word the model knows: no note.
    model = keras.models.load_model(out / "model.keras")
    vocabularies = [
        set(layer.get_vocabulary())
        for layer in text._nested_layers(model)
        if isinstance(layer, keras.layers.TextVectorization)
    ]
    assert len(vocabularies) == 2
    only_ngrams = sorted(w for w in vocabularies[1] - vocabularies[0] if w.isalpha())
    assert only_ngrams and text.without_known_words(model, [only_ngrams[0], "zqx"]) == [1]
    # '-' reads standard input: mixed with texts, one of them would be lost.
    status, _, stderr = run_app("sentiment", "--load", out, "--predict", "-", "A triumph.")
    assert status == 2 and "'-' (read standard input) cannot be mixed" in stderr
    # A text of words the model never saw gets a probability, and a note saying what it means.
    status, stdout, stderr = run_app("sentiment", "--load", out, "--predict", "A triumph.", "zqx")
    assert status == 0 and len(stdout.strip().splitlines()) == 2
    assert stderr == (
        "sentiment: note: text 2 of 2 holds no word the model knows; its probability is the "
        "model's guess for an empty text\n"
    )


def test_predict_reads_stdin(quick_run, run_app, monkeypatch):
    out, _ = quick_run
    monkeypatch.setattr("sys.stdin", io.StringIO("Loved it.\n\nHated it.\n"))
    status, stdout, stderr = run_app("sentiment", "--load", out, "--predict", "-")
    assert (
        status == 0 and len(stdout.strip().splitlines()) == 2 and "skipping text 2 of 3" in stderr
    )


def test_evaluate_gives_the_hand_counted_accuracy(quick_run, run_app, tmp_path):
    out, _ = quick_run
    model = keras.models.load_model(out / "model.keras")
    texts = [
        "A triumph.",
        "Dull and overlong.",
        "Not bad at all.",
        "I want my money back.",
        "Charming, witty and warm.",
    ]
    predicted = (text.predict_texts(model, np.array(texts, dtype=object)) >= 0.5).astype(int)
    # Label the first three as the model predicts and the last two the other way: 3 of 5 right.
    truth = np.concatenate([predicted[:3], 1 - predicted[3:]])
    spelled = {1: "fresh", 0: "rotten"}
    path = tmp_path / "hand.tsv"
    pd.DataFrame({"review": texts, "verdict": [spelled[label] for label in truth]}).to_csv(
        path, sep="\t", index=False
    )
    status, stdout, _ = run_app(
        "sentiment",
        "--load",
        out,
        "--evaluate",
        path,
        "--text-col",
        "review",
        "--label-col",
        "verdict",
    )
    assert status == 0
    assert "Accuracy 0.6000 (3 of 5 correct)" in stdout


def test_imdb_reviews_are_rebuilt_as_text_from_the_word_index(monkeypatch, tmp_path):
    # The shipped reviews are word ranks in the word index; 0 never occurs as a word.
    word_index = {"the": 1, "film": 2, "was": 3, "great": 4, "awful": 5}
    reviews = np.empty(20, dtype=object)
    reviews[:] = [[1, 2, 3, 4], [1, 2, 3, 5]] * 10
    test_reviews = np.empty(1, dtype=object)
    test_reviews[:] = [[2, 4]]
    np.savez(
        tmp_path / "imdb.npz",
        x_train=reviews,
        y_train=np.array([1, 0] * 10),
        x_test=test_reviews,
        y_test=np.array([1]),
    )
    (tmp_path / "imdb_word_index.json").write_text(json.dumps(word_index))
    fetched = []

    def get_file(name, origin, file_hash, cache_dir, cache_subdir):
        fetched.append((name, origin, cache_dir, cache_subdir))
        return str(tmp_path / name)  # already "downloaded"

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    corpus = text.load_imdb(tmp_path)
    splits, source = corpus.splits, corpus.source
    assert [name for name, *_ in fetched] == ["imdb.npz", "imdb_word_index.json"]
    assert all(cache == str(tmp_path) and sub == "" for _, _, cache, sub in fetched)
    assert splits["test"][0].tolist() == ["film great"]
    assert sorted(set(splits["train"][0]) | set(splits["validation"][0])) == [
        "the film was awful",
        "the film was great",
    ]
    assert len(splits["train"][0]) == 18 and len(splits["validation"][0]) == 2 and "IMDB" in source


# ---------------------------------------------------------------- bad input


def assert_one_line_error(status, stderr, expected):
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sentiment: error:"), stderr
    assert expected in lines[0]


@pytest.fixture
def labelled_csv(tmp_path):
    def write(rows, name="reviews.csv"):
        path = tmp_path / name
        pd.DataFrame(rows).to_csv(path, index=False)
        return path

    return write


def test_missing_data_file(run_app, tmp_path):
    assert_one_line_error(
        *run_app("sentiment", "--data", tmp_path / "nope.csv", "--out", tmp_path / "run")[::2],
        "no such file",
    )
    assert not (tmp_path / "run").exists()


def test_missing_column(run_app, labelled_csv, tmp_path):
    path = labelled_csv({"review": ["good", "bad"] * 20, "label": [1, 0] * 20})
    status, _, stderr = run_app("sentiment", "--data", path, "--out", tmp_path / "run")
    assert_one_line_error(status, stderr, "expected a text column 'text'; received columns")


def test_labels_that_are_not_binary(run_app, labelled_csv, tmp_path):
    path = labelled_csv(
        {"text": ["good", "bad", "meh"] * 10, "label": ["pos", "neg", "neutral"] * 10}
    )
    status, _, stderr = run_app("sentiment", "--data", path, "--out", tmp_path / "run")
    assert_one_line_error(status, stderr, "'neutral'")


def test_a_validation_split_too_small_to_stack_is_refused_before_training(
    run_app, labelled_csv, tmp_path
):
    texts = [f"review number {i} {'good' if i % 2 else 'bad'}" for i in range(40)]
    split = ["train"] * 30 + ["validation"] * 2 + ["test"] * 8  # validation: one of each class
    path = labelled_csv({"text": texts, "label": [i % 2 for i in range(40)], "split": split})
    status, stdout, stderr = run_app("sentiment", "--data", path, "--out", tmp_path / "run")
    assert_one_line_error(status, stderr, "holds 1 positive and 1 negative texts")
    assert "--wide none" in stderr and "Training" not in stdout
    assert not (tmp_path / "run").exists()


def test_texts_without_a_word_for_the_tfidf_baseline_are_refused_before_training(
    run_app, labelled_csv, tmp_path
):
    texts = ["a b !", "i ? x", "1 2 3", "o k"] * 10  # the RNN's tokenizer keeps these; TF-IDF not
    path = labelled_csv({"text": texts, "label": [0, 1] * 20})
    status, stdout, stderr = run_app(
        "sentiment", "--data", path, "--pretrain", "none", "--out", tmp_path / "run"
    )
    assert_one_line_error(status, stderr, "at least one word of two or more letters or digits")
    assert "Training" not in stdout and not (tmp_path / "run").exists()


def test_training_texts_longer_than_max_length_are_said_to_be_cut(run_app, labelled_csv, tmp_path):
    texts = ["a b !", "i ? x", "1 2 3", "o k"] * 10 + [
        "a ! " * 500
    ]  # no word for TF-IDF: ends early
    split = ["train"] * 30 + ["validation"] * 5 + ["test"] * 5 + ["train"]
    path = labelled_csv({"text": texts, "label": [0, 1] * 20 + [1], "split": split})
    status, stdout, stderr = run_app(
        "sentiment",
        "--data",
        path,
        "--max-length",
        50,
        "--pretrain",
        "none",
        "--out",
        tmp_path / "run",
    )
    assert "1 of 31 training texts are longer than --max-length 50 tokens" in stdout
    assert_one_line_error(status, stderr, "at least one word of two or more letters or digits")


def test_empty_text_to_predict(quick_run, run_app):
    out, _ = quick_run
    status, _, stderr = run_app("sentiment", "--load", out, "--predict", "   ")
    assert_one_line_error(status, stderr, "empty")


def test_missing_and_corrupt_model_directory(run_app, tmp_path):
    status, _, stderr = run_app("sentiment", "--load", tmp_path / "no_run", "--predict", "fine")
    assert_one_line_error(status, stderr, "no such folder")
    (tmp_path / "model.keras").write_bytes(b"not a zip archive")
    status, _, stderr = run_app("sentiment", "--load", tmp_path, "--predict", "fine")
    assert_one_line_error(status, stderr, "damaged")


def test_offline_imdb_names_the_default(run_app, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"app": "sentiment"}')  # an earlier run, to be kept
    (out / RUN_MARKER).write_text("sentiment\n")
    (out / "metrics.json").write_text("keep me")
    status, _, stderr = run_app(
        "sentiment",
        "--dataset",
        "imdb",
        "--cache-dir",
        tmp_path / "cache",
        "--out",
        out,
        "--overwrite",
    )
    assert_one_line_error(status, stderr, "bundled Rotten Tomatoes")
    assert (out / "metrics.json").read_text() == "keep me"  # nothing overwritten
