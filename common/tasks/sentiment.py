"""Text helpers: labels, reading text tables, a vocabulary, word vectors, length-bucketed batches, wide & deep.

The pieces a text classifier needs around the recurrent network::

    import common.tasks.sentiment as text
    frame = text.read_text_table("reviews.csv", text_col="text", label_col="label")
    vectorizer = text.make_vectorizer(train_texts, max_tokens=20000)     # training text only
    token_ids = text.vectorize(vectorizer, train_texts, max_length=200)
    vectors = text.pretrain_embeddings(token_ids, vectorizer.vocabulary_size(), 64)
    batches = text.bucketed_batches(token_ids, train_labels, batch_size=32)
    deep = text.end_to_end_model(vectorizer, classifier, max_length=200)  # raw strings in

and the n-gram model beside it, stacked on the validation split (wide & deep)::

    tfidf, regression, C, _ = text.fit_tfidf_logistic(train_texts, train_labels, val_texts, val_labels)
    wide = text.ngram_logistic_model(tfidf, regression)              # scikit-learn's numbers, in Keras
    weights, bias, _ = text.fit_stack(text.log_odds(deep, wide, val_texts), val_labels)
    model = text.wide_and_deep_model(deep, wide, weights, bias)      # raw strings in, one probability

The custom pieces a saved model holds (the standardizers, :class:`TruncateTokens`,
:class:`TfIdf` and :class:`Logit`) are registered with Keras under the package
``rnn_workshop``, so the model reloads with plain ``keras.models.load_model``
once ``common.tasks.sentiment`` has been imported.
"""

import zlib
from pathlib import Path

import keras

import numpy as np
import tensorflow as tf

from common.data.csv_series import CSV_READ_ERRORS, error_reason

# Every spelling of a binary label we accept, lower-cased. 1 is the positive class.
LABEL_VALUES = {
    "1": 1,
    "pos": 1,
    "positive": 1,
    "fresh": 1,
    "0": 0,
    "neg": 0,
    "negative": 0,
    "rotten": 0,
}
LABEL_NAMES = ("negative", "positive")


def parse_labels(values, origin="labels", need_both=True):
    """Turn 0/1, pos/neg, positive/negative or fresh/rotten (any case) into an int array of 0 and 1.

    >>> parse_labels(["fresh", "Rotten", " 1", 0]).tolist()
    [1, 0, 1, 0]

    Raises:
        ValueError: a value that is none of those, or (with ``need_both``) only
            one class present: training a classifier needs both.
    """
    cleaned = [str(value).strip().lower() for value in values]
    # "1.0"/"0.0" appear when pandas read an integer column with gaps as floats.
    cleaned = [{"1.0": "1", "0.0": "0"}.get(value, value) for value in cleaned]
    unknown = sorted({value for value in cleaned if value not in LABEL_VALUES})
    if unknown:
        shown = ", ".join(repr(value) for value in unknown[:5]) + (
            ", ..." if len(unknown) > 5 else ""
        )
        raise ValueError(
            f"{origin}: labels must be binary (0/1, pos/neg, positive/negative or fresh/rotten); "
            f"found {len(unknown)} other value(s): {shown}"
        )
    labels = np.array([LABEL_VALUES[value] for value in cleaned], dtype="int32")
    if need_both and len(labels) and len(set(labels.tolist())) < 2:
        raise ValueError(
            f"{origin}: every label is {LABEL_NAMES[labels[0]]}; a binary classifier needs both classes"
        )
    return labels


