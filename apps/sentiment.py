"""Classify movie reviews as positive or negative: a bidirectional RNN stacked with an n-gram model.

    python apps/sentiment.py                        # bundled Rotten Tomatoes snippets, offline, about two minutes
    python apps/sentiment.py --cell lstm --seeds 1 --pretrain none
    python apps/sentiment.py --dataset imdb         # IMDB reviews via keras.datasets (downloads once, cached)
    python apps/sentiment.py --data reviews.tsv --text-col review --label-col sentiment
    python apps/sentiment.py --load runs/sentiment/<run>/ --predict "A triumph." "Dull and overlong."
    echo "What a mess." | python apps/sentiment.py --load runs/sentiment/<run>/ --predict -
    python apps/sentiment.py --load runs/sentiment/<run>/ --evaluate labelled.csv

The saved model.keras reads raw strings (its TextVectorization layers were
fit on the training split only), so --predict and --evaluate need nothing else.

Wide & deep (the default, --wide tfidf): two models that are right on
different texts, added in log-odds.
- Deep: Embedding (masking the padding) -> bidirectional GRU -> dropout -> one
  sigmoid unit (common.build_many_to_one), reading lower-cased words with "!",
  "?" and "n't" kept, because they carry sentiment. Word vectors counted on the
  training text and unlabelled plot summaries (PPMI + SVD) start the embedding;
  --seeds networks are averaged; length-bucketed batches spend little on padding.
- Wide: the TF-IDF (word 1-2 grams) + logistic regression baseline itself,
  carried into Keras layers.
- Stack: sigmoid(a * RNN log-odds + b * n-gram log-odds + c), the three
  numbers fit on the validation split, where neither part's weights were fit.

The test table sets the RNN, the baseline and the combined model side by side
and says plainly whether the saved model beat the baseline. bench/sentiment.py
measures it over seeds; notebook 09 shows where each part is right.
"""

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path


if __name__ == "__main__":  # first, before TensorFlow loads: Ctrl-C then is one line
    from apps._start import stop_quietly_while_starting

    stop_quietly_while_starting()

import common  # first: keeps TensorFlow's start-up log noise out of the terminal, loads it later

from common.cli import RunOptions, UserError, option, report_user_errors, write_json
from common.cli import dropout_rate, positive_float, positive_int, positive_int_up_to
from common.cli import load_model_from_dir, prepare_out, save_model_atomically
from common.cli import (
    refuse_missing,
    refuse_unused_with_load,
    save_run,
    shrink_for_quick,
    start_distribution,
)
from common.data.files import read_lines

import numpy as np

# TensorFlow loads on first use: --help and option errors come first.
text = common.import_later("common.tasks.sentiment")

REPO = Path(__file__).resolve().parent.parent
BUNDLED_CSV = REPO / "data" / "rotten_tomatoes.csv.gz"
IMDB_CACHE = (
    Path.home() / ".cache" / "rnn-workshop" / "imdb"
)  # where --dataset imdb downloads are kept
NULL_REASONS = {"ROC AUC": "the texts scored hold only one class"}


@dataclass(frozen=True)
class Config(RunOptions):
    """A sentiment run's options, checked, after ``--quick``: what the run was asked to do."""

    APP = "sentiment"
    # With --load the saved run keeps its settings; these options say what to classify.
    WITH_LOAD = {"predict", "evaluate", "text_col", "label_col"}
    GROUPS = {
        "data": "data (default: bundled Rotten Tomatoes snippets with a fixed "
        "train/validation/test split)",
        "model": "model",
        "use": "use a saved model",
    }

    epochs: int = option(8, quick=2)  # this app's own defaults for the shared options
    batch_size: int = 32
    dataset: str = option(
        "rotten_tomatoes",
        "bundled snippets, or IMDB reviews via keras.datasets.imdb (downloads once, cached)",
        group="data",
        choices=["rotten_tomatoes", "imdb"],
        exclusive="source",
    )
    data: Path | None = option(
        None,
        "CSV/TSV with a text column and a binary label column (0/1, pos/neg, "
        "positive/negative, fresh/rotten); a 'split' column (train, validation or dev, test) is "
        "used if present, else a fixed 80/10/10 split",
        group="data",
        type=Path,
        metavar="PATH",
        exclusive="source",
    )
    text_col: str = option("text", "text column in --data or --evaluate files", group="data")
    label_col: str = option("label", "label column in --data or --evaluate files", group="data")
    cache_dir: Path = option(
        IMDB_CACHE, "where --dataset imdb downloads are kept", group="data", type=Path
    )
    cell: str = option("gru", "recurrent cell", choices=["gru", "lstm", "rnn"])
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
        "ppmi", "start from PPMI word vectors (train + unlabelled text)", choices=["ppmi", "none"]
    )
    seeds: int = option(
        3, "networks from different random starts, averaged", type=positive_int_up_to(32), quick=1
    )
    learning_rate: float = option(5e-4, "Adam learning rate", type=positive_float, quick=3e-3)
    wide: str = option(
        "tfidf",
        "tfidf: add a logistic regression over TF-IDF of word 1-2 grams beside the RNN, "
        "their log-odds combined with weights fit on the validation split (wide & deep); "
        "none: the RNN alone",
        choices=["tfidf", "none"],
    )
    load: Path | None = option(
        None, "skip training: use DIR/model.keras", group="use", type=Path, metavar="DIR"
    )
    predict: tuple | None = option(
        None,
        "with --load: label each TEXT with its probability ('-': one text per line from stdin)",
        group="use",
        nargs="+",
        metavar="TEXT",
    )
    evaluate: Path | None = option(
        None, "with --load: score a labelled CSV/TSV", group="use", type=Path, metavar="FILE"
    )

    @property
    def model_name(self):
        direction = "unidirectional" if self.unidirectional else "bidirectional"
        name = f"{direction} {self.cell.upper()}{self.units}, embedding {self.embedding_dim}"
        return name + (f", {self.seeds} seeds averaged" if self.seeds > 1 else "")


