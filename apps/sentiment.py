"""Classify movie reviews as positive or negative: a bidirectional RNN stacked with an n-gram model.

    python apps/sentiment.py                        # bundled Rotten Tomatoes snippets, offline, about two minutes
    python apps/sentiment.py --cell lstm --seeds 1 --pretrain none
    python apps/sentiment.py --dataset imdb         # IMDB reviews via keras.datasets (downloads once, cached)
    python apps/sentiment.py --data reviews.tsv --text-col review --label-col sentiment
    python apps/sentiment.py --load runs/sentiment/<run>/ --predict "A triumph." "Dull and overlong."
    echo "What a mess." | python apps/sentiment.py --load runs/sentiment/<run>/ --predict -
    python apps/sentiment.py --load runs/sentiment/<run>/ --evaluate labelled.csv

Raw strings in, probability out: the saved model.keras starts with its own
TextVectorization layers (vocabularies fit on the training split only), so
--predict and --evaluate need nothing but that file.

Wide & deep (the default, --wide tfidf): two models that are right on
different texts, added in log-odds.
- Deep: Embedding (masking the padding) -> bidirectional GRU -> dropout -> one
  sigmoid unit, from common.build_many_to_one. Tokens are lower-cased words
  with "!", "?" and "n't" kept, because they carry sentiment. Three things
  help it on 10,000 short snippets: word vectors counted from the training
  text and 1,083 unlabelled plot summaries (PPMI + SVD), --seeds networks
  averaged, and length-bucketed batches (little time spent on padding).
- Wide: the TF-IDF (word 1-2 grams) + logistic regression baseline itself,
  carried into Keras layers (common.tasks.sentiment.ngram_logistic_model).
- Stack: sigmoid(a * RNN log-odds + b * n-gram log-odds + c), the three
  numbers fit on the validation split, where neither part's weights were fit.

The test table sets the RNN alone, the baseline alone and the combined model
side by side, each seed's network alone as mean and spread, and says plainly
whether the saved model beat the baseline. Measured on 2 CPU cores (AMD EPYC,
2026-12-05), mean test accuracy over 3 runs of the defaults: RNN 0.7856,
TF-IDF + logistic regression 0.7875, wide & deep 0.7974 (+1.0 points);
bench/sentiment.py reruns it, and notebook 09 shows where each part is right.
"""

import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def stop_while_starting(signum, frame):
    """Ctrl-C while TensorFlow loads, before main: one line and status 130, not a traceback."""
    os.write(STDERR, b"interrupted; nothing was saved\n")  # fd 2 is silenced while TF loads
    os._exit(130)


if __name__ == "__main__":
    STDERR = os.dup(2)
    signal.signal(signal.SIGINT, stop_while_starting)

import common  # first: keeps TensorFlow's start-up log noise out of the terminal
import common.tasks.sentiment as text
from common.tasks.sentiment import predict_texts  # tests and the bench call app.predict_texts
from common.cli import (
    RunOptions,
    UserError,
    dropout_rate,
    option,
    finish_worker,
    load_model_from_dir,
    positive_float,
    positive_int,
    positive_int_up_to,
    prepare_out,
    report_user_errors,
    run_folder,
    save_model_atomically,
    shrink_for_quick,
    start_distribution,
    write_json,
)

import keras
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
BUNDLED_CSV = REPO / "data" / "rotten_tomatoes.csv.gz"
SPLIT_SEED = 20240  # the fixed split for --data files without a split column
NULL_REASONS = {"ROC AUC": "the texts scored hold only one class"}


