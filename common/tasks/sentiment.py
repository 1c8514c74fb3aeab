"""Sentiment, the one definition: corpora, text pipeline, the RNN classifier, wide & deep, scores.

apps/sentiment.py, notebook 09, bench/sentiment.py and the tests all import
from here. The pieces a text classifier needs around the recurrent network::

    import common.tasks.sentiment as text
    corpus = text.load_table("reviews.csv", text_col="text", label_col="label")  # or load_imdb
    train_texts, train_labels = corpus.splits["train"]
    vectorizer = text.make_vectorizer(train_texts, max_tokens=20000)     # training text only
    token_ids = text.vectorize(vectorizer, train_texts, max_length=200)
    vectors = text.pretrain_embeddings(token_ids, vectorizer.vocabulary_size(), 64)
    batches = text.bucketed_batches(token_ids, train_labels, batch_size=32)
    classifier = text.build_classifier(vectorizer.vocabulary_size(), embedding_weights=vectors)
    deep = text.end_to_end_model(vectorizer, classifier, max_length=200)  # raw strings in

and the n-gram model beside it, stacked on the validation split (wide & deep)::

    tfidf, regression, C, _ = text.fit_tfidf_logistic(train_texts, train_labels, val_texts, val_labels)
    wide = text.ngram_logistic_model(tfidf, regression)              # scikit-learn's numbers, in Keras
    weights, bias, _ = text.fit_stack(text.log_odds(deep, wide, val_texts), val_labels)
    model = text.wide_and_deep_model(deep, wide, weights, bias)      # raw strings in, one probability
    text.scores(test_labels, text.predict_texts(model, test_texts))  # accuracy, F1, ROC AUC

The custom pieces a saved model holds (the standardizers, :class:`TruncateTokens`,
:class:`TfIdf` and :class:`Logit`) are registered with Keras under the package
``rnn_workshop``, so the model reloads with plain ``keras.models.load_model``
once ``common.tasks.sentiment`` has been imported.
"""

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import keras

import numpy as np
import tensorflow as tf