def read_config(argv):
    """Parse and check the options before any work; ``--quick`` shrinks what was not typed."""
    parser = Config.parser(__doc__)
    args = parser.parse_args(argv)
    if args.load:
        refuse_unused_with_load(parser, argv, Config.WITH_LOAD)
    if (args.predict or args.evaluate) and not args.load:
        parser.error("--predict and --evaluate need --load DIR")
    if args.load and not (args.predict or args.evaluate):
        parser.error("--load needs --predict TEXT... or --evaluate FILE")
    if args.predict and "-" in args.predict and len(args.predict) > 1:
        raise UserError("--predict: '-' (read standard input) cannot be mixed with other texts")
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
    for flag, path in (("--data", args.data), ("--evaluate", args.evaluate)):
        refuse_missing(flag, path)
    refuse_missing("--load", args.load, "folder")
    return Config.from_args(args)


def user_error(error):
    """A file's problem found by ``common.tasks.sentiment``, as the one line the user reads."""
    hint = " (choose columns with --text-col and --label-col)" if "column" in str(error) else ""
    return UserError(f"{error}{hint}")


# ---------------------------------------------------------------- the run's four steps


def load_data(config):
    """The texts to learn from: a --data file, IMDB, or the bundled snippets (a sample with --quick)."""
    if config.data:
        name = f"--data {config.data}"
        try:
            corpus = text.load_table(config.data, config.text_col, config.label_col, name=name)
        except ValueError as error:  # the file's fault: one line
            raise user_error(error) from None
    elif config.dataset == "imdb":
        try:
            corpus = text.load_imdb(config.cache_dir)
        except ValueError as error:  # no network, or damaged downloads
            raise UserError(f"--dataset imdb: {error}") from None
    else:
        corpus = text.load_rotten_tomatoes(BUNDLED_CSV)
    if config.quick:
        corpus = text.shrink_for_quick_run(corpus, config.seed)
    labels = corpus.splits["validation"][1]
    if config.wide == "tfidf" and min(np.sum(labels == 0), np.sum(labels == 1)) < 2:
        raise UserError(
            f"{corpus.source}: the validation split holds {np.sum(labels == 1)} positive and "
            f"{np.sum(labels == 0)} negative texts; stacking the wide part on it needs at least "
            "2 of each (more data, or --wide none for the RNN alone)"
        )
    print(f"Data: {corpus}")
    return corpus