@dataclass(frozen=True)
class Config(RunOptions):
    """A sentiment run's options, checked, after ``--quick``: what the run was asked to do."""

    APP = "sentiment"
    GROUPS = {
        "data": "data (default: bundled Rotten Tomatoes snippets with a fixed "
        "train/validation/test split)",
        "model": "model",
        "use": "use a saved model",
    }

    epochs: int = option(8, quick=2)  # this app's own defaults for the shared options
    batch_size: int = 32
    dataset: str = option(
        "rotten_tomatoes", "bundled snippets, or IMDB reviews through keras.datasets.imdb "
        "(needs the network once; cached)",
        group="data", choices=["rotten_tomatoes", "imdb"], exclusive="source",
    )  # fmt: skip
    data: Path | None = option(
        None, "CSV/TSV with a text column and a binary label column (0/1, pos/neg, "
        "positive/negative, fresh/rotten); a 'split' column (train/validation/test) is used if "
        "present, else a fixed 80/10/10 split",
        group="data", type=Path, metavar="PATH", exclusive="source",
    )  # fmt: skip
    text_col: str = option("text", "text column in --data or --evaluate files", group="data")
    label_col: str = option("label", "label column in --data or --evaluate files", group="data")
    cache_dir: Path = option(
        Path.home() / ".cache" / "rnn-workshop" / "imdb",
        "where --dataset imdb downloads are kept", group="data", type=Path,
    )  # fmt: skip
    cell: str = option("gru", "recurrent cell", choices=sorted(common.CELLS))
    units: int = option(
        32, "units per direction of the recurrent layer", type=positive_int_up_to(4096), quick=16
    )
    embedding_dim: int = option(
        64, "size of each word vector", type=positive_int_up_to(4096), quick=32
    )
    unidirectional: bool = option(False, "read left to right only (default: both directions)")
    dropout: float = option(
        0.3, "dropout on the recurrent layer's inputs and before the output", type=dropout_rate
    )
    max_tokens: int = option(
        20000, "vocabulary size, padding and [UNK] included", type=positive_int
    )
    max_length: int = option(200, "tokens read per text; longer texts are cut", type=positive_int)
    pretrain: str = option(
        "ppmi", "start the embedding from word vectors counted on training + unlabelled text, "
        "or at random", choices=["ppmi", "none"],
    )  # fmt: skip
    seeds: int = option(
        3, "networks trained from different random starts and averaged",
        type=positive_int_up_to(32), quick=1,
    )  # fmt: skip
    learning_rate: float = option(5e-4, "Adam learning rate", type=positive_float, quick=3e-3)
    wide: str = option(
        "tfidf", "tfidf: add a logistic regression over TF-IDF of word 1-2 grams beside the RNN, "
        "their log-odds combined with weights fit on the validation split (wide & deep); "
        "none: the RNN alone", choices=["tfidf", "none"],
    )  # fmt: skip
    load: Path | None = option(
        None, "skip training: use the model.keras saved in DIR",
        group="use", type=Path, metavar="DIR",
    )  # fmt: skip
    predict: tuple | None = option(
        None, "with --load: print label and probability for each TEXT ('-' reads one text per "
        "line from stdin)", group="use", nargs="+", metavar="TEXT",
    )  # fmt: skip
    evaluate: Path | None = option(
        None, "with --load: accuracy, F1 and ROC AUC on a labelled CSV/TSV (--text-col, "
        "--label-col)", group="use", type=Path, metavar="FILE",
    )  # fmt: skip

    @property
    def model_name(self):
        direction = "unidirectional" if self.unidirectional else "bidirectional"
        name = f"{direction} {self.cell.upper()}{self.units}, embedding {self.embedding_dim}"
        return name + (f", {self.seeds} seeds averaged" if self.seeds > 1 else "")


def read_config(argv):
    """Parse and check the options before any work; ``--quick`` shrinks what was not typed."""
    parser = Config.parser(__doc__)
    args = parser.parse_args(argv)
    if (args.predict or args.evaluate) and not args.load:
        parser.error("--predict and --evaluate need --load DIR")
    if args.load and not (args.predict or args.evaluate):
        parser.error("--load needs --predict TEXT... or --evaluate FILE")
    if not args.load:  # a new run: can it be saved? Check before training.
        args.out = prepare_out(args.out, "sentiment", args.overwrite)
        if args.quick:  # a smoke test: a small model, two short epochs with bigger steps, one seed
            shrink_for_quick(args, argv, **Config.quick_values())
    # Word vectors of embedding_dim numbers are counted from a vocabulary of at least that many words.
    if args.max_tokens < args.embedding_dim + 2:
        raise UserError(
            f"--max-tokens {args.max_tokens} is too small for --embedding-dim {args.embedding_dim}: "
            f"it needs at least {args.embedding_dim + 2} (padding and [UNK] included)"
        )
    return Config.from_args(args)


# ---------------------------------------------------------------- data