from common.data.files import read_table, repeated_heading, show
from common.models.recurrent import build_many_to_one
from common.models.training import set_seed

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
    count, shown = _unknown(cleaned, LABEL_VALUES)
    if count:
        raise ValueError(
            f"{origin}: labels must be binary (0/1, pos/neg, positive/negative or fresh/rotten); "
            f"found {count} other value(s): {shown}"
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
    """Read a CSV or TSV into a frame with ``text`` and ``label`` columns.

    The separator is a tab for ``.tsv``/``.tab`` files, else sniffed; gzip is
    unpacked by content (:func:`common.data.files.read_table`). ``label``
    holds 0/1 from :func:`parse_labels`; rows with an empty text are dropped.
    With ``need_labels=False`` a missing label column is allowed and
    ``label`` is absent from the result. A ``split`` column (train,
    validation, test; its heading in any case), if the file has one, is kept as
    ``split``, with ``row``, each text's row in the file (1 = the first data row).

    Raises:
        ValueError: a missing or unreadable file, a missing column, non-binary labels;
            the message starts with ``origin``.
    """
    import pandas as pd

    path = Path(path)
    origin = origin or str(path)
    tabs = path.name.lower().removesuffix(".gz").endswith((".tsv", ".tab"))
    frame = read_table(path, origin, separator="\t" if tabs else None)
    frame.columns = [str(column).strip() for column in frame.columns]
    if repeated := repeated_heading(frame, (text_col, label_col)):  # which one is meant?
        raise ValueError(f"{origin}: expected one column named '{repeated}'; the file has several")
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
    result.attrs["notes"] = []
    if not keep.all():  # said, never dropped silently
        first = int(np.flatnonzero(~keep.to_numpy())[0]) + 1
        skipped = int((~keep).sum())
        result.attrs["notes"].append(
            f"skipped {skipped} row{'s' if skipped > 1 else ''} with no text (first: row {first})"
        )
    if need_labels:
        labels = frame[label_col][keep]
        result["label"] = parse_labels(
            labels.tolist(), origin=f"{origin}, column '{label_col}'", need_both=need_both
        )
    headings = [column for column in frame.columns if column not in (text_col, label_col)]
    split_col = next((c for c in headings if str(c).strip().lower() == "split"), None)
    if split_col is not None:
        result["split"] = frame[split_col][keep].to_numpy()  # read by split_names
        result["row"] = np.flatnonzero(keep.to_numpy()) + 1
    if len(result) == 0:
        raise ValueError(f"{origin}: no rows with text in column '{text_col}'")
    return result


# ---------------------------------------------------------------- corpora

SPLIT_SEED = 20240  # the bundled file's split (data/build_sentiment.py), and --data files' split
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, validation, test
IMDB_FILES = {  # the files keras.datasets.imdb downloads, with the hashes Keras checks them by
    "imdb.npz": "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
    "imdb_word_index.json": "bfafd718b763782e994055a2d397834f",
}
IMDB_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


@dataclass
class Corpus:
    """Labelled texts split three ways, unlabelled texts for pretraining, and where they came from."""

    splits: dict  # "train" / "validation" / "test" -> (texts, 0/1 labels)
    unlabelled: np.ndarray  # texts without labels (pretraining only), maybe none
    source: str
    class_names: tuple = LABEL_NAMES  # the names of labels 0 and 1
    notes: tuple = ()  # what reading the file skipped, in words

    def count(self, part):
        return len(self.splits[part][1])

    def __str__(self):
        counts = {part: self.count(part) for part in self.splits}
        return (
            f"{self.source}; texts: {counts['train']} train, {counts['validation']} "
            f"validation, {counts['test']} test"
            + (f", {len(self.unlabelled)} unlabelled" if len(self.unlabelled) else "")
            + "".join(f"; {note}" for note in self.notes)
        )


def stratified_split(labels, seed=SPLIT_SEED, fractions=SPLIT_FRACTIONS):
    """ "train", "validation" or "test" for each label: fixed shares of each class, seeded shuffle.

    >>> split = stratified_split(np.array([0] * 10 + [1] * 30), seed=0)
    >>> [int(np.sum(split[:10] == "test")), int(np.sum(split[10:] == "test"))]
    [1, 3]
    """
    rng = np.random.default_rng(seed)
    split = np.empty(len(labels), dtype=object)
    for label in np.unique(labels):  # in sorted order, so the shuffles repeat
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_val, n_test = int(round(len(rows) * fractions[1])), int(round(len(rows) * fractions[2]))
        split[rows[:n_test]] = "test"
        split[rows[n_test : n_test + n_val]] = "validation"
        split[rows[n_test + n_val :]] = "train"
    return split


def _unknown(cleaned, known):
    """How many distinct values of ``cleaned`` are not in ``known``, and the first five quoted."""
    unknown = sorted({value for value in cleaned if value not in known})
    shown = ", ".join(repr(value) for value in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
    return len(unknown), shown


# A split column's spellings, lower-cased, and the split each names.
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}


def split_names(values, origin="split", rows=None):
    """Each value of a ``split`` column as "train", "validation" or "test" (dev, val ... too).

    ``rows``: each value's row in the file, to name where the first unknown value is.

    >>> split_names(["train", "dev", "Val", "test"]).tolist()
    ['train', 'validation', 'validation', 'test']

    Raises:
        ValueError: a value that names no split; a row is never dropped silently.
    """
    values = list(values)
    cleaned = [str(value).strip().lower() for value in values]
    count, shown = _unknown(cleaned, SPLIT_NAMES)
    if count:
        first = next(n for n, value in enumerate(cleaned) if value not in SPLIT_NAMES)
        row = first + 1 if rows is None else rows[first]
        raise ValueError(
            f"{origin}: expected the split values train, validation (or dev, val, valid) and "
            f"test; received {shown}, the first in row {row} ({show(values[first])}) (fix those "
            "rows, or rename the 'split' heading to split the file 80/10/10 instead)"
        )
    return np.array([SPLIT_NAMES[value] for value in cleaned], dtype=object)


def load_rotten_tomatoes(path):
    """The bundled snippets (``data/rotten_tomatoes.csv.gz``): its fixed split, and plot summaries."""
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=False)
    frame = frame[frame["text"].str.strip() != ""]
    labelled = frame[frame["split"] != "unlabelled"]
    splits = {
        name: (part["text"].to_numpy(dtype=object), parse_labels(part["label"], origin=str(path)))
        for name, part in labelled.groupby("split")
    }
    unlabelled = frame.loc[frame["split"] == "unlabelled", "text"].to_numpy(dtype=object)
    source = "bundled Rotten Tomatoes snippets (data/rotten_tomatoes.csv.gz)"
    return Corpus(splits, unlabelled, source, ("rotten", "fresh"))