def read_text_table(
    path, text_col="text", label_col="label", origin=None, need_labels=True, need_both=True
):
    """Read a CSV or TSV (``.tsv``/``.tab``, or tabs sniffed) into a frame with ``text`` and ``label`` columns.

    ``label`` holds 0/1 from :func:`parse_labels`; rows with an empty text are
    dropped. With ``need_labels=False`` a missing label column is allowed and
    ``label`` is absent from the result. A ``split`` column (train, validation,
    test), if the file has one, is kept.

    Raises:
        ValueError: a missing or unreadable file, a missing column, non-binary labels;
            the message starts with ``origin``.
    """
    import pandas as pd

    path = Path(path)
    origin = origin or str(path)
    if not path.is_file():
        raise ValueError(f"{origin}: no such file")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        separator = "\t"
    else:
        try:
            import gzip

            opener = gzip.open if path.name.lower().endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
                first_line = handle.readline()
        except (OSError, EOFError, zlib.error) as error:  # EOFError: a truncated .gz
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise ValueError(f"{origin}: cannot be read ({reason})") from None
        separator = "\t" if first_line.count("\t") > first_line.count(",") else ","
    try:
        frame = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False)
    except CSV_READ_ERRORS as error:
        reason = error_reason(error, limit=120)
        raise ValueError(f"{origin}: not a readable CSV/TSV ({reason})") from None
    columns = [text_col] + ([label_col] if need_labels else [])
    for column, role in zip(columns, ("text", "label")):
        if column not in frame.columns:
            raise ValueError(
                f"{origin}: expected a {role} column '{column}'; received columns "
                f"{', '.join(map(str, frame.columns))}"
            )
    texts = frame[text_col].astype(str)
    keep = texts.str.strip() != ""
    result = pd.DataFrame({"text": texts[keep].to_numpy()})
    if need_labels:
        labels = frame[label_col][keep]
        result["label"] = parse_labels(
            labels.tolist(), origin=f"{origin}, column '{label_col}'", need_both=need_both
        )
    if "split" in frame.columns and "split" not in (text_col, label_col):
        result["split"] = frame["split"][keep].str.strip().str.lower().to_numpy()
    if len(result) == 0:
        raise ValueError(f"{origin}: no rows with text in column '{text_col}'")
    return result


# ---------------------------------------------------------------- tokens


@keras.saving.register_keras_serializable(package="rnn_workshop")
def standardize_review(texts):
    """Lower-case and split off punctuation and clitics, so "great!" and "isn't" become "great !" and "is n't".

    Keras's default standardizer deletes punctuation, but "!" and "?" carry
    sentiment and "n't" flips it; keeping them as tokens lets the model see
    them. HTML line breaks (common in IMDB reviews) become spaces.
    """
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, r"<br\s*/?>", " ")
    texts = tf.strings.regex_replace(
        texts, r"(^|\s)'|'(\s|$)", r"\1 \2"
    )  # quotation marks, not "it's"
    texts = tf.strings.regex_replace(texts, r"n't\b", " n't")
    texts = tf.strings.regex_replace(texts, r"'(s|re|ve|ll|d|m)\b", r" '\1")
    texts = tf.strings.regex_replace(texts, r"([!?.,;:()\"]|--)", r" \1 ")
    return tf.strings.regex_replace(texts, r"[^a-z0-9!?.,;:()\"'\- ]", " ")


def tokenize(text):
    """What :func:`standardize_review` plus a whitespace split makes of one string, in Python.

    >>> tokenize("Isn't it GREAT?!")
    ['is', "n't", 'it', 'great', '?', '!']
    """
    return standardize_review(tf.constant([text])).numpy()[0].decode("utf-8").split()


def make_vectorizer(train_texts, max_tokens=20000):
    """A ``TextVectorization`` layer whose vocabulary comes from ``train_texts`` only.

    Fitting on validation or test text would leak: words seen only there would
    get their own ids. Words outside the vocabulary map to id 1 (``[UNK]``);
    id 0 is padding, which the embedding masks.

    Args:
        train_texts: the training split's strings, never anything else.
        max_tokens: the vocabulary size, padding and ``[UNK]`` included; the
            most frequent words are kept.
    """
    vectorizer = keras.layers.TextVectorization(
        max_tokens=max_tokens,
        standardize=standardize_review,
        split="whitespace",
        output_mode="int",
        name="vectorizer",
    )
    vectorizer.adapt(
        tf.data.Dataset.from_tensor_slices(np.asarray(train_texts, dtype=object)).batch(1024)
    )
    return vectorizer


def word_counts(texts):
    """How often each token occurs in ``texts``, after :func:`standardize_review`."""
    from collections import Counter

    standardized = standardize_review(tf.constant(np.asarray(texts, dtype=object))).numpy()
    return Counter(word for line in standardized for word in line.decode("utf-8").split())


def vectorize(vectorizer, texts, max_length):
    """Token ids for ``texts`` as a list of int arrays, each cut to at most ``max_length`` and unpadded."""
    ids = []
    for start in range(0, len(texts), 2048):
        batch = vectorizer(
            tf.constant(np.asarray(texts[start : start + 2048], dtype=object))
        ).numpy()
        ids.extend(row[row != 0][:max_length] for row in batch)
    return ids