def user_error(error):
    """A file's problem found by ``common.tasks.sentiment``, as the one line the user reads."""
    hint = " (choose columns with --text-col and --label-col)" if "column" in str(error) else ""
    return UserError(f"{error}{hint}")


def load_rotten_tomatoes():
    frame = pd.read_csv(BUNDLED_CSV, keep_default_na=False)
    frame = frame[frame["text"].str.strip() != ""]
    labelled = frame[frame["split"] != "unlabelled"]
    splits = {
        name: (
            part["text"].to_numpy(dtype=object),
            text.parse_labels(part["label"], origin=str(BUNDLED_CSV)),
        )
        for name, part in labelled.groupby("split")
    }
    unlabelled = frame.loc[frame["split"] == "unlabelled", "text"].to_numpy(dtype=object)
    return (
        splits,
        unlabelled,
        "bundled Rotten Tomatoes snippets (data/rotten_tomatoes.csv.gz)",
        ("rotten", "fresh"),
    )


def load_table(path, text_col, label_col):
    try:
        frame = text.read_text_table(path, text_col, label_col, origin=f"--data {path}")
    except ValueError as error:  # the file's fault: one line, with the options that choose columns
        raise user_error(error) from None
    if "split" in frame.columns and {"train", "test"} <= set(frame["split"]):
        split = frame["split"].to_numpy()
        if "validation" not in set(split):  # carve validation out of train, as below
            train_rows = np.flatnonzero(split == "train")
            chosen = np.random.default_rng(SPLIT_SEED).permutation(train_rows)[
                : len(train_rows) // 9
            ]
            split = split.copy()
            split[chosen] = "validation"
    else:
        split = stratified_split(frame["label"].to_numpy(), SPLIT_SEED)
    splits = {}
    for name in ("train", "validation", "test"):
        rows = frame[split == name]
        splits[name] = (rows["text"].to_numpy(dtype=object), rows["label"].to_numpy())
    counts = {name: len(labels) for name, (_, labels) in splits.items()}
    if counts["train"] < 20 or counts["validation"] < 2 or counts["test"] < 2:
        raise UserError(
            f"--data {path}: too little data ({counts['train']} train, {counts['validation']} validation, {counts['test']} test texts); need at least 20 training texts"
        )
    if len(set(splits["train"][1].tolist())) < 2:
        raise UserError(f"--data {path}: the training split holds only one class")
    return splits, np.array([], dtype=object), f"--data {path}", ("negative", "positive")


def stratified_split(labels, seed, fractions=(0.8, 0.1, 0.1)):
    """train/validation/test per label in fixed shares, with a seeded shuffle (as data/build_sentiment.py)."""
    rng = np.random.default_rng(seed)
    split = np.empty(len(labels), dtype=object)
    for label in (0, 1):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_val, n_test = int(round(len(rows) * fractions[1])), int(round(len(rows) * fractions[2]))
        split[rows[:n_test]] = "test"
        split[rows[n_test : n_test + n_val]] = "validation"
        split[rows[n_test + n_val :]] = "train"
    return split