def load_table(path, text_col="text", label_col="label", name=None):
    """A labelled CSV/TSV, split by its ``split`` column, else by :func:`stratified_split`.

    A ``split`` column with train and test rows but no validation rows gives
    a ninth of the training rows (seeded) to validation.

    Raises:
        ValueError: as :func:`read_text_table`, or too few texts to train and
            score on; the message starts with ``name``.
    """
    name = name or str(path)
    frame = read_text_table(path, text_col, label_col, origin=name)
    if "split" in frame.columns:
        frame["split"] = split_names(frame["split"], name, frame["row"].to_numpy())
        found = frame["split"].value_counts()
        if "train" not in found or "test" not in found:  # never a silent 80/10/10 instead
            parts = ("train", "validation", "test")
            counts = ", ".join(f"{found.get(part, 0)} {part}" for part in parts)
            raise ValueError(
                f"{name}: expected train and test rows in the 'split' column; received "
                f"{counts} (rename the 'split' heading to split the file 80/10/10 instead)"
            )
        split = frame["split"].to_numpy()
        if "validation" not in set(split):  # carve validation out of train
            train_rows = np.flatnonzero(split == "train")
            rng = np.random.default_rng(SPLIT_SEED)
            split = split.copy()
            split[rng.permutation(train_rows)[: len(train_rows) // 9]] = "validation"
    else:
        split = stratified_split(frame["label"].to_numpy())
    splits = {}
    for part in ("train", "validation", "test"):
        rows = frame[split == part]
        splits[part] = (rows["text"].to_numpy(dtype=object), rows["label"].to_numpy())
    counts = {part: len(labels) for part, (_, labels) in splits.items()}
    if counts["train"] < 20 or counts["validation"] < 2 or counts["test"] < 2:
        raise ValueError(
            f"{name}: too little data ({counts['train']} train, {counts['validation']} "
            f"validation, {counts['test']} test texts); need at least 20 training texts"
        )
    if len(set(splits["train"][1].tolist())) < 2:
        raise ValueError(f"{name}: the training split holds only one class")
    return Corpus(splits, np.array([], dtype=object), name, notes=tuple(frame.attrs["notes"]))


def load_imdb(cache_dir):
    """IMDB's 25,000 + 25,000 reviews as raw text, rebuilt from the word index Keras ships.

    Keras ships the reviews as word ids (a word's rank in the word index);
    joining the words back gives lower-cased text without punctuation, which our
    vectorizer reads like any other text. The two files are downloaded once into
    ``cache_dir``. 10% of the training reviews (seeded) become the validation split.

    Raises:
        ValueError: no network for the first download, or damaged files in ``cache_dir``.
    """
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            name: keras.utils.get_file(
                name,
                origin=IMDB_URL + name,
                file_hash=file_hash,
                cache_dir=str(cache_dir),
                cache_subdir="",
            )
            for name, file_hash in IMDB_FILES.items()
        }
    except Exception as error:  # keras.utils.get_file raises a bare Exception for network failures
        reason = str(error).splitlines()[0][:100] if str(error) else type(error).__name__
        raise ValueError(
            f"could not download the IMDB reviews ({reason}); the bundled Rotten Tomatoes "
            "snippets (the default dataset) need no network"
        ) from None
    try:
        # The reviews are ragged arrays, stored pickled; get_file checked the file's hash above.
        with np.load(paths["imdb.npz"], allow_pickle=True) as arrays:
            train_ids, train_labels = arrays["x_train"], arrays["y_train"]
            test_ids, test_labels = arrays["x_test"], arrays["y_test"]
        word_index = json.loads(Path(paths["imdb_word_index.json"]).read_text())
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"the files in {cache_dir} are damaged ({type(error).__name__}); "
            "delete them to download again"
        ) from None
    words = {index: word for word, index in word_index.items()}

    def decode(reviews):
        return np.array(
            [" ".join(words[i] for i in review if i in words) for review in reviews], dtype=object
        )

    train_texts, train_labels = decode(train_ids), np.asarray(train_labels).astype("int32")
    rows = np.random.default_rng(SPLIT_SEED).permutation(len(train_texts))
    validation_rows, train_rows = rows[: len(rows) // 10], rows[len(rows) // 10 :]
    splits = {
        "train": (train_texts[train_rows], train_labels[train_rows]),
        "validation": (train_texts[validation_rows], train_labels[validation_rows]),
        "test": (decode(test_ids), np.asarray(test_labels).astype("int32")),
    }
    return Corpus(splits, np.array([], dtype=object), "IMDB reviews (keras.datasets.imdb)")


def shrink_for_quick_run(corpus, seed):
    """A seeded sample of each split (1,500 / 300 / 300 texts), for a smoke test in seconds."""
    rng = np.random.default_rng(seed)
    sizes = {"train": 1500, "validation": 300, "test": 300}
    shrunk = {}
    for name, (texts, labels) in corpus.splits.items():
        rows = np.sort(rng.permutation(len(texts))[: sizes[name]])
        shrunk[name] = (texts[rows], labels[rows])
    return dataclasses.replace(corpus, splits=shrunk, unlabelled=corpus.unlabelled[:200])


# ---------------------------------------------------------------- tokens


# Accented Latin letters (lower case) and the letters an English text writes for them.
LATIN_FOLDS = (
    (r"([a-z])\pM+", r"\1"),  # an accent written as a separate combining mark
    ("[àáâãäåāăą]", "a"),
    ("[çćč]", "c"),
    ("[ďđð]", "d"),
    ("[èéêëēėęě]", "e"),
    ("ğ", "g"),
    ("[ìíîïīįı]", "i"),
    ("[łľ]", "l"),
    ("[ñńň]", "n"),
    ("[òóôõöøōő]", "o"),
    ("[ŕř]", "r"),
    ("[śšşș]", "s"),
    ("[ťţț]", "t"),
    ("[ùúûüūůű]", "u"),
    ("[ýÿ]", "y"),
    ("[źżž]", "z"),
    ("ß", "ss"),
    ("æ", "ae"),
    ("œ", "oe"),
    ("þ", "th"),
)


@keras.saving.register_keras_serializable(package="rnn_workshop")
def standardize_review(texts):
    """Lower-case and split off punctuation and clitics, so "great!" and "isn't" become "great !" and "is n't".

    Keras's default standardizer deletes punctuation, but "!" and "?" carry
    sentiment and "n't" flips it; keeping them as tokens lets the model see
    them. HTML line breaks (common in IMDB reviews) become spaces. Letters of
    every script are kept (Cyrillic, Greek, Chinese ...); accented Latin letters
    are read as their base letters ("café" is "cafe", "naïve" is "naive"), as the
    English vocabulary spells them, and any other Latin letter beyond a-z becomes a
    space. (Models saved before accents were folded read "café" as "caf" in training
    and now as "cafe": either way a word most vocabularies lack.)
    """
    texts = tf.strings.lower(texts, encoding="utf-8")
    for accented, base in LATIN_FOLDS:
        texts = tf.strings.regex_replace(texts, accented, base)
    texts = tf.strings.regex_replace(texts, r"<br\s*/?>", " ")
    texts = tf.strings.regex_replace(
        texts, r"(^|\s)'|'(\s|$)", r"\1 \2"
    )  # quotation marks, not "it's"
    texts = tf.strings.regex_replace(texts, r"n't\b", " n't")
    texts = tf.strings.regex_replace(texts, r"'(s|re|ve|ll|d|m)\b", r" '\1")
    texts = tf.strings.regex_replace(texts, r"([!?.,;:()\"]|--)", r" \1 ")
    # \P{Latin} inside [^...]: a Latin letter other than a-z.
    return tf.strings.regex_replace(texts, r"[^\pL\pM0-9!?.,;:()\"'\- ]|[^\P{Latin}a-z]", " ")


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
    return [ids[:max_length] for ids in _token_ids(vectorizer, texts, max_length)]


def count_cut(vectorizer, texts, max_length):
    """How many of ``texts`` hold more than ``max_length`` tokens (and so are cut by :func:`vectorize`)."""
    return sum(len(ids) > max_length for ids in _token_ids(vectorizer, texts, max_length + 1))


def _token_ids(vectorizer, texts, max_length):
    """Each text's token ids, at least its first ``max_length``, read 2048 texts at a time.

    Ragged, then cut, then padded: padding first would make every text in a
    batch as long as its longest, and one 20 MB review would need gigabytes.
    """
    ragged = keras.layers.TextVectorization(
        standardize=standardize_review,
        split="whitespace",
        vocabulary=vectorizer.get_vocabulary(),
        ragged=True,
    )
    for start in range(0, len(texts), 2048):
        batch = ragged(tf.constant(np.asarray(texts[start : start + 2048], dtype=object)))
        padded = batch[:, :max_length].to_tensor().numpy()
        yield from (row[row != 0] for row in padded)


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


def build_classifier(
    vocab_size,
    *,
    cell="gru",
    units=32,
    embedding_dim=64,
    bidirectional=True,
    dropout=0.3,
    learning_rate=5e-4,
    embedding_weights=None,
    seed=0,
    name=None,
):
    """Token ids (batch, timesteps) -> P(positive), shape (batch, 1): the recurrent part, compiled.

    ``common.build_many_to_one`` with a vocabulary: Embedding (masking the
    padding, id 0) -> recurrent layer (``bidirectional``: both directions) ->
    dropout -> one sigmoid unit. ``embedding_weights`` (vocab_size,
    embedding_dim), e.g. from :func:`pretrain_embeddings`, start the
    embedding; ``None`` starts it at random. Adam with ``clipnorm=1.0``,
    binary cross-entropy. ``seed`` seeds the initial weights.

    >>> model = build_classifier(50, units=4, embedding_dim=8)
    >>> tuple(model(np.array([[5, 7, 0]])).shape), model.name
    ((1, 1), 'rnn_seed_0')
    """
    set_seed(seed)
    classifier = build_many_to_one(
        (None,),
        1,
        cell=cell,
        units=units,
        bidirectional=bidirectional,
        dropout=dropout,
        output_activation="sigmoid",
        vocab_size=vocab_size,
        embedding_dim=embedding_dim,
        name=name or f"rnn_seed_{seed}",
    )
    if embedding_weights is not None:
        classifier.get_layer("embedding").set_weights([embedding_weights])
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return classifier


def kept_epoch(history):
    """How training went, in one line: the epochs run, and the epoch whose weights were kept.

    ``common.fit`` restores the weights of the epoch with the lowest validation
    loss; training under a strategy tracks the loss only (no accuracy).

    >>> kept_epoch({"loss": [.7, .5, .4], "val_loss": [.6, .5, .55], "val_accuracy": [.6, .7, .6]})
    '3 epochs; kept epoch 2, the lowest validation loss (0.5000; validation accuracy 0.7000)'
    """
    kept = int(np.argmin(history["val_loss"]))
    accuracy = history.get("val_accuracy", [math.nan] * len(history["loss"]))[kept]
    return (
        f"{len(history['loss'])} epochs; kept epoch {kept + 1}, the lowest validation loss "
        f"({history['val_loss'][kept]:.4f}; validation accuracy {accuracy:.4f})"
    )


def average_members(members):
    """One model whose output is the mean probability of ``members`` (or the one member itself)."""
    if len(members) == 1:
        return members[0]
    token_ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    probability = keras.layers.Average(name="average")([member(token_ids) for member in members])
    return keras.Model(token_ids, probability, name="seed_average")


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
    train_texts,
    train_labels,
    val_texts,
    val_labels,
    *,
    max_features=200_000,
    strengths=(1.0, 3.0, 10.0, 30.0),
):
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
        "analyzer": "word",
        "token_pattern": r"(?u)\b\w\w+\b",
        "tokenizer": None,
        "preprocessor": None,
        "stop_words": None,
        "strip_accents": None,
        "lowercase": True,
        "binary": False,
        "use_idf": True,
        "sublinear_tf": True,
        "norm": "l2",
    }
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
        standardize=standardize_words,
        split="whitespace",
        ngrams=tfidf.ngram_range[1],
        output_mode="count",
        vocabulary=vocabulary,
        name="ngram_vectorizer",
    )
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