@keras.saving.register_keras_serializable(package="rnn_workshop")
class TruncateTokens(keras.layers.Layer):
    """Keep the first ``max_length`` token ids of each padded row, and never fewer than one.

    The saved model reads any text; a 5,000-word review is cut to the length
    the network was trained on instead of costing 5,000 recurrent steps. A
    batch of texts with no token at all (an emoji alone: the standardiser
    removes it) would give rows of length 0, which no recurrent layer can run
    over; one padding id (0, masked) is added, so such a text scores the same
    alone as beside others.

    >>> tuple(TruncateTokens(3)(np.array([[5, 6, 7, 8]])).shape)
    (1, 3)
    >>> tuple(TruncateTokens(3)(np.zeros((2, 0), dtype="int64")).shape)
    (2, 1)
    """

    def __init__(self, max_length, **kwargs):
        super().__init__(**kwargs)
        self.max_length = int(max_length)

    def call(self, token_ids):
        padded = keras.ops.pad(token_ids, [[0, 0], [0, 1]])  # one masked step: a row is never empty
        return padded[:, : self.max_length]

    def compute_output_shape(self, input_shape):
        length = (
            input_shape[1] if input_shape[1] is None else min(input_shape[1] + 1, self.max_length)
        )
        return (input_shape[0], length)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


# ---------------------------------------------------------------- pretraining


def pretrain_embeddings(token_ids, vocab_size, embedding_dim, window=4, row_norm=0.3, seed=0):
    """Word vectors from unlabelled text, by counting: PPMI co-occurrences, then truncated SVD.

    Two words that appear near the same words get similar vectors: "superb"
    and "terrific" both sit next to "performance" and "a". This is the
    count-based cousin of word2vec (Levy and Goldberg, 2014, show the two
    factorise nearly the same matrix), and it takes seconds, with no training
    loop. An embedding that starts from these vectors has already met the
    rare words of the labelled data in the unlabelled text.

    Steps: count how often word ``j`` occurs within ``window`` tokens of word
    ``i`` (nearer neighbours count more: 1/distance), turn counts into positive
    pointwise mutual information ``max(0, log p(i, j) / (p(i) p(j)^0.75))``,
    and keep the top ``embedding_dim`` singular directions of that matrix.

    Args:
        token_ids: list of 1-D int arrays (training and unlabelled text only;
            never validation or test text).
        vocab_size: rows of the result, as the embedding layer has.
        embedding_dim: columns of the result.
        window: how many tokens either side count as context.
        row_norm: each word's vector is scaled to this length, about the size
            of Keras's default random initialisation, so training starts
            at a familiar scale.

    Returns:
        float32 array (vocab_size, embedding_dim) for ``Embedding.set_weights``.
    """
    import scipy.sparse
    from sklearn.decomposition import TruncatedSVD

    if embedding_dim >= vocab_size:
        raise ValueError(
            f"Expected embedding_dim < vocab_size. Received: embedding_dim={embedding_dim}, vocab_size={vocab_size}"
        )
    rows, columns, weights = [], [], []
    for ids in token_ids:
        ids = np.asarray(ids)
        for distance in range(1, window + 1):
            if len(ids) > distance:
                pairs = len(ids) - distance
                rows += [ids[:-distance], ids[distance:]]
                columns += [ids[distance:], ids[:-distance]]
                weights += [np.full(2 * pairs, 1.0 / distance)]
    counts = (
        scipy.sparse.coo_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(columns))),
            shape=(vocab_size, vocab_size),
        )
        .tocsr()
        .tocoo()
    )  # tocsr() sums repeated pairs
    total = counts.sum()
    word_totals = np.asarray(counts.sum(axis=1)).ravel()
    context_totals = (
        np.asarray(counts.sum(axis=0)).ravel() ** 0.75
    )  # smoothing: rare contexts count less
    context_totals = context_totals / context_totals.sum() * total
    pmi = np.log(counts.data * total / (word_totals[counts.row] * context_totals[counts.col]))
    positive = pmi > 0
    ppmi = scipy.sparse.csr_matrix(
        (pmi[positive], (counts.row[positive], counts.col[positive])),
        shape=(vocab_size, vocab_size),
    )
    vectors = TruncatedSVD(embedding_dim, random_state=seed).fit_transform(ppmi)
    lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (row_norm * vectors / np.maximum(lengths, 1e-8)).astype("float32")