IMDB_FILES = {  # the files keras.datasets.imdb downloads, with the hashes Keras checks them by
    "imdb.npz": "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
    "imdb_word_index.json": "bfafd718b763782e994055a2d397834f",
}
IMDB_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def load_imdb(cache_dir):
    """IMDB's 25,000 + 25,000 reviews as raw text, rebuilt from the word index Keras ships.

    Keras ships the reviews as word ids (a word's rank in the word index);
    joining the words back gives lower-cased text without punctuation, which our
    vectorizer reads like any other text. The two files are downloaded once into
    ``cache_dir``. 10% of the training reviews (seeded) become the validation split.
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
            )  # fmt: skip
            for name, file_hash in IMDB_FILES.items()
        }
    except Exception as error:  # keras.utils.get_file raises a bare Exception for network failures
        reason = str(error).splitlines()[0][:100] if str(error) else type(error).__name__
        raise UserError(
            f"--dataset imdb: could not download the IMDB reviews ({reason}); "
            "run without --dataset to use the bundled Rotten Tomatoes snippets (the default)"
        ) from None
    try:
        # The reviews are ragged arrays, stored pickled; get_file checked the file's hash above.
        with np.load(paths["imdb.npz"], allow_pickle=True) as arrays:
            train_ids, train_labels = arrays["x_train"], arrays["y_train"]
            test_ids, test_labels = arrays["x_test"], arrays["y_test"]
        word_index = json.loads(Path(paths["imdb_word_index.json"]).read_text())
    except (OSError, ValueError, KeyError) as error:
        raise UserError(
            f"--dataset imdb: the files in {cache_dir} are damaged ({type(error).__name__}); "
            "delete them to download again"
        ) from None
    words = {index: word for word, index in word_index.items()}

    def decode(reviews):
        return np.array(
            [" ".join(words[i] for i in review if i in words) for review in reviews],
            dtype=object,
        )

    train_texts, test_texts = decode(train_ids), decode(test_ids)
    rows = np.random.default_rng(SPLIT_SEED).permutation(len(train_texts))
    validation_rows, train_rows = rows[: len(rows) // 10], rows[len(rows) // 10 :]
    splits = {
        "train": (train_texts[train_rows], np.asarray(train_labels)[train_rows].astype("int32")),
        "validation": (
            train_texts[validation_rows],
            np.asarray(train_labels)[validation_rows].astype("int32"),
        ),
        "test": (test_texts, np.asarray(test_labels).astype("int32")),
    }
    return (
        splits,
        np.array([], dtype=object),
        "IMDB reviews (keras.datasets.imdb)",
        ("negative", "positive"),
    )


@dataclass
class Corpus:
    """Labelled texts split three ways, unlabelled texts for pretraining, and where they came from."""

    splits: dict  # "train" / "validation" / "test" -> (texts, 0/1 labels)
    unlabelled: np.ndarray
    source: str
    class_names: tuple  # the names of labels 0 and 1

    def count(self, part):
        return len(self.splits[part][1])


def load_data(config):
    """The texts to learn from: a --data file, IMDB, or the bundled snippets (a sample with --quick)."""
    if config.data:
        found = load_table(config.data, config.text_col, config.label_col)
    elif config.dataset == "imdb":
        found = load_imdb(config.cache_dir)
    else:
        found = load_rotten_tomatoes()
    corpus = Corpus(*found)
    if config.quick:
        corpus.splits, corpus.unlabelled = shrink_for_quick_run(
            corpus.splits, corpus.unlabelled, config.seed
        )
    labels = corpus.splits["validation"][1]
    if config.wide == "tfidf" and min(np.sum(labels == 0), np.sum(labels == 1)) < 2:
        raise UserError(
            f"{corpus.source}: the validation split holds {np.sum(labels == 1)} positive and "
            f"{np.sum(labels == 0)} negative texts; stacking the wide part on it needs at least "
            "2 of each (more data, or --wide none for the RNN alone)"
        )
    counts = {part: corpus.count(part) for part in corpus.splits}
    print(
        f"Data: {corpus.source}; texts: {counts['train']} train, {counts['validation']} "
        f"validation, {counts['test']} test"
        + (f", {len(corpus.unlabelled)} unlabelled" if len(corpus.unlabelled) else "")
    )
    return corpus


def shrink_for_quick_run(splits, unlabelled, seed):
    """--quick: a seeded sample of each split, small enough for a smoke test in seconds."""
    rng = np.random.default_rng(seed)
    sizes = {"train": 1500, "validation": 300, "test": 300}
    shrunk = {}
    for name, (texts, labels) in splits.items():
        rows = np.sort(rng.permutation(len(texts))[: sizes[name]])
        shrunk[name] = (texts[rows], labels[rows])
    return shrunk, unlabelled[:200]


# ---------------------------------------------------------------- model


def build_classifier(config, vocab_size, seed, embedding_weights):
    """Token ids (batch, timesteps) -> P(positive), shape (batch, 1)."""
    common.set_seed(seed)
    classifier = common.build_many_to_one(
        (None,),
        1,
        cell=config.cell,
        units=config.units,
        bidirectional=not config.unidirectional,
        dropout=config.dropout,
        output_activation="sigmoid",
        vocab_size=vocab_size,
        embedding_dim=config.embedding_dim,
        name=f"rnn_seed_{seed}",
    )
    if embedding_weights is not None:
        classifier.get_layer("embedding").set_weights([embedding_weights])
    classifier.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return classifier


def average_members(members):
    """One model whose output is the mean probability of ``members`` (or the one member itself)."""
    if len(members) == 1:
        return members[0]
    token_ids = keras.Input(shape=(None,), dtype="int64", name="token_ids")
    probability = keras.layers.Average(name="average")([member(token_ids) for member in members])
    return keras.Model(token_ids, probability, name="seed_average")


def scores(labels, probabilities):
    from sklearn.metrics import f1_score, roc_auc_score

    labels = np.asarray(labels)
    predicted = (np.asarray(probabilities) >= 0.5).astype(int)
    both_classes = len(set(labels.tolist())) == 2
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "F1": float(f1_score(labels, predicted, zero_division=0)),
        "ROC AUC": float(roc_auc_score(labels, probabilities)) if both_classes else float("nan"),
    }


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


def plot_histories(histories, seeds, path):
    """Training (solid) and validation (dashed) loss and accuracy per epoch, one colour per seed."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    # Training under a strategy (common.models.training.fit_distributed) tracks the loss only.
    metrics = [metric for metric in ("loss", "accuracy") if metric in histories[0]]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for metric, axis in zip(metrics, axes[0]):
        for seed, history in zip(seeds, histories):
            epochs = np.arange(1, len(history[metric]) + 1)
            line = axis.plot(
                epochs, history[metric], marker="o", alpha=0.6, label=f"seed {seed}, training"
            )[0]
            axis.plot(
                epochs,
                history[f"val_{metric}"],
                marker="s",
                ls="--",
                color=line.get_color(),
                label=f"seed {seed}, validation",
            )
        axis.set(xlabel="epoch", ylabel=metric, title=f"Training curves: {metric}")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0, -1].legend(fontsize="small")
    return common.save_figure(figure, path)