PREDICT_CHARACTERS = 2_000_000  # characters in one batch at most (unless one text is longer)


def predict_texts(model, texts, batch_size=256):
    """``model``'s first output for each raw string, in order, as float32 (e.g. P(positive)).

    Texts are sorted by length first, so each batch is padded little; long
    texts go in smaller batches (one 20 MB review alone), as the model pads
    each batch to its longest text before cutting it to the length it reads.
    """
    texts = np.asarray(texts, dtype=object)
    lengths = np.array([len(t) for t in texts])
    order = np.argsort(lengths, kind="stable")
    outputs = np.empty(len(texts), dtype="float32")
    start = 0
    while start < len(texts):
        # Sorted, so the last text of a batch is its longest: keep rows x longest below a budget.
        end = start + 1
        while end < min(start + batch_size, len(texts)) and (
            (end - start + 1) * lengths[order[end]] <= PREDICT_CHARACTERS
        ):
            end += 1
        rows = order[start:end]
        outputs[rows] = np.asarray(
            model.predict_on_batch(keras.ops.convert_to_tensor(texts[rows].tolist()))
        )[:, 0]
        start = end
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


# ---------------------------------------------------------------- scores and the report

RNN = "RNN"
BASELINE = "TF-IDF + logistic regression"
WIDE_AND_DEEP = "wide & deep (RNN + n-gram logistic regression)"