# ---------------------------------------------------------------- batches


def bucketed_batches(token_ids, labels, batch_size, shuffle=True, seed=0, num_buckets=8):
    """A ``tf.data`` pipeline of padded batches whose texts have similar lengths.

    Padding a 5-word snippet to the 60 words of the longest text in a random
    batch wastes 55 recurrent steps; grouping texts of similar length first
    keeps each batch only as long as it must be. Bucket edges are quantiles of
    the lengths, so the buckets fill evenly.

    Args:
        token_ids: a list of 1-D int arrays (unpadded), e.g. from :func:`vectorize`.
        labels: one 0/1 label per text.
        batch_size: texts per batch.
        shuffle: shuffle texts within buckets and the order of batches (training).
        seed: seed for the shuffles.
    """
    lengths = np.array([max(len(ids), 1) for ids in token_ids])
    padded = keras.utils.pad_sequences(
        [ids if len(ids) else [1] for ids in token_ids], padding="post"
    ).astype("int64")
    dataset = tf.data.Dataset.from_tensor_slices(
        (padded, lengths, np.asarray(labels, dtype="float32"))
    )
    dataset = dataset.map(
        lambda ids, length, label: (ids[:length], label)
    )  # unpad; buckets pad again
    if shuffle:
        dataset = dataset.shuffle(len(lengths), seed=seed, reshuffle_each_iteration=True)
    boundaries = sorted(
        set(
            np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1]).astype(int).tolist()
            + [1]
        )
    )
    boundaries = [
        edge + 1 for edge in boundaries
    ]  # bucket_by_sequence_length's edges are exclusive upper bounds
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda ids, label: tf.shape(ids)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    # Tell Keras how many batches an epoch has (each bucket ends with one partial batch).
    per_bucket = np.bincount(
        np.searchsorted(boundaries, lengths, side="right"), minlength=len(boundaries) + 1
    )
    dataset = dataset.apply(
        tf.data.experimental.assert_cardinality(int(np.sum(-(-per_bucket // batch_size))))
    )
    if shuffle:
        dataset = dataset.shuffle(64, seed=seed, reshuffle_each_iteration=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def padded_batches(token_ids, labels, batch_size, length, shuffle=True, seed=0):
    """The plain keras.io setup: every text padded (or cut) to ``length``, batches in random order."""
    padded = keras.utils.pad_sequences(
        [ids if len(ids) else [1] for ids in token_ids],
        maxlen=length,
        padding="post",
        truncating="post",
    )
    dataset = tf.data.Dataset.from_tensor_slices(
        (padded.astype("int64"), np.asarray(labels, dtype="float32"))
    )
    if shuffle:
        dataset = dataset.shuffle(len(padded), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def padding_share(batches):
    """Share of token slots in ``batches`` that are padding (id 0): the wasted recurrent steps."""
    padding = total = 0
    for ids, _ in batches:
        total += int(tf.size(ids))
        padding += int(tf.reduce_sum(tf.cast(ids == 0, "int32")))
    return padding / max(total, 1)


# ---------------------------------------------------------------- models


def end_to_end_model(vectorizer, classifier, max_length, name="sentiment"):
    """Raw strings in, probability out: ``vectorizer`` -> :class:`TruncateTokens` -> ``classifier``.

    ``classifier`` maps padded token ids (batch, timesteps) to (batch, 1); it is
    trained on its own with bucketed batches, then wrapped here so the saved
    ``.keras`` file needs no vocabulary file beside it.
    """
    strings = keras.Input(shape=(), dtype="string", name="text")
    token_ids = vectorizer(strings)
    token_ids = TruncateTokens(max_length, name="truncate")(token_ids)
    probability = classifier(token_ids)
    return keras.Model(strings, probability, name=name)


# ---------------------------------------------------------------- wide & deep


@keras.saving.register_keras_serializable(package="rnn_workshop")
class Logit(keras.layers.Layer):
    """A probability back to its log-odds, ``log(p / (1 - p))``: the inverse of the sigmoid.

    The recurrent part outputs a probability (an average over seeds); stacking
    adds log-odds, so the probability is turned back. It is clipped to
    ``[1e-7, 1 - 1e-7]`` first, so a network that is sure gives a large
    finite logit (about 16), never infinity.

    >>> np.round(np.asarray(Logit()(np.array([[0.5], [0.880797]]))), 4).tolist()
    [[0.0], [2.0]]
    """

    def call(self, probability):
        probability = keras.ops.clip(probability, 1e-7, 1 - 1e-7)
        return keras.ops.log(probability) - keras.ops.log1p(-probability)


def fit_tfidf_logistic(
    train_texts, train_labels, val_texts, val_labels, *, max_features=200_000,
    strengths=(1.0, 3.0, 10.0, 30.0),
):  # fmt: skip
    """The classical baseline: TF-IDF of word 1-2 grams and a logistic regression (scikit-learn).

    ``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)`` fit on the
    training texts only, then ``LogisticRegression`` for each ``C`` in
    ``strengths``; the ``C`` with the best validation accuracy is kept.

    Args:
        max_features: keep the most frequent n-grams. Rotten Tomatoes' training
            snippets hold 126,000 word 1-2 grams, IMDB's reviews millions; in
            Keras (:func:`ngram_logistic_model`) each text becomes one number
            per n-gram.

    Returns:
        ``(tfidf, regression, C, validation_accuracy)``: the fitted
        ``TfidfVectorizer`` and ``LogisticRegression``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=max_features)
    analyze = tfidf.build_analyzer()
    if not any(analyze(str(line)) for line in train_texts):
        raise ValueError(
            "Expected training texts with at least one word of two or more letters or digits. "
            f"Received: none in {len(train_texts)} texts"
        )
    train_features = tfidf.fit_transform(train_texts)  # fit on training text only
    val_features = tfidf.transform(val_texts)
    best = None
    for strength in strengths:
        candidate = LogisticRegression(C=strength, max_iter=2000).fit(train_features, train_labels)
        accuracy = float(np.mean(candidate.predict(val_features) == np.asarray(val_labels)))
        if best is None or accuracy > best[0]:
            best = (accuracy, strength, candidate)
    validation_accuracy, strength, regression = best
    return tfidf, regression, strength, validation_accuracy


@keras.saving.register_keras_serializable(package="rnn_workshop")
def standardize_words(texts):
    """Lower-case and keep words of two or more letters or digits, as scikit-learn's vectorizers do.

    scikit-learn lower-cases and takes tokens matching ``\\b\\w\\w+\\b``:
    punctuation goes, and so do one-character words ("a", "I", the "t" of
    "don't"). Here: every run of other characters becomes a double space, then
    one-character words are dropped, so a whitespace split gives the same tokens.
    """
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, r"[^\pL\pN_]+", "  ")
    texts = tf.strings.regex_replace(tf.strings.join([" ", texts, " "]), r" [\pL\pN_] ", " ")
    return tf.strings.strip(texts)


@keras.saving.register_keras_serializable(package="rnn_workshop")
class TfIdf(keras.layers.Layer):
    """Counts of n-grams in, scikit-learn's sublinear TF-IDF out: ``(1 + log count) * idf``.

    A count of 0 stays 0. The inverse document frequencies are a weight of the
    layer (not trained), so they travel in the ``.keras`` file; set them with
    ``set_weights([idf])``.

    >>> layer = TfIdf(3)
    >>> layer.set_weights([np.array([0.0, 2.0, 1.0], "float32")])
    >>> np.asarray(layer(np.array([[5.0, 1.0, np.e]], "float32"))).round(3).tolist()
    [[0.0, 2.0, 2.0]]
    """

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)
        self.idf = self.add_weight(
            shape=(self.size,), initializer="ones", trainable=False, name="idf"
        )

    def call(self, counts):
        counts = keras.ops.convert_to_tensor(counts, dtype=self.compute_dtype)
        safe = keras.ops.maximum(counts, 1.0)  # log(0) is never taken
        return keras.ops.where(counts > 0, 1.0 + keras.ops.log(safe), 0.0) * self.idf

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def ngram_logistic_model(tfidf, regression, name="ngram_logistic"):
    """The fitted TF-IDF + logistic regression as Keras layers: the *wide* part of wide & deep.

    Raw strings (batch,) in, the log-odds of "positive" (batch, 1) out, the
    same numbers scikit-learn computes (``regression.decision_function``):

    ``TextVectorization`` (``output_mode="count"``, word 1-2 grams, the
    vectorizer's vocabulary; :func:`standardize_words` tokenizes as
    scikit-learn does) -> :class:`TfIdf` (the vectorizer's idf) ->
    ``UnitNormalization`` (rows of length 1) -> ``Dense(1)`` (the regression's
    weights). A model made of layers saves and reloads with the recurrent part,
    so the saved file still takes raw strings.

    Args:
        tfidf: a fitted ``TfidfVectorizer(ngram_range=(1, n), sublinear_tf=True)``,
            default tokenizer, as :func:`fit_tfidf_logistic` returns.
        regression: a fitted binary ``LogisticRegression`` on its features.
    """
    expected = {
        "analyzer": "word", "token_pattern": r"(?u)\b\w\w+\b", "tokenizer": None,
        "preprocessor": None, "stop_words": None, "strip_accents": None, "lowercase": True,
        "binary": False, "use_idf": True, "sublinear_tf": True, "norm": "l2",
    }  # fmt: skip
    wrong = [
        f"{name}={getattr(tfidf, name, None)!r}"
        for name, value in expected.items()
        if getattr(tfidf, name, None) != value
    ]
    wrong += (
        [] if getattr(tfidf, "ngram_range", (0,))[0] == 1 else [f"ngram_range={tfidf.ngram_range}"]
    )
    wrong += [] if hasattr(tfidf, "idf_") else ["not fitted"]
    if wrong:
        raise ValueError(
            "Expected a fitted TfidfVectorizer with the default word tokenizer, "
            f"ngram_range=(1, n), sublinear_tf=True and norm='l2'. Received: {', '.join(wrong)}"
        )
    if getattr(regression, "coef_", np.zeros((0, 0))).shape != (1, len(tfidf.idf_)):
        raise ValueError(
            f"Expected a binary LogisticRegression fitted on the vectorizer's "
            f"{len(tfidf.idf_)} features. Received: coef_ of shape "
            f"{getattr(regression, 'coef_', np.zeros(0)).shape}"
        )
    vocabulary = sorted(tfidf.vocabulary_, key=tfidf.vocabulary_.get)  # by column
    vectorizer = keras.layers.TextVectorization(
        standardize=standardize_words, split="whitespace", ngrams=tfidf.ngram_range[1],
        output_mode="count", vocabulary=vocabulary, name="ngram_vectorizer",
    )  # fmt: skip
    strings = keras.Input(shape=(), dtype="string", name="text")
    counts = vectorizer(strings)  # column 0 counts the n-grams outside the vocabulary
    # float32 throughout, also under a mixed-precision policy: these are scikit-learn's numbers.
    weighted = TfIdf(len(vocabulary) + 1, name="tfidf", dtype="float32")
    features = keras.layers.UnitNormalization(name="ngram_l2", dtype="float32")(weighted(counts))
    head = keras.layers.Dense(1, name="ngram_logit", dtype="float32")
    model = keras.Model(strings, head(features), name=name)
    weighted.set_weights([np.concatenate([[0.0], tfidf.idf_]).astype("float32")])
    head.set_weights(
        [
            np.concatenate([[0.0], regression.coef_[0]]).astype("float32")[:, None],
            regression.intercept_.astype("float32"),
        ]
    )
    return model


def fit_stack(logits, labels, seed=0):
    """Weights that add the parts' log-odds into one prediction, fit on held-out texts.

    Stacking: a logistic regression whose inputs are each part's log-odds,
    ``sigmoid(w_1 * logit_1 + w_2 * logit_2 + b)``, fit on the validation
    split, where neither part's weights were fit. Three numbers learn how far
    to trust each part and how to calibrate the sum.

    Args:
        logits: (texts, parts) log-odds of each part on the validation texts.
        labels: the texts' 0/1 labels.

    Returns:
        ``(weights, bias, cross_validated_accuracy)``: the accuracy is
        estimated by 5-fold cross-validation on those same texts, so it is not
        flattered by fitting the weights there.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    logits, labels = np.asarray(logits, dtype="float64"), np.asarray(labels)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(
            f"Expected logits of shape (texts, parts) and one label per text. Received: "
            f"logits.shape={logits.shape}, {len(labels)} labels"
        )
    counts = [int(np.sum(labels == label)) for label in (0, 1)]
    if not np.isin(labels, (0, 1)).all() or min(counts) < 2:
        raise ValueError(
            "Expected labels 0 and 1, at least 2 texts of each. Received: "
            f"{counts[0]} of 0, {counts[1]} of 1, {len(labels) - sum(counts)} other"
        )
    stacker = LogisticRegression(C=1.0)
    folds = StratifiedKFold(n_splits=min(5, min(counts)), shuffle=True, random_state=seed)
    predicted = cross_val_predict(stacker, logits, labels, cv=folds)
    stacker.fit(logits, labels)
    return stacker.coef_[0], float(stacker.intercept_[0]), float(np.mean(predicted == labels))


def wide_and_deep_model(deep, wide, weights, bias, name="wide_and_deep"):
    """Raw strings in, one probability out: ``sigmoid(w_deep * logit_deep + w_wide * logit_wide + b)``.

    ``deep`` (strings -> probability, e.g. :func:`end_to_end_model`) and
    ``wide`` (strings -> log-odds, :func:`ngram_logistic_model`) are kept whole
    inside, so ``model.get_layer(deep.name)`` gives the recurrent part back.
    ``weights`` and ``bias`` come from :func:`fit_stack`.
    """
    strings = keras.Input(shape=(), dtype="string", name="text")
    # float32 also under a mixed-precision policy: in float16, 1 - 1e-7 rounds to 1.
    deep_logit = Logit(name="deep_logit", dtype="float32")(deep(strings))
    logits = keras.layers.Concatenate(name="logits", dtype="float32")([deep_logit, wide(strings)])
    stack = keras.layers.Dense(1, activation="sigmoid", name="stack", dtype="float32")
    probability = stack(logits)
    stack.set_weights([np.asarray(weights, "float32").reshape(2, 1), np.asarray([bias], "float32")])
    return keras.Model(strings, probability, name=name)


def predict_texts(model, texts, batch_size=256):
    """``model``'s first output for each raw string, in order, as float32 (e.g. P(positive)).

    Texts are sorted by length first, so each batch is padded little.
    """
    texts = np.asarray(texts, dtype=object)
    order = np.argsort([len(t) for t in texts], kind="stable")
    outputs = np.empty(len(texts), dtype="float32")
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        outputs[rows] = np.asarray(
            model.predict_on_batch(keras.ops.convert_to_tensor(texts[rows].tolist()))
        )[:, 0]
    return outputs


def log_odds(deep, wide, texts):
    """What :func:`fit_stack` reads: (texts, 2) log-odds, ``deep``'s then ``wide``'s.

    ``deep`` gives probabilities, turned into log-odds as :class:`Logit` does;
    ``wide`` gives log-odds already.
    """
    return np.column_stack([probability_log_odds(deep, texts), predict_texts(wide, texts)])


def probability_log_odds(model, texts):
    """``log(p / (1 - p))`` of ``model``'s probability for each text, ``p`` clipped as :class:`Logit` clips it."""
    probability = np.clip(predict_texts(model, texts).astype("float64"), 1e-7, 1 - 1e-7)
    return np.log(probability / (1 - probability))


def find_layer(model, name):
    """The layer called ``name`` in ``model`` or in any model nested inside it; ``ValueError`` if none."""
    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            try:
                return find_layer(layer, name)
            except ValueError:
                pass
    raise ValueError(f"Expected a layer named {name!r} in model {model.name!r}. Received none")


# ---------------------------------------------------------------- plots


def plot_confusion_matrix(
    labels, predicted, path, class_names=LABEL_NAMES, title="Confusion matrix"
):
    """Counts of true class (rows) against predicted class (columns), saved as PNG."""
    import matplotlib.pyplot as plt

    from common.report.plots import save_figure

    matrix = np.zeros((2, 2), dtype=int)
    for true, guess in zip(np.asarray(labels, dtype=int), np.asarray(predicted, dtype=int)):
        matrix[true, guess] += 1
    figure, axis = plt.subplots(figsize=(4.6, 4))
    axis.imshow(matrix, cmap="Blues")
    for row in range(2):
        for column in range(2):
            axis.text(
                column,
                row,
                str(matrix[row, column]),
                ha="center",
                va="center",
                color="white" if matrix[row, column] > matrix.max() / 2 else "black",
                fontsize=13,
            )
    axis.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=class_names,
        yticklabels=class_names,
        xlabel="predicted class",
        ylabel="true class",
        title=title,
    )
    return save_figure(figure, path)