# ---------------------------------------------------------------- the run's four steps


RNN, BASELINE, WIDE_AND_DEEP = (
    "RNN",
    "TF-IDF + logistic regression",
    "wide & deep (RNN + n-gram logistic regression)",
)


@dataclass
class Trained:
    """The saved model (raw strings in, P(positive) out), its parts, and how training went."""

    model: keras.Model  # wide & deep, or the RNN alone with --wide none
    rnn: keras.Model  # the recurrent part, seeds averaged: strings -> P(positive)
    members: list  # the recurrent part of each seed alone, for the spread across seeds
    baseline: tuple  # TF-IDF + logistic regression: (tfidf, regression, C, validation accuracy)
    wide: keras.Model | None  # the baseline as Keras layers: strings -> log-odds (--wide tfidf)
    stacked_validation_accuracy: float | None  # cross-validated on the validation split
    histories: list  # one Keras history dict per seed
    vocabulary_size: int
    epochs_run: int
    seconds: float


def train(corpus, config, distribution):
    """Fit the TF-IDF baseline, a vocabulary and ``config.seeds`` networks; average and stack them."""
    common.set_seed(config.seed)
    train_texts, train_labels = corpus.splits["train"]
    # The vocabulary comes from training text only: a word seen only in test text stays [UNK].
    vectorizer = text.make_vectorizer(train_texts, max_tokens=config.max_tokens)
    vocabulary_size = vectorizer.vocabulary_size()
    words = vocabulary_size - 2  # padding and [UNK] are not words
    if words < 1:
        raise UserError(
            "the training texts hold no words the tokenizer keeps (letters, digits, ! and ?)"
        )
    if config.pretrain == "ppmi" and words < config.embedding_dim:
        raise UserError(
            f"the training texts hold only {words} distinct words, fewer than --embedding-dim "
            f"{config.embedding_dim}; use a smaller --embedding-dim, --pretrain none, or more text"
        )
    val_texts, val_labels = corpus.splits["validation"]
    try:  # seconds, and before the networks: a file it cannot use is refused before they train
        baseline = text.fit_tfidf_logistic(train_texts, train_labels, val_texts, val_labels)
    except ValueError as error:
        raise UserError(f"{corpus.source}: the TF-IDF baseline: {error}") from None
    token_ids = {
        part: text.vectorize(vectorizer, texts, config.max_length)
        for part, (texts, _) in corpus.splits.items()
    }
    embedding_weights = None
    if config.pretrain == "ppmi":
        unlabelled_ids = text.vectorize(vectorizer, corpus.unlabelled, 10**6)
        embedding_weights = text.pretrain_embeddings(
            token_ids["train"] + unlabelled_ids, vocabulary_size, config.embedding_dim,
            seed=config.seed,
        )  # fmt: skip
        print(
            f"Pretrained {config.embedding_dim}-d word vectors for {vocabulary_size} words on "
            "training + unlabelled text (PPMI + SVD)"
        )
    validation_batches = text.bucketed_batches(
        token_ids["validation"], corpus.splits["validation"][1], 256, shuffle=False
    )
    print(
        f"Training {config.model_name} on length-bucketed batches, up to {config.epochs} epochs "
        "per seed ..."
    )
    if distribution.kind != "none":
        print(distribution.describe(config.batch_size))
    members, histories, started = [], [], time.perf_counter()
    for seed in range(config.seed, config.seed + config.seeds):
        train_batches = text.bucketed_batches(
            token_ids["train"], train_labels, distribution.global_batch(config.batch_size),
            seed=seed,
        )  # fmt: skip
        with distribution.scope():  # the weights are mirrored on every replica
            classifier = build_classifier(config, vocabulary_size, seed, embedding_weights)
        # Validation loss bottoms out after about two epochs, then climbs: one epoch of patience.
        history = common.fit(
            classifier, train_batches, validation_batches, epochs=config.epochs, patience=1,
            verbose=config.progress, distribution=distribution, name=f"seed-{seed}",
        ).history  # fmt: skip
        if (epoch := common.diverged(history)) is not None:
            raise UserError(
                f"training diverged: the loss stopped being a number in epoch {epoch} of seed "
                f"{seed}; lower --learning-rate (it is {config.learning_rate:g})"
            )
        kept = int(np.argmin(history["val_loss"]))  # fit restores the lowest-loss weights
        # (training under a strategy tracks the loss only)
        accuracy = history.get("val_accuracy", [math.nan] * len(history["loss"]))[kept]
        print(
            f"  seed {seed}: {len(history['loss'])} epochs; kept epoch {kept + 1}, the lowest "
            f"validation loss ({history['val_loss'][kept]:.4f}; validation accuracy "
            f"{accuracy:.4f})"
        )
        members.append(distribution.local_copy(classifier))
        histories.append(history)
    rnn = text.end_to_end_model(vectorizer, average_members(members), config.max_length, name="rnn")
    one_per_seed = [
        text.end_to_end_model(vectorizer, member, config.max_length, name=f"{member.name}_text")
        for member in members
    ]
    model, wide, stacked_accuracy = rnn, None, None
    if config.wide == "tfidf":
        model, wide, stacked_accuracy = add_wide_part(corpus, rnn, baseline, config)
    epochs_run = sum(len(history["loss"]) for history in histories)
    return Trained(
        model, rnn, one_per_seed, baseline, wide, stacked_accuracy, histories, vocabulary_size,
        epochs_run, time.perf_counter() - started,
    )  # fmt: skip


