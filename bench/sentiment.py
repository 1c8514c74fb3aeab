"""Accuracy and training speed: the sentiment app's bucketed model beside a plain keras.io-style setup.

    python bench/sentiment.py                 # Rotten Tomatoes, a few minutes on a 2-core CPU
    python bench/sentiment.py --quick         # a smoke test of the script itself

Rows, all trained on the same bundled train split and scored on its test split:

- keras.io-style: Keras's default tokenizer (punctuation stripped), every text
  padded to --pad-length tokens, Embedding 128 -> BiLSTM 64 -> BiLSTM 64
  (the "Bidirectional LSTM on IMDB" example), random embedding.
- app model, padded: the app's network (BiGRU 32, embedding 64, PPMI-pretrained
  embedding, our tokenizer), fed batches padded to --pad-length.
- app model, bucketed: the same network fed length-bucketed batches, as the app
  trains it. The two app rows differ only in batching, so their speed ratio is
  what bucketing buys.
- TF-IDF + logistic regression, for reference.

"examples/s" counts training examples per second of model.fit over the epochs
actually run (early stopping on validation loss, patience 1, as the app). Times depend on
the machine and on what else runs on it; compare rows of one run.

One run (defaults, on a 2-core CPU shared with other jobs, so the times are
inflated; the ratios hold):

    row                                   test acc  val acc  epochs  examples/s  padding %
    keras.io-style BiLSTM64x2, pad 200     0.736     0.740     2         71        91
    app BiGRU32 (1 seed), pad 200          0.775     0.779     3         98        89
    app BiGRU32 (1 seed), bucketed         0.773     0.769     3        900        12
    TF-IDF + logistic regression           0.788     0.769

Bucketing trains the same network 9x faster at the same accuracy; the app's
default averages three such networks (test accuracy 0.785, ROC AUC 0.864).
"""

import argparse
import sys
import time
from pathlib import Path

import common  # first: keeps TensorFlow's start-up log noise out of the terminal
import common.text as text

import keras
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "apps"))  # the apps are scripts; import one as a module

import sentiment as sentiment_app  # noqa: E402


def keras_io_model(vocab_size):
    inputs = keras.Input(shape=(None,), dtype="int64")
    x = keras.layers.Embedding(vocab_size, 128)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64))(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train_and_score(name, model, train, validation, test, num_train, epochs):
    common.set_seed(0)
    started = time.perf_counter()
    history = common.fit(model, train, validation, epochs=epochs, patience=1)
    seconds = time.perf_counter() - started
    epochs_run = len(history.history["loss"])
    _, test_accuracy = model.evaluate(test, verbose=0)
    best = int(np.argmin(history.history["val_loss"]))
    print(f"  {name}: {epochs_run} epochs in {seconds:.0f} s", flush=True)
    return {
        "test accuracy": test_accuracy,
        "val accuracy": history.history["val_accuracy"][best],
        "epochs": epochs_run,
        "train s": seconds,
        "examples/s": num_train * epochs_run / seconds,
        "padding %": 100 * text.padding_share(train),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs",
        type=int,
        default=4,
        help="most epochs per row; early stopping may end sooner (default: %(default)s)",
    )
    parser.add_argument(
        "--pad-length",
        type=int,
        default=200,
        help="tokens every text is padded to in the padded rows, as in keras.io (default: %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small sample and one epoch: checks the script runs"
    )
    args = parser.parse_args(argv)

    app = sentiment_app
    splits, unlabelled, source, _ = app.load_rotten_tomatoes()
    if args.quick:
        splits, unlabelled = app.shrink_for_quick_run(splits, unlabelled, seed=0)
        args.epochs = 1
    (train_texts, train_labels), (val_texts, val_labels), (test_texts, test_labels) = (
        splits[name] for name in ("train", "validation", "test")
    )
    print(
        f"Data: {source}; {len(train_labels)} train, {len(val_labels)} validation, {len(test_labels)} test texts"
    )
    rows = {}

    # keras.io: default standardization, fixed-length padded batches.
    plain = keras.layers.TextVectorization(max_tokens=20000)
    plain.adapt(train_texts)
    plain_ids = {
        name: text.vectorize(plain, texts, args.pad_length) for name, (texts, _) in splits.items()
    }
    padded = {
        name: text.padded_batches(
            plain_ids[name],
            labels,
            32 if name == "train" else 256,
            args.pad_length,
            shuffle=name == "train",
        )
        for name, (_, labels) in splits.items()
    }
    rows[f"keras.io-style BiLSTM64x2, padded to {args.pad_length}"] = train_and_score(
        "keras.io-style",
        keras_io_model(plain.vocabulary_size()),
        padded["train"],
        padded["validation"],
        padded["test"],
        len(train_labels),
        args.epochs,
    )

    # The app's network, with the app's tokenizer and pretrained embedding, padded then bucketed.
    options = app.parse_args([])
    vectorizer = text.make_vectorizer(train_texts, max_tokens=options.max_tokens)
    ids = {
        name: text.vectorize(vectorizer, texts, options.max_length)
        for name, (texts, _) in splits.items()
    }
    embedding = text.pretrain_embeddings(
        ids["train"] + text.vectorize(vectorizer, unlabelled, 10**6),
        vectorizer.vocabulary_size(),
        options.embedding_dim,
    )
    padded = {
        name: text.padded_batches(
            ids[name],
            labels,
            options.batch_size if name == "train" else 256,
            args.pad_length,
            shuffle=name == "train",
        )
        for name, (_, labels) in splits.items()
    }
    bucketed = {
        name: text.bucketed_batches(
            ids[name],
            labels,
            options.batch_size if name == "train" else 256,
            shuffle=name == "train",
        )
        for name, (_, labels) in splits.items()
    }
    for label, batches in (
        (f"app BiGRU32 (1 seed), padded to {args.pad_length}", padded),
        ("app BiGRU32 (1 seed), bucketed", bucketed),
    ):
        model = app.build_classifier(options, vectorizer.vocabulary_size(), 0, embedding)
        rows[label] = train_and_score(
            label,
            model,
            batches["train"],
            batches["validation"],
            batches["test"],
            len(train_labels),
            args.epochs,
        )

    baseline, _, _ = app.tfidf_baseline(splits)
    rows["TF-IDF + logistic regression"] = {
        "test accuracy": float(np.mean((baseline(test_texts) >= 0.5) == test_labels)),
        "val accuracy": float(np.mean((baseline(val_texts) >= 0.5) == val_labels)),
    }
    print()
    common.print_table(rows, title=f"Sentiment bench ({source}; times on this machine, now):")
    speedup = (
        rows["app BiGRU32 (1 seed), bucketed"]["examples/s"]
        / rows[f"app BiGRU32 (1 seed), padded to {args.pad_length}"]["examples/s"]
    )
    print(
        f"\nBucketing trains the same network {speedup:.1f}x faster than padding to {args.pad_length} tokens."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