@dataclass
class Trained:
    """The saved model (raw strings in, P(positive) out), its parts, and how training went."""

    model: keras.Model  # wide & deep, or the RNN alone
    rnn: keras.Model  # the recurrent part, seeds averaged: strings -> P(positive)
    members: list  # the recurrent part of each seed alone, for the spread across seeds
    baseline: tuple  # TF-IDF + logistic regression: (tfidf, regression, C, validation accuracy)
    wide: keras.Model | None  # the baseline as Keras layers: strings -> log-odds; None: RNN alone
    stacked_validation_accuracy: float | None  # cross-validated on the validation split
    histories: list  # one Keras history dict per seed
    vocabulary_size: int
    seconds: float  # training the networks took

    @property
    def epochs_run(self):
        return sum(len(history["loss"]) for history in self.histories)


@dataclass
class Report:
    """The test scores beside the baselines, and what they were computed from."""

    table: dict  # model name -> test scores
    verdict: str
    validation_accuracy: dict  # model name -> accuracy on the validation split
    seed_accuracies: dict  # model name -> test accuracy with each seed's network alone
    baseline_strength: float  # the logistic regression's C, chosen on validation accuracy
    test_probabilities: np.ndarray  # the saved model's


def scores(labels, probabilities):
    """Accuracy and F1 of ``probabilities >= 0.5``, and ROC AUC (NaN if ``labels`` hold one class).

    >>> scores([0, 1, 1, 0], [0.2, 0.9, 0.4, 0.1])
    {'accuracy': 0.75, 'F1': 0.6666666666666666, 'ROC AUC': 1.0}
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    labels = np.asarray(labels)
    predicted = (np.asarray(probabilities) >= 0.5).astype(int)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "F1": float(f1_score(labels, predicted, zero_division=0)),
        "ROC AUC": float(roc_auc_score(labels, probabilities)) if both_classes else float("nan"),
    }


def score_models(corpus, trained):
    """Score the RNN, wide & deep, TF-IDF + logistic regression and the majority class on test.

    Also each seed's network alone (and wide & deep stacked afresh on each),
    and validation accuracy, where the choices were made.
    """
    (val_texts, val_labels), (test_texts, test_labels) = (
        corpus.splits["validation"],
        corpus.splits["test"],
    )
    tfidf, regression, strength, baseline_validation = trained.baseline
    rnn_test = predict_texts(trained.rnn, test_texts)
    table = {
        RNN: scores(test_labels, rnn_test),
        BASELINE: scores(test_labels, regression.predict_proba(tfidf.transform(test_texts))[:, 1]),
    }
    rnn_validation = predict_texts(trained.rnn, val_texts)
    validation = {RNN: float(np.mean((rnn_validation >= 0.5) == val_labels))}
    validation[BASELINE] = baseline_validation
    # Each seed's network alone, read once: its test accuracy, and the stack built on it.
    member_test = [probability_log_odds(member, test_texts) for member in trained.members]
    seeds = {RNN: [float(np.mean((log_odds >= 0) == test_labels)) for log_odds in member_test]}
    probabilities = rnn_test
    if trained.wide is not None:
        probabilities = predict_texts(trained.model, test_texts)
        table[WIDE_AND_DEEP] = scores(test_labels, probabilities)
        validation[WIDE_AND_DEEP] = trained.stacked_validation_accuracy
        seeds[WIDE_AND_DEEP] = stacked_seed_accuracies(corpus, trained, member_test)
    majority = int(np.mean(corpus.splits["train"][1]) >= 0.5)
    table["majority class"] = {"accuracy": float(np.mean(test_labels == majority))}
    said = verdict(table, validation)
    return Report(table, said, validation, seeds, strength, probabilities)


def stacked_seed_accuracies(corpus, trained, member_test):
    """Test accuracy of wide & deep built on each seed's network alone (stacked afresh for each).

    ``member_test``: each network's log-odds on the test texts, already computed.
    """
    (val_texts, val_labels), (test_texts, test_labels) = (
        corpus.splits["validation"],
        corpus.splits["test"],
    )
    wide_val, wide_test = (predict_texts(trained.wide, texts) for texts in (val_texts, test_texts))
    found = []
    for member, deep_test in zip(trained.members, member_test):
        deep_val = probability_log_odds(member, val_texts)
        weights, bias, _ = fit_stack(np.column_stack([deep_val, wide_val]), val_labels)
        log_odds = np.column_stack([deep_test, wide_test]) @ weights + bias
        found.append(float(np.mean((log_odds >= 0) == test_labels)))
    return found


def verdict(table, validation):
    """One paragraph: did the saved model beat TF-IDF + logistic regression on test accuracy?"""
    name = WIDE_AND_DEEP if WIDE_AND_DEEP in table else RNN
    model, baseline = table[name], table[BASELINE]
    difference = 100 * (model["accuracy"] - baseline["accuracy"])
    said = (
        f"accuracy {model['accuracy']:.4f} vs {baseline['accuracy']:.4f}, {difference:+.1f} points; "
        f"ROC AUC {model['ROC AUC']:.4f} vs {baseline['ROC AUC']:.4f}; validation accuracy "
        f"{validation[name]:.4f} vs {validation[BASELINE]:.4f}"
    )
    if model["accuracy"] > baseline["accuracy"]:
        found = f"Verdict: the {name} beat the {BASELINE} baseline on the test split ({said})."
    else:
        found = (
            f"Verdict: the {name} did NOT beat the {BASELINE} baseline on test accuracy ({said}). "
            "Bag-of-n-grams models are strong on short snippets; the README lists what was tried."
        )
    if name == WIDE_AND_DEEP:
        alone = 100 * (table[RNN]["accuracy"] - baseline["accuracy"])
        found += f" The RNN alone: {table[RNN]['accuracy']:.4f} ({alone:+.1f} points)."
    return found


def spread(values):
    """'0.7812 ± 0.0041' (mean ± sample standard deviation), the value alone for one, None for none.

    >>> spread([0.5, 0.7]), spread([0.5]), spread([])
    ('0.6000 ± 0.1414', '0.5000', None)
    """
    if not values:
        return None
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def report_rows(found):
    """The test table's rows: one per model, validation accuracy beside test scores and seeds."""
    return {
        name: {
            "validation accuracy": found.validation_accuracy.get(name),
            "test accuracy": scores_of["accuracy"],
            "F1": scores_of.get("F1"),
            "ROC AUC": scores_of.get("ROC AUC"),
            "test accuracy by seed": spread(found.seed_accuracies.get(name, [])),
        }
        for name, scores_of in found.table.items()
    }