def add_wide_part(corpus, rnn, baseline, config):
    """Carry the TF-IDF + logistic regression into Keras, then stack it with the RNN on validation.

    The two models are right on different texts (notebook 09 shows which), so
    adding their log-odds, each weighed by how far it earns trust on texts
    where neither's weights were fit, can beat both; the report says whether it did.
    """
    val_texts, val_labels = corpus.splits["validation"]
    tfidf, regression, strength, _ = baseline
    wide = text.ngram_logistic_model(tfidf, regression)
    weights, bias, stacked_accuracy = text.fit_stack(
        text.log_odds(rnn, wide, val_texts), val_labels, seed=config.seed
    )
    print(
        f"Wide part: the TF-IDF + logistic regression baseline (C={strength:g}) as Keras layers; "
        f"stacked with the RNN on the validation split: {weights[0]:.2f} x RNN log-odds + "
        f"{weights[1]:.2f} x n-gram log-odds {bias:+.2f} (cross-validated accuracy "
        f"{stacked_accuracy:.4f})"
    )
    model = text.wide_and_deep_model(rnn, wide, weights, bias, name="sentiment")
    return model, wide, stacked_accuracy


@dataclass
class Report:
    """The test table beside the baselines, and what it was computed from."""

    table: dict  # model name -> test scores
    verdict: str
    validation_accuracy: dict  # model name -> accuracy on the validation split
    seed_accuracies: dict  # model name -> test accuracy with each seed's network alone
    baseline_strength: float  # the logistic regression's C, chosen on validation accuracy
    test_probabilities: np.ndarray  # the saved model's