def build_model(config, vocabulary_size, embedding_weights=None, seed=0):
    """The recurrent classifier the options describe (see common.tasks.sentiment)."""
    return text.build_classifier(
        vocabulary_size,
        cell=config.cell,
        units=config.units,
        embedding_dim=config.embedding_dim,
        bidirectional=not config.unidirectional,
        dropout=config.dropout,
        learning_rate=config.learning_rate,
        embedding_weights=embedding_weights,
        seed=seed,
    )


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
    if cut := text.count_cut(vectorizer, train_texts, config.max_length):
        print(
            f"{cut} of {len(train_texts)} training texts are longer than --max-length "
            f"{config.max_length} tokens; the RNN reads the first {config.max_length} of each"
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
        ids = token_ids["train"] + text.vectorize(vectorizer, corpus.unlabelled, 10**6)
        size = config.embedding_dim
        embedding_weights = text.pretrain_embeddings(ids, vocabulary_size, size, seed=config.seed)
        print(
            f"Pretrained {config.embedding_dim}-d word vectors for {vocabulary_size} words on "
            "training + unlabelled text (PPMI + SVD)"
        )
    validation_batches = text.bucketed_batches(
        token_ids["validation"], val_labels, 256, shuffle=False
    )
    print(
        f"Training {config.model_name} on length-bucketed batches, up to {config.epochs} epochs "
        "per seed ..."
    )
    print(distribution.describe(config.batch_size))
    batch_size = distribution.global_batch(config.batch_size)
    members, histories, started = [], [], time.perf_counter()
    for seed in range(config.seed, config.seed + config.seeds):
        train_batches = text.bucketed_batches(
            token_ids["train"], train_labels, batch_size, seed=seed
        )
        with distribution.scope():  # the weights are mirrored on every replica
            classifier = build_model(config, vocabulary_size, embedding_weights, seed)
        # Validation loss bottoms out after about two epochs, then climbs: one epoch of patience.
        history = common.fit(
            classifier,
            train_batches,
            validation_batches,
            epochs=config.epochs,
            patience=1,
            verbose=config.progress,
            distribution=distribution,
            name=f"seed-{seed}",
        ).history
        if (epoch := common.diverged(history)) is not None:
            raise UserError(
                f"training diverged: the loss stopped being a number in epoch {epoch} of seed "
                f"{seed}; lower --learning-rate (it is {config.learning_rate:g})"
            )
        print(f"  seed {seed}: {text.kept_epoch(history)}")  # fit restores the best weights
        members.append(distribution.local_copy(classifier))
        histories.append(history)
    averaged = text.average_members(members)
    rnn = text.end_to_end_model(vectorizer, averaged, config.max_length, name="rnn")
    one_per_seed = [
        text.end_to_end_model(vectorizer, member, config.max_length, name=f"{member.name}_text")
        for member in members
    ]
    model, wide, stacked = rnn, None, None
    if config.wide == "tfidf":
        model, wide, stacked = add_wide_part(corpus, rnn, baseline, config)
    seconds = time.perf_counter() - started
    return text.Trained(
        model, rnn, one_per_seed, baseline, wide, stacked, histories, vocabulary_size, seconds
    )


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


def report(corpus, trained, config):
    """Score the saved model beside the RNN alone, TF-IDF + logistic regression and the majority."""
    found = text.score_models(corpus, trained)
    seeds_said = f"{config.seeds} seeds averaged" if config.seeds > 1 else "1 seed"
    print()
    common.print_table(
        text.report_rows(found),
        title=f"Test split, {corpus.count('test')} texts ({corpus.source}); {seeds_said}, each "
        "seed alone as mean ± sd; validation accuracy is where choices are made:",
    )
    print("\n" + found.verdict)
    return found


def save(out, corpus, trained, found, config, distribution):
    """Write the model, the metrics, the confusion matrix and the training curves into ``out``."""
    save_model_atomically(trained.model, out / "model.keras")
    metrics = text.run_metrics(corpus, trained, found)
    metrics.update(
        model=config.model_name,
        config=dataclasses.asdict(config),
        trained_on=distribution.summary(config.batch_size),
    )
    write_json(out / "metrics.json", metrics, reasons=NULL_REASONS)
    write_json(out / "config.json", {"app": "sentiment", "seed": config.seed})  # who made it
    seeds = [f"seed {seed}" for seed in range(config.seed, config.seed + config.seeds)]
    text.plot_run(out, corpus, trained, found, run_labels=seeds)


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
    # Everything is computed; only now touch the output folder, which gets the run whole or not at all.
    if save_run(config, distribution, save, corpus, trained, found, config, distribution):
        print(
            f"\nSaved model.keras, metrics.json, confusion_matrix.png and training.png in "
            f"{config.out}/ ({time.perf_counter() - started:.0f} s; try --load {config.out} "
            '--predict "some review")'
        )
    return 0


# ---------------------------------------------------------------- a saved model in use


def use_saved_model(config):
    """``--load``: label texts (``--predict``) or score a labelled file (``--evaluate``)."""
    model = load_model_from_dir(config.load, app="sentiment")
    if len(model.inputs) != 1 or model.inputs[0].dtype != "string":
        raise UserError(
            f"--load {config.load}: model.keras is not a sentiment model (it does not read text); "
            "was it saved by another app?"
        )
    if config.evaluate:
        name = f"--evaluate {config.evaluate}"
        try:
            result, correct, count, notes = text.evaluate_file(
                model, config.evaluate, config.text_col, config.label_col, name=name
            )
        except ValueError as error:
            raise user_error(error) from None
        title = f"{config.evaluate}: {count} texts" + "".join(f"; {note}" for note in notes)
        common.print_table({model.name: result}, title=title)
        print(f"Accuracy {result['accuracy']:.4f} ({correct} of {count} correct)")
    if config.predict:
        try:
            texts = read_lines(sys.stdin) if config.predict == ("-",) else config.predict
        except ValueError as error:
            raise UserError(f"--predict -: {error}") from None
        try:
            kept, empty = text.texts_to_label(list(texts))
        except ValueError as error:
            raise UserError(f"--predict: {error}") from None
        for number in empty:
            sys.stderr.write(f"sentiment: skipping text {number} of {len(texts)}: it is empty\n")
        numbers = [number for number in range(1, len(texts) + 1) if number not in empty]
        for position in text.without_known_words(model, kept):
            sys.stderr.write(
                f"sentiment: note: text {numbers[position]} of {len(texts)} holds no word the "
                "model knows; its probability is the model's guess for an empty text\n"
            )
        print("\n".join(text.label_lines(model, kept)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