def run_metrics(corpus, trained, found):
    """What metrics.json holds about the data, the models' scores and training (JSON types)."""
    test_texts = corpus.splits["test"][0][:5]  # a reload check: load_model must give the same
    metrics = {
        "test": found.table,
        "verdict": found.verdict,
        "validation_accuracy": found.validation_accuracy,
        "examples": {part: corpus.count(part) for part in corpus.splits},
        "source": corpus.source,
        "class_names": list(corpus.class_names),
        "vocabulary_size": trained.vocabulary_size,
        "baseline_C": found.baseline_strength,
        "test_accuracy_by_seed": found.seed_accuracies,
        "epochs_run": trained.epochs_run,
        "train_seconds": round(trained.seconds, 2),
        "train_examples_per_second": round(
            corpus.count("train") * trained.epochs_run / trained.seconds, 1
        ),
        "example_predictions": [
            {"text": example, "probability": float(probability)}
            for example, probability in zip(test_texts, predict_texts(trained.model, test_texts))
        ],
    }
    if trained.wide is not None:  # the n-gram part and the stacking weights
        (weights, bias) = trained.model.get_layer("stack").get_weights()
        metrics["wide"] = {
            "C": trained.baseline[2],
            "stack": {"rnn": weights[0, 0], "ngram": weights[1, 0], "bias": bias[0]},
        }
    return metrics