def report(corpus, trained, config):
    """Score the RNN, the wide & deep model, TF-IDF + logistic regression and the majority class."""
    (val_texts, val_labels), (test_texts, test_labels) = (
        corpus.splits["validation"],
        corpus.splits["test"],
    )

    def accuracy(labels, probabilities):
        return float(np.mean((probabilities >= 0.5) == labels))

    tfidf, regression, strength, baseline_validation = trained.baseline
    baseline_test = regression.predict_proba(tfidf.transform(test_texts))[:, 1]
    majority = int(np.mean(corpus.splits["train"][1]) >= 0.5)
    rnn_test = predict_texts(trained.rnn, test_texts)
    table = {
        RNN: scores(test_labels, rnn_test),
        BASELINE: scores(test_labels, baseline_test),
    }
    validation = {
        RNN: accuracy(val_labels, predict_texts(trained.rnn, val_texts)),
        BASELINE: baseline_validation,
    }
    # Each seed's network alone, read once: its test accuracy, and the stack built on it.
    member_test = [text.probability_log_odds(member, test_texts) for member in trained.members]
    seeds = {RNN: [float(np.mean((log_odds >= 0) == test_labels)) for log_odds in member_test]}
    probabilities = rnn_test
    if trained.wide is not None:
        probabilities = predict_texts(trained.model, test_texts)
        table[WIDE_AND_DEEP] = scores(test_labels, probabilities)
        validation[WIDE_AND_DEEP] = trained.stacked_validation_accuracy
        seeds[WIDE_AND_DEEP] = stacked_seed_accuracies(corpus, trained, member_test)
    table["majority class"] = {"accuracy": float(np.mean(test_labels == majority))}
    rows = {
        name: {
            "validation accuracy": validation.get(name),
            "test accuracy": scores_of["accuracy"],
            "F1": scores_of.get("F1"),
            "ROC AUC": scores_of.get("ROC AUC"),
            "test accuracy by seed": spread(seeds.get(name, [])),
        }
        for name, scores_of in table.items()
    }
    seeds_said = f"{config.seeds} seeds averaged" if config.seeds > 1 else "1 seed"
    print()
    common.print_table(
        rows,
        title=f"Test split, {len(test_labels)} texts ({corpus.source}); {seeds_said}, each seed "
        "alone as mean ± sd; validation accuracy is where choices are made:",
    )
    said = verdict(table, validation)
    print("\n" + said)
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
        deep_val = text.probability_log_odds(member, val_texts)
        weights, bias, _ = text.fit_stack(np.column_stack([deep_val, wide_val]), val_labels)
        log_odds = np.column_stack([deep_test, wide_test]) @ weights + bias
        found.append(float(np.mean((log_odds >= 0) == test_labels)))
    return found


def spread(values):
    """'0.7812 ± 0.0041' (mean ± sample standard deviation), the value alone for one, None for none."""
    if not values:
        return None
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def save(out, corpus, trained, found, config, distribution):
    """Write the model, the metrics, the confusion matrix and the training curves into ``out``."""
    save_model_atomically(trained.model, out / "model.keras")
    test_texts, test_labels = corpus.splits["test"]
    metrics = {
        "test": found.table,
        "verdict": found.verdict,
        "validation_accuracy": found.validation_accuracy,
        "examples": {part: corpus.count(part) for part in corpus.splits},
        "source": corpus.source,
        "class_names": list(corpus.class_names),
        "model": config.model_name,
        "vocabulary_size": trained.vocabulary_size,
        "baseline_C": found.baseline_strength,
        "test_accuracy_by_seed": found.seed_accuracies,
        "epochs_run": trained.epochs_run,
        "train_seconds": round(trained.seconds, 2),
        "train_examples_per_second": round(
            corpus.count("train") * trained.epochs_run / trained.seconds, 1
        ),
        "config": dataclasses.asdict(config),
        "trained_on": distribution.summary(config.batch_size),
        # A reload check: keras.models.load_model("model.keras") must give these same probabilities.
        "example_predictions": [
            {"text": example, "probability": float(probability)}
            for example, probability in zip(
                test_texts[:5], predict_texts(trained.model, test_texts[:5])
            )
        ],
    }
    if trained.wide is not None:  # --wide tfidf: the n-gram part and the stacking weights
        (weights, bias) = trained.model.get_layer("stack").get_weights()
        metrics["wide"] = {
            "C": trained.baseline[2],
            "stack": {"rnn": weights[0, 0], "ngram": weights[1, 0], "bias": bias[0]},
        }
    write_json(out / "metrics.json", metrics, reasons=NULL_REASONS)
    write_json(out / "config.json", {"app": "sentiment", "seed": config.seed})  # who made it
    text.plot_confusion_matrix(
        test_labels,
        found.test_probabilities >= 0.5,
        out / "confusion_matrix.png",
        class_names=list(corpus.class_names),
        title=f"{'wide & deep' if trained.wide else 'RNN'} on the test split "
        f"({len(test_labels)} texts)",
    )
    seeds = range(config.seed, config.seed + config.seeds)
    plot_histories(trained.histories, seeds, out / "training.png")


