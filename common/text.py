"""Text helpers: labels, reading text tables, a vocabulary, word vectors, length-bucketed batches.

The pieces a text classifier needs around the recurrent network::

    import common.text as text
    frame = text.read_text_table("reviews.csv", text_col="text", label_col="label")
    vectorizer = text.make_vectorizer(train_texts, max_tokens=20000)     # training text only
    token_ids = text.vectorize(vectorizer, train_texts, max_length=200)
    vectors = text.pretrain_embeddings(token_ids, vectorizer.vocabulary_size(), 64)
    batches = text.bucketed_batches(token_ids, train_labels, batch_size=32)
    model = text.end_to_end_model(vectorizer, classifier, max_length=200)  # raw strings in

The custom pieces a saved model holds (the standardizer and
:class:`TruncateTokens`) are registered with Keras under the package
``rnn_workshop``, so the model reloads with plain ``keras.models.load_model``
once ``common.text`` has been imported.
"""

import zlib
from pathlib import Path

import keras

import numpy as np
import tensorflow as tf

from common.series import CSV_READ_ERRORS, error_reason

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


# ---------------------------------------------------------------- plots


def plot_confusion_matrix(
    labels, predicted, path, class_names=LABEL_NAMES, title="Confusion matrix"
):
    """Counts of true class (rows) against predicted class (columns), saved as PNG."""
    import matplotlib.pyplot as plt

    from common.plotting import save_figure

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