# ---------------------------------------------------------------- a saved model in use


def texts_to_label(texts):
    """The texts worth labelling, and the numbers (from 1) of the empty ones, to be skipped.

    >>> texts_to_label(["Fine.", "  ", "Dull."])
    (['Fine.', 'Dull.'], [2])

    Raises:
        ValueError: a text that is not UTF-8 (bytes decoded as surrogates), or every text empty.
    """
    for number, item in enumerate(texts, start=1):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as surrogates
            raise ValueError(f"text {number} is not UTF-8 text") from None
    kept = [item for item in texts if item.strip()]
    if not kept:
        raise ValueError(
            "the text is empty; give at least one word"
            if len(texts) <= 1
            else "every text is empty"
        )
    return kept, [number for number, item in enumerate(texts, start=1) if not item.strip()]


def without_known_words(model, texts):
    """The positions in ``texts`` (0 = the first) of those holding no token that any of
    ``model``'s vocabularies knows (the RNN's words, the n-gram part's words and pairs).

    The model's probability for such a text is its guess for an empty one: worth saying.
    """
    strings = tf.constant(np.asarray(texts, dtype=object))
    known = np.zeros(len(texts), dtype=bool)
    for layer in _nested_layers(model):
        if isinstance(layer, keras.layers.TextVectorization):
            output = np.asarray(layer(strings))
            if layer.get_config()["output_mode"] == "int":  # ids: 0 pads, 1 is "[UNK]"
                known |= (output > 1).any(axis=1)
            else:  # a column per token, column 0 for what is outside the vocabulary
                known |= (output[:, 1:] > 0).any(axis=1)
    return np.flatnonzero(~known).tolist()