@report_user_errors
def main(argv=None):
    started = time.perf_counter()
    config = read_config(argv)
    if config.load:
        return use_saved_model(config)
    distribution = start_distribution(config)  # before TensorFlow runs anything
    corpus = load_data(config)
    trained = train(corpus, config, distribution)
    found = report(corpus, trained, config)
    if not distribution.is_chief:  # one run folder per cluster: worker 0 writes it
        return finish_worker(distribution)
    # Everything is computed; only now touch the output folder, which gets the run whole or not at all.
    with run_folder(config.out, config.overwrite) as out:
        save(out, corpus, trained, found, config, distribution)
    distribution.finish()
    print(
        f"\nSaved model.keras, metrics.json, confusion_matrix.png and training.png in {config.out}/ "
        f'({time.perf_counter() - started:.0f} s; try --load {config.out} --predict "some review")'
    )
    return 0


def read_stdin_lines():
    if not hasattr(sys.stdin, "buffer"):  # already text (a test's StringIO)
        return sys.stdin.read().splitlines()
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise UserError(
            f"--predict -: standard input is not UTF-8 text (byte {data[error.start]:#x} "
            f"at position {error.start})"
        ) from None


def use_saved_model(config):
    """``--load``: label texts (``--predict``) or score a labelled file (``--evaluate``)."""
    model = load_model_from_dir(config.load, app="sentiment")
    if len(model.inputs) != 1 or model.inputs[0].dtype != "string":
        raise UserError(
            f"--load {config.load}: model.keras is not a sentiment model (it does not read text); "
            "was it saved by another app?"
        )
    if config.evaluate:
        try:
            frame = text.read_text_table(
                config.evaluate,
                config.text_col,
                config.label_col,
                origin=f"--evaluate {config.evaluate}",
                need_both=False,
            )
        except ValueError as error:
            raise user_error(error) from None
        probabilities = predict_texts(model, frame["text"].to_numpy(dtype=object))
        labels = frame["label"].to_numpy()
        result = scores(labels, probabilities)
        correct = int(np.sum((probabilities >= 0.5) == labels))
        common.print_table({model.name: result}, title=f"{config.evaluate}: {len(labels)} texts")
        print(f"Accuracy {result['accuracy']:.4f} ({correct} of {len(labels)} correct)")
    if config.predict:
        texts = read_stdin_lines() if config.predict == ("-",) else list(config.predict)
        for number, item in enumerate(texts, start=1):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as surrogates
                raise UserError(f"--predict: text {number} is not UTF-8 text") from None
        kept = [t for t in texts if t.strip()]
        if not kept:
            raise UserError(
                "--predict: the text is empty; give at least one word"
                if len(texts) <= 1
                else "--predict: every text is empty"
            )
        for number, item in enumerate(texts, start=1):
            if not item.strip():
                print(
                    f"sentiment: skipping text {number} of {len(texts)}: it is empty",
                    file=sys.stderr,
                )
        probabilities = predict_texts(model, np.array(kept, dtype=object))
        for item, probability in zip(kept, probabilities):
            label = text.LABEL_NAMES[int(probability >= 0.5)]
            print(f"{label:<8}  P(positive)={probability:.3f}  {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
