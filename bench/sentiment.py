"""Benchmark apps/sentiment.py: the RNN, TF-IDF + logistic regression and wide & deep, over seeds.

    python bench/sentiment.py                 # the app's defaults at 3 base seeds, about 5 minutes on 2 cores
    python bench/sentiment.py --runs 5        # more seeds: a steadier mean
    python bench/sentiment.py --speed         # instead: bucketed against padded batches (keras.io-style)
    python bench/sentiment.py --quick         # a smoke test of the script itself

Accuracy (the default): runs the app's own steps (read_config, load_data,
train, report) on the bundled Rotten Tomatoes splits once per base seed; each
run averages --seeds networks as the app does. One row per model, over the
runs: validation accuracy (where choices are made), test accuracy as mean,
standard deviation, lowest and highest, and test ROC AUC; then the same test
accuracy for every network alone (runs x seeds of them). Beside the app's
models, one ablation: the RNN's and the baseline's probabilities simply
averaged, with no stacking weights.

Speed (--speed): the app's network fed length-bucketed batches against the
same network fed batches padded to --pad-length, beside the keras.io
"Bidirectional LSTM on IMDB" setup (Keras's default tokenizer, every text
padded, Embedding 128 -> BiLSTM 64 -> BiLSTM 64, random embedding).
"examples/s" counts training examples per second of model.fit over the epochs
actually run. Times depend on the machine and on what else runs on it;
compare rows of one run.
"""

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import common  # first: keeps TensorFlow's start-up log noise out of the terminal
import common.tasks.sentiment as text
from apps import sentiment as app

import keras
import numpy as np

AVERAGED = "RNN and TF-IDF + LR probabilities averaged (ablation: no stacking)"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="bench/sentiment.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="app runs, each from its own base seed (default: 3)"
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="the first run's base seed (default: %(default)s)"
    )
    parser.add_argument(
        "--speed", action="store_true", help="time bucketed against padded batches instead"
    )
    parser.add_argument(
        "--pad-length",
        type=int,
        default=200,
        help="tokens every text is padded to in the --speed rows (default: %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small sample and short training: checks the script"
    )
    return parser.parse_args(argv)


# ---------------------------------------------------------------- accuracy over seeds


def one_run(seed, quick):
    """The app's steps for one base seed; test and validation accuracy of every model."""
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
        argv = ["--seed", str(seed), "--out", str(Path(folder) / "run")]
        config = app.read_config(argv + (["--quick"] if quick else []))
        corpus = app.load_data(config)
        trained = app.train(corpus, config, common.scale.distribute.setup("none"))
        found = app.report(corpus, trained, config)
        (val_texts, val_labels), (test_texts, test_labels) = (
            corpus.splits["validation"],
            corpus.splits["test"],
        )
        tfidf, regression, _, _ = trained.baseline
        averaged = {
            name: (
                text.predict_texts(trained.rnn, texts)
                + regression.predict_proba(tfidf.transform(texts))[:, 1]
            )
            / 2
            for name, texts in (("validation", val_texts), ("test", test_texts))
        }
    found.table[AVERAGED] = text.scores(test_labels, averaged["test"])
    found.validation_accuracy[AVERAGED] = float(
        np.mean((averaged["validation"] >= 0.5) == val_labels)
    )
    return found, config.seeds


