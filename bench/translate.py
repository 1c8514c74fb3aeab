"""Benchmark apps/translate.py: the GRU with attention, a transformer of its size, and the baselines.

    python bench/translate.py                   # the app's default run (4 minutes of training), about 6 minutes
    python bench/translate.py --minutes 15      # the target: test BLEU >= 40, Spanish -> English
    python bench/translate.py --data ../shared/tatoeba-spa-eng/spa-eng.txt --minutes 15
    python bench/translate.py --quick           # a smoke test of the script itself

Runs the app's own steps (read_config, load_data, train, report) once: the
network trained for --minutes, scored with greedy and beam search on the test
split beside word-for-word (IBM Model 1) and retrieval (TF-IDF). Then a
transformer (common.models.transformer, keras.layers.MultiHeadAttention) with
about as many weights, on the same training batches, for the same minutes,
decoded greedily (it writes [UNK] where the GRU copies the source word it
attended to, which can only lower its score). The targets (issue 22): BLEU >= 40 for Spanish -> English
within 15 minutes of training, beam search >= greedy + 0.5 BLEU, the network
>= both baselines + 10 BLEU. The last table says which were met. Times depend
on the machine and on what else runs on it; compare rows of one run.
"""

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import common  # first: keeps TensorFlow's start-up log noise out of the terminal
import common.tasks.translate as mt
from apps import translate as app
from common.models.seq2seq import predict_autoregressive
from common.models.transformer import build_transformer
from common.scale import distribute

import keras
import numpy as np


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="bench/translate.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--minutes", type=float, help="training time of each model (default: the app's)"
    )
    parser.add_argument("--direction", default="spa-eng", help="as the app's (default: spa-eng)")
    parser.add_argument("--data", type=Path, help="a pairs file (default: the bundled pairs)")
    parser.add_argument("--seed", type=int, default=42, help="(default: %(default)s)")
    parser.add_argument("--no-transformer", action="store_true", help="skip the transformer")
    parser.add_argument("--quick", action="store_true", help="a smoke test, seconds")
    return parser.parse_args(argv)


def app_argv(args, out):
    argv = ["--direction", args.direction, "--seed", str(args.seed)]
    argv += ["--minutes", str(args.minutes)] if args.minutes else []
    argv += ["--data", str(args.data)] if args.data else []
    return argv + (["--quick"] if args.quick else []) + ["--out", str(out)]


def parameters(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def transformer_like(vocab, core, seed):
    """A one-block transformer whose width is chosen so its weights number about the GRU's."""
    target = parameters(core)
    best = None
    for width in (32, 64, 96, 128, 192, 256):
        keras.utils.set_random_seed(seed)
        model = build_transformer(
            vocab.source_length,
            vocab.target_length,
            len(vocab.source),
            len(vocab.target),
            embedding_dim=width,
            heads=4,
            feed_forward_dim=2 * width,
        )
        if best is None or abs(parameters(model) - target) < abs(parameters(best) - target):
            best = model
    mt.compile_translator(best)
    return best


def transformer_row(splits, trained, minutes, seed, batch_size=64):
    """Train the transformer for ``minutes`` on the app's batches; score it greedily on test."""
    vocab = trained.vocab
    model = transformer_like(vocab, trained.model.get_layer("translator"), seed)
    batches = mt.training_batches(vocab, splits["train"], batch_size, seed=seed)
    validation = mt.teacher_forcing(
        vocab, splits["validation"].sources, splits["validation"].targets
    )
    steps = max(1, len(splits["train"]) // (4 * batch_size))
    started = time.perf_counter()
    common.fit(
        model,
        batches,
        validation,
        epochs=1000,
        steps_per_epoch=steps,
        patience=2,
        max_seconds=60 * minutes,
        callbacks=[common.CosineDecayInTime(60 * minutes, 2e-3)],
    )
    seconds = time.perf_counter() - started
    sources, references = mt.grouped_references(splits["test"])
    started = time.perf_counter()
    probabilities = predict_autoregressive(
        model, vocab.source_ids(sources), 2, feedback=lambda out: out.argmax(-1)
    )
    hypotheses = []
    for row in probabilities.argmax(-1):
        words = list(row)
        words = words[: words.index(3)] if 3 in words else words
        hypotheses.append(mt.detokenize([vocab.target[i] for i in words if i > 3 or i == 1]))
    row = mt.scores(hypotheses, references) | {"seconds": time.perf_counter() - started}
    return row, parameters(model), seconds


def targets_table(rows, minutes):
    network = max((n for n in rows if n.startswith("network")), key=lambda n: rows[n]["BLEU"])
    greedy, beams = rows["network, greedy"]["BLEU"], [n for n in rows if "beam" in n]
    baseline = max(rows[n]["BLEU"] for n in ("retrieval (TF-IDF)", "word for word (IBM 1)"))
    found = {
        f"test BLEU >= 40 ({minutes:g} min)": (rows[network]["BLEU"], rows[network]["BLEU"] >= 40),
        "beam >= greedy + 0.5 BLEU": (
            rows[beams[0]]["BLEU"] - greedy if beams else float("nan"),
            bool(beams) and rows[beams[0]]["BLEU"] - greedy >= 0.5,
        ),
        "network >= best baseline + 10 BLEU": (
            rows[network]["BLEU"] - baseline,
            rows[network]["BLEU"] - baseline >= 10,
        ),
    }
    return {
        k: {"measured": f"{v:.1f}", "met": "yes" if ok else "NO"} for k, (v, ok) in found.items()
    }


def main(argv=None):
    args = parse_args(argv)
    common.set_seed(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        config = app.read_config(app_argv(args, Path(folder) / "run"))
        distribution = distribute.setup("none")
        with contextlib.redirect_stdout(sys.stderr):  # the app's own report goes to stderr
            splits = app.load_data(config)
            trained = app.train(splits, config, distribution)
            found = app.report(splits, trained, config)
    rows = {
        name: row | {"weights": parameters(trained.model.get_layer("translator"))}
        if name.startswith("network")
        else row
        for name, row in found.rows.items()
    }
    for name in rows:
        rows[name]["train min"] = trained.seconds / 60 if name.startswith("network") else 0.0
    if not args.no_transformer:
        row, weights, seconds = transformer_row(splits, trained, config.minutes, args.seed)
        rows["transformer, greedy"] = row | {"weights": weights, "train min": seconds / 60}
    source, target = config.languages
    print(
        f"\nTranslation benchmark, {source} -> {target}, {len(splits['test'])} test pairs "
        f"(seed {args.seed}{', --quick' if args.quick else ''}):"
    )
    shown = {
        name: {
            "BLEU": f"{row['BLEU']:.1f}",
            "chrF": f"{row['chrF']:.1f}",
            "exact": f"{100 * row['exact match']:.1f}%",
            "weights": f"{row.get('weights', 0):,}" if "weights" in row else "-",
            "train min": f"{row['train min']:.1f}",
            "decode s": f"{row['seconds']:.1f}",
        }
        for name, row in rows.items()
    }
    common.print_table(shown)
    print(f"\n{found.verdict}\n")
    common.print_table(targets_table(found.rows, config.minutes), title="Targets (issue 22):")
    return 0


if __name__ == "__main__":
    sys.exit(main())