def _nested_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # a model inside the model
            yield from _nested_layers(layer)


def label_lines(model, texts):
    """'positive  P(positive)=0.912  A triumph.': one line per text, as ``--predict`` prints."""
    probabilities = predict_texts(model, np.array(texts, dtype=object))
    return [
        f"{LABEL_NAMES[int(probability >= 0.5)]:<8}  P(positive)={probability:.3f}  {item}"
        for item, probability in zip(texts, probabilities)
    ]


def evaluate_file(model, path, text_col="text", label_col="label", name=None):
    """``model``'s :func:`scores` on a labelled CSV/TSV, how many of how many it got right, and
    what reading the file skipped (a list of sentences).

    Raises:
        ValueError: as :func:`read_text_table` (one class alone is allowed here).
    """
    frame = read_text_table(path, text_col, label_col, origin=name, need_both=False)
    probabilities = predict_texts(model, frame["text"].to_numpy(dtype=object))
    labels = frame["label"].to_numpy()
    correct = int(np.sum((probabilities >= 0.5) == labels))
    return scores(labels, probabilities), correct, len(labels), frame.attrs["notes"]


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


def plot_run(folder, corpus, trained, found, run_labels):
    """A run's figures: ``confusion_matrix.png`` (test split) and ``training.png`` (one run a seed)."""
    from common.report.plots import plot_history

    test_labels = corpus.splits["test"][1]
    plot_confusion_matrix(
        test_labels,
        found.test_probabilities >= 0.5,
        Path(folder) / "confusion_matrix.png",
        class_names=list(corpus.class_names),
        title=f"{'wide & deep' if trained.wide else 'RNN'} on the test split "
        f"({len(test_labels)} texts)",
    )
    # Training under a strategy tracks the loss only.
    curves = [metric for metric in ("loss", "accuracy") if metric in trained.histories[0]]
    plot_history(trained.histories, Path(folder) / "training.png", curves, run_labels=run_labels)