def accuracy_table(args):
    runs, seeds = [], 1
    for number in range(args.runs):
        seed = args.seed + number * 10  # the app trains seeds seed, seed + 1, ...: no overlap
        started = time.perf_counter()
        found, seeds = one_run(seed, args.quick)
        runs.append(found)
        shown = ", ".join(
            f"{name.split(' (')[0]} {scores['accuracy']:.4f}"
            for name, scores in found.table.items()
            if name != "majority class"
        )
        print(
            f"run {number + 1} (base seed {seed}): test accuracy {shown} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    rows = {}
    for name in (text.RNN, text.BASELINE, text.WIDE_AND_DEEP, AVERAGED):
        test = np.array([found.table[name]["accuracy"] for found in runs])
        baseline = np.array([found.table[text.BASELINE]["accuracy"] for found in runs])
        rows[name] = {
            "val acc": np.mean([found.validation_accuracy[name] for found in runs]),
            "test acc": test.mean(),
            "sd": test.std(ddof=1) if len(test) > 1 else float("nan"),
            "min": test.min(),
            "max": test.max(),
            "vs TF-IDF (points)": 100 * (test - baseline).mean(),
            "ROC AUC": np.mean([found.table[name]["ROC AUC"] for found in runs]),
        }
    print()
    common.print_table(
        rows,
        title=f"Rotten Tomatoes, {args.runs} runs of the app's defaults ({seeds} seeds "
        "averaged in each); test accuracy over the runs:",
    )
    single = {
        name: np.concatenate([found.seed_accuracies[name] for found in runs])
        for name in (text.RNN, text.WIDE_AND_DEEP)
    }
    print()
    common.print_table(
        {
            f"{name}, one network": {
                "networks": len(values),
                "test acc": values.mean(),
                "sd": values.std(ddof=1) if len(values) > 1 else float("nan"),
                "min": values.min(),
                "max": values.max(),
            }
            for name, values in single.items()
        },
        title="Each seed's network alone (wide & deep: stacked afresh with the n-gram part):",
    )
    return rows


# ---------------------------------------------------------------- speed: buckets against padding


def keras_io_model(vocab_size):
    inputs = keras.Input(shape=(None,), dtype="int64")
    x = keras.layers.Embedding(vocab_size, 128)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train_and_score(name, model, batches, num_train, epochs):
    common.set_seed(0)
    started = time.perf_counter()
    history = common.fit(model, batches["train"], batches["validation"], epochs=epochs, patience=1)
    seconds = time.perf_counter() - started
    epochs_run = len(history.history["loss"])
    _, test_accuracy = model.evaluate(batches["test"], verbose=0)
    best = int(np.argmin(history.history["val_loss"]))
    print(f"  {name}: {epochs_run} epochs in {seconds:.0f} s", flush=True)
    return {
        "test accuracy": test_accuracy,
        "val accuracy": history.history["val_accuracy"][best],
        "epochs": epochs_run,
        "train s": seconds,
        "examples/s": num_train * epochs_run / seconds,
        "padding %": 100 * text.padding_share(batches["train"]),
    }


def speed_table(args):
    corpus = text.load_rotten_tomatoes(app.BUNDLED_CSV)
    epochs = 4
    if args.quick:
        corpus = text.shrink_for_quick_run(corpus, seed=0)
        epochs = 1
    splits, unlabelled, source = corpus.splits, corpus.unlabelled, corpus.source
    train_texts, train_labels = splits["train"]
    print(f"Data: {source}; {len(train_labels)} training texts")

    def batches(ids, length=None):
        def one(name, labels):
            size = 32 if name == "train" else 256
            if length is None:
                return text.bucketed_batches(ids[name], labels, size, shuffle=name == "train")
            return text.padded_batches(ids[name], labels, size, length, shuffle=name == "train")

        return {name: one(name, labels) for name, (_, labels) in splits.items()}

    rows = {}
    plain = keras.layers.TextVectorization(max_tokens=20000)  # keras.io: punctuation stripped
    plain.adapt(train_texts)
    plain_ids = {
        name: text.vectorize(plain, texts, args.pad_length) for name, (texts, _) in splits.items()
    }
    rows[f"keras.io-style BiLSTM64x2, padded to {args.pad_length}"] = train_and_score(
        "keras.io-style",
        keras_io_model(plain.vocabulary_size()),
        batches(plain_ids, args.pad_length),
        len(train_labels),
        epochs,
    )
    config = app.Config()
    vectorizer = text.make_vectorizer(train_texts, max_tokens=config.max_tokens)
    ids = {
        name: text.vectorize(vectorizer, texts, config.max_length)
        for name, (texts, _) in splits.items()
    }
    embedding = text.pretrain_embeddings(
        ids["train"] + text.vectorize(vectorizer, unlabelled, 10**6),
        vectorizer.vocabulary_size(),
        config.embedding_dim,
    )
    for label, length in (
        (f"app BiGRU32 (1 seed), padded to {args.pad_length}", args.pad_length),
        ("app BiGRU32 (1 seed), bucketed", None),
    ):
        model = text.build_classifier(
            vectorizer.vocabulary_size(),
            cell=config.cell,
            units=config.units,
            embedding_dim=config.embedding_dim,
            dropout=config.dropout,
            learning_rate=config.learning_rate,
            embedding_weights=embedding,
            seed=0,
        )
        rows[label] = train_and_score(label, model, batches(ids, length), len(train_labels), epochs)
    print()
    common.print_table(rows, title=f"Sentiment speed ({source}; times on this machine, now):")
    padded, bucketed = list(rows.values())[-2:]
    print(
        f"\nBucketing trains the same network {bucketed['examples/s'] / padded['examples/s']:.1f}x "
        f"faster than padding to {args.pad_length} tokens."
    )
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.speed:
        speed_table(args)
    else:
        accuracy_table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
