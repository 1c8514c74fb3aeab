"""Train a character-level language model and generate text with it, fast on a CPU.

    python apps/textgen.py                              # bundled Shakespeare, offline, about 2 minutes
    python apps/textgen.py --minutes 10 --units 512     # longer and bigger: lower loss
    python apps/textgen.py --text my_novel.txt --cell gru
    python apps/textgen.py --url https://www.gutenberg.org/cache/epub/1342/pg1342.txt   # cached
    python apps/textgen.py --load runs/textgen/<run>/ --generate 500 --prompt "Romeo." --temperature 0.8 --top-k 20 --samples 3

How it works: the text becomes a sequence of character ids; the model
(embedding, LSTM or GRU layers, dense logits) reads a contiguous slice of it
and predicts, at every position, the next character (aligned many-to-many).
The last 10% of the text is held out: validation loss is measured there, in
nats per character (the cross-entropy Keras reports) and bits per character
(nats / ln 2), and the weights of the best epoch are kept. The table at the
end puts the model beside two predictors that need no training: character
frequencies (unigram) and "which character follows this one" counts (bigram),
both counted on the training text.

Why it is fast: training runs as one XLA-compiled step (jit_compile) on
batches streamed by tf.data. On a 2-core CPU, batches of 32 sequences of 50
characters train at about the same characters per second as 64 x 100, but
make four times as many weight updates, so the loss falls much faster per
minute (measured side by side on a busy machine: 1.95 against 2.43
nats/char after 2 minutes, learning rate 5e-3 against 2e-3). The LSTM and
GRU layers keep their default settings, so a GPU runs them with cuDNN.
Generation reads the prompt once and then carries each layer's recurrent
state forward, one compiled step per new character, instead of re-running the
model over a sliding window for every character (see common/generation.py and
bench/textgen.py).

Prompt characters that never occur in the training text are an error that
names them (they are not dropped). In --prompt, \\n stands for a new line.
"""

import gzip
import hashlib
import math
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import common  # first: keeps TensorFlow's start-up log noise out of the terminal
import common.generation as generation
from common.cli import shrink_for_quick, write_json
from common.cli import (
    UserError,
    app_parser,
    load_model_from_dir,
    positive_float,
    positive_int,
    report_user_errors,
    prepare_out,
    run_folder,
    save_model_atomically,
)
from common.plotting import plt, save_figure

import keras
import numpy as np
import tensorflow as tf

REPO = Path(__file__).resolve().parent.parent
BUNDLED_TEXT = REPO / "data" / "shakespeare.txt.gz"
VALIDATION_FRACTION = 0.1  # the last 10% of the text


def parse_args(argv):
    parser = app_parser(__doc__, "textgen", epochs=100, batch_size=32)
    data = parser.add_argument_group(
        "data (default: Shakespeare's plays, bundled in data/shakespeare.txt.gz)"
    )
    source = data.add_mutually_exclusive_group()
    source.add_argument("--text", type=Path, metavar="PATH", help="train on this UTF-8 text file")
    source.add_argument(
        "--url", help="download a UTF-8 text file and train on it (needs the network once; cached)"
    )
    data.add_argument(
        "--cache-dir",
        type=Path,
        default=Path.home() / ".cache" / "rnn-workshop" / "textgen",
        help="where --url downloads are kept (default: %(default)s)",
    )

    model = parser.add_argument_group("model")
    model.add_argument(
        "--cell",
        choices=["lstm", "gru"],
        default="lstm",
        help="recurrent cell; both run on cuDNN on a GPU (default: %(default)s)",
    )
    model.add_argument(
        "--units",
        type=positive_int,
        nargs="+",
        default=[256],
        help="units per recurrent layer; several numbers stack layers, e.g. --units 256 256 (default: 256)",
    )
    model.add_argument(
        "--embedding-dim",
        type=positive_int,
        default=64,
        help="size of each character's learned vector (default: %(default)s)",
    )
    model.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="dropout on recurrent inputs and before the head, in [0, 1) (default: %(default)s)",
    )

    training = parser.add_argument_group(
        "training (an 'epoch' here is --steps-per-epoch batches, not a pass over the text)"
    )
    training.add_argument(
        "--minutes",
        type=positive_float,
        default=2.0,
        help="wall-clock training budget; stops after the batch that exceeds it (default: %(default)s)",
    )
    training.add_argument(
        "--seq-length",
        type=positive_int,
        default=50,
        help="characters per training sequence (default: %(default)s)",
    )
    training.add_argument(
        "--steps-per-epoch",
        type=positive_int,
        default=200,
        help="batches between validations and samples (default: %(default)s)",
    )
    training.add_argument(
        "--val-chars",
        type=positive_int,
        default=100_000,
        help="validation characters scored each epoch, from the start of the held-out last 10%% (default: %(default)s)",
    )
    training.add_argument(
        "--learning-rate",
        type=positive_float,
        default=5e-3,
        help="Adam learning rate (default: %(default)s)",
    )

    generate = parser.add_argument_group("generation")
    generate.add_argument(
        "--load",
        type=Path,
        metavar="DIR",
        help="skip training: generate with the model.keras saved in DIR",
    )
    generate.add_argument(
        "--generate",
        type=positive_int,
        default=500,
        metavar="N",
        help="characters to generate after the prompt (default: %(default)s)",
    )
    generate.add_argument(
        "--prompt",
        default="Romeo.\\n",
        help="text to start from; \\n is a new line; unknown characters are an error (default: %(default)s)",
    )
    generate.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="above 0; below 1 is safer and more repetitive, above 1 wilder (default: %(default)s)",
    )
    generate.add_argument(
        "--top-k",
        type=int,
        default=0,
        help="sample only among the K most likely characters; 0 for all, 1 is greedy (default: %(default)s)",
    )
    generate.add_argument(
        "--samples",
        type=positive_int,
        default=1,
        help="continuations to generate, as one batch (default: %(default)s)",
    )
    return parser.parse_args(argv)


def check_args(args):
    if not args.temperature > 0:
        raise UserError(f"--temperature must be above 0, got {args.temperature}")
    if args.top_k < 0:
        raise UserError(f"--top-k must be 0 (no limit) or more, got {args.top_k}")
    if not 0 <= args.dropout < 1:
        raise UserError(f"--dropout must be in [0, 1), got {args.dropout}")
    args.prompt = args.prompt.replace("\\n", "\n")
    if not args.prompt:
        raise UserError("--prompt must have at least one character")


# ---------------------------------------------------------------- data


def read_text_file(path, option="--text"):
    """A UTF-8 text file as a string with \\n line ends; one-line errors for the usual mistakes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{option} {path}: no such file")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            raise UserError(f"{option} {path}: not a readable gzip file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{option} {path}: not UTF-8 text (byte 0x{raw[error.start]:02x} at position {error.start}); convert it with iconv"
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise UserError(f"{option} {path}: the file is empty")
    return text


def download_text(url, cache_dir):
    """The text at ``url``, from ``cache_dir`` after the first download."""
    name = url.rstrip("/").rsplit("/", 1)[-1] or "index"
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:60]
    cache_file = Path(cache_dir) / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{safe_name}"
    if not cache_file.is_file():
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                raw = response.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise UserError(
                f"--url {url}: could not download ({reason}); no network? Use --text with a local file, or no option for the bundled Shakespeare"
            ) from None
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(".part")
        partial.write_bytes(raw)
        partial.replace(
            cache_file
        )  # a complete file or none: an interrupted download is not cached
    return read_text_file(cache_file, option=f"--url {url}: the download, cached as")


def load_text(args):
    if args.url:
        return download_text(args.url, args.cache_dir), args.url
    if args.text:
        return read_text_file(args.text), str(args.text)
    return read_text_file(BUNDLED_TEXT), "Shakespeare's plays (data/shakespeare.txt.gz)"


def split_text(text, seq_length):
    """First 90% for training, last 10% for validation; both must hold a whole training sequence."""
    split = int(len(text) * (1 - VALIDATION_FRACTION))
    train_text, val_text = text[:split], text[split:]
    if min(len(train_text), len(val_text)) < seq_length + 1:
        needed = math.ceil((seq_length + 1) / VALIDATION_FRACTION) + 1
        raise UserError(
            f"the text is too short: {len(text):,} characters, but {seq_length + 1}-character training sequences "
            f"with the last 10% held out need at least {needed:,}; use a longer text or a smaller --seq-length"
        )
    return train_text, val_text


# ---------------------------------------------------------------- training


class EpochReport(keras.callbacks.Callback):
    """Per epoch: wall time, training speed, validation nats and bits per character, and a sample."""

    def __init__(self, chars_per_batch, sample_prompt, sample_length, temperature, top_k, seed):
        super().__init__()
        self.chars_per_batch = chars_per_batch
        self.sample_settings = dict(temperature=temperature, top_k=top_k, seed=seed)
        self.sample_prompt, self.sample_length = sample_prompt, sample_length
        self.epochs, self.samples = [], []

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        self.sampler = generation.CharSampler(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        # Speed is timed from the end of each epoch's first batch: the first one includes compilation.
        if self.batches == 0:
            self.timed_from = time.perf_counter()
        self.batches += 1
        self.last_batch_ended = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        training_seconds = max(self.last_batch_ended - self.timed_from, 1e-9)
        val_loss = float(logs["val_loss"])
        row = {
            "epoch": epoch + 1,
            "wall_seconds": round(time.perf_counter() - self.started, 2),
            "train_loss_nats": float(logs["loss"]),
            "val_loss_nats": val_loss,
            "val_bits_per_char": val_loss / math.log(2),
            "train_chars_per_second": (self.batches - 1) * self.chars_per_batch / training_seconds
            if self.batches > 1
            else None,
        }
        self.epochs.append(row)
        text = self.sampler.generate(
            self.sample_prompt, self.sample_length, **self.sample_settings
        )[0]
        self.samples.append((row, text))
        speed = (
            f"{row['train_chars_per_second']:,.0f} chars/s"
            if row["train_chars_per_second"]
            else "(one batch: no speed)"
        )
        print(
            f"epoch {row['epoch']:3d}  {row['wall_seconds'] / 60:5.2f} min  train {row['train_loss_nats']:.3f}  "
            f"validation {val_loss:.3f} nats/char = {row['val_bits_per_char']:.3f} bits/char  "
            f"{speed}   | {(self.sample_prompt + text)[:60]!r}",
            flush=True,
        )


def mean_speed(epochs):
    speeds = [row["train_chars_per_second"] for row in epochs if row["train_chars_per_second"]]
    return float(np.mean(speeds)) if speeds else None


def build_model(args, vocabulary):
    model = generation.build_char_model(
        vocabulary,
        cell=args.cell,
        units=tuple(args.units),
        embedding_dim=args.embedding_dim,
        dropout=args.dropout,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        # XLA compiles each training step into one fused program. On a GPU, "auto" lets Keras
        # pick the cuDNN kernels instead, which XLA cannot compile.
        jit_compile="auto" if tf.config.list_physical_devices("GPU") else True,
    )
    return model


def plot_losses(epochs, baselines, path):
    figure, axis = plt.subplots(figsize=(7, 4))
    minutes = [row["wall_seconds"] / 60 for row in epochs]
    axis.plot(
        minutes,
        [row["train_loss_nats"] for row in epochs],
        marker="o",
        label="training (running mean over the epoch)",
    )
    axis.plot(
        minutes,
        [row["val_loss_nats"] for row in epochs],
        marker="o",
        label="validation (held-out last 10%)",
    )
    bigram = baselines["bigram (previous character)"]
    axis.axhline(bigram, color="0.5", linestyle="--", label=f"bigram baseline ({bigram:.2f})")
    axis.set(
        xlabel="wall-clock time (minutes)",
        ylabel="loss (nats per character)",
        title="Character model: loss against training time",
    )
    axis.legend()
    axis.grid(alpha=0.3)
    return save_figure(figure, path)


# ---------------------------------------------------------------- generation


def generate_and_print(sampler, args):
    unknown = sampler.vocabulary.unknown_characters(args.prompt)
    if unknown:
        raise UserError(
            f"--prompt has characters the model never saw in training: {', '.join(map(repr, unknown))}; remove or replace them"
        )
    started = time.perf_counter()
    texts = sampler.generate(
        args.prompt,
        args.generate,
        samples=args.samples,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
    )
    seconds = time.perf_counter() - started
    for number, text in enumerate(texts, start=1):
        heading = f"sample {number} of {len(texts)}" if len(texts) > 1 else "sample"
        print(
            f"\n----- {heading} (temperature {args.temperature}"
            + (f", top-k {args.top_k}" if args.top_k else "")
            + ") -----"
        )
        print(args.prompt + text)
    print(f"\n({len(texts) * args.generate:,} characters in {seconds:.2f} s, compilation included)")
    return texts


def generate_from_saved_run(args):
    model = load_model_from_dir(args.load, app="textgen")
    try:
        generation.vocabulary_of(model)
    except ValueError:
        raise UserError(
            f"--load {args.load}: model.keras is not a character model from textgen.py (it has no vocabulary)"
        ) from None
    generate_and_print(generation.CharSampler(model), args)
    return 0


# ---------------------------------------------------------------- main


@report_user_errors
def main(argv=None):
    args = parse_args(argv)
    if not args.load:  # a new run: can it be saved? Check before training.
        args.out = prepare_out(args.out, "textgen", args.overwrite)
    check_args(args)
    if args.load:
        return generate_from_saved_run(args)
    if args.quick:  # a smoke test: a slice of the text, a small model, a few short epochs
        shrink_for_quick(
            args,
            argv,
            units=[64],
            embedding_dim=16,
            seq_length=50,
            learning_rate=1e-2,
            batch_size=32,
            steps_per_epoch=15,
            epochs=2,
            val_chars=5000,
            generate=200,
            minutes=0.5,
        )
    common.set_seed(args.seed)

    text, source = load_text(args)
    if args.quick:
        text = text[:100_000]
    train_text, val_text = split_text(text, args.seq_length)
    vocabulary = generation.CharacterVocabulary.from_text(train_text)  # training text only
    train_ids, val_ids = (
        vocabulary.encode(train_text),
        vocabulary.encode(val_text)[: args.val_chars + 1],
    )
    unknown_in_val = int((val_ids == generation.UNKNOWN_ID).sum())
    if len(val_ids) < args.seq_length + 1:
        raise UserError(
            f"--val-chars {args.val_chars} is shorter than one sequence of --seq-length {args.seq_length}"
        )
    prompt_unknown = vocabulary.unknown_characters(args.prompt)
    if prompt_unknown:
        raise UserError(
            f"--prompt has characters the training text does not contain: {', '.join(map(repr, prompt_unknown))}; remove or replace them"
        )

    train = generation.sequence_dataset(train_ids, args.seq_length, args.batch_size, seed=args.seed)
    validation = generation.sequence_dataset(val_ids, args.seq_length, args.batch_size)
    batch_size = train.element_spec[0].shape[0]  # smaller than --batch-size for a short text
    model = build_model(args, vocabulary)
    baselines = generation.ngram_baselines(train_ids, val_ids, vocabulary.size)

    print(
        f"Data: {source}: {len(text):,} characters, {len(vocabulary.characters)} distinct; "
        f"training on the first {len(train_text):,}, validating on {len(val_ids) - 1:,} of the last {len(val_text):,}"
        + (f" ({unknown_in_val} of them unknown to the vocabulary)" if unknown_in_val else "")
    )
    model_name = f"{args.cell.upper()}-{'-'.join(map(str, args.units))}"
    print(
        f"Training {model_name} ({model.count_params():,} weights), batches of {batch_size} x {args.seq_length} characters, "
        f"{args.steps_per_epoch} batches per epoch, for up to {args.minutes:g} minutes or {args.epochs} epochs ..."
    )
    report = EpochReport(
        batch_size * args.seq_length, args.prompt, 200, args.temperature, args.top_k, args.seed
    )
    train_started = time.perf_counter()
    # Early stopping restores the best epoch's weights; the time budget ends a run on schedule.
    common.fit(
        model,
        train,
        validation,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,  # the training stream repeats forever
        patience=3,
        max_seconds=60 * args.minutes,
        callbacks=[
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=1, min_lr=1e-4
            ),
            report,
        ],
    )
    train_seconds = time.perf_counter() - train_started
    best = min(report.epochs, key=lambda row: row["val_loss_nats"])

    rows = {
        name: {"nats/char": value, "bits/char": value / math.log(2)}
        for name, value in baselines.items()
    }
    rows[f"{model_name} (best epoch, {best['epoch']})"] = {
        "nats/char": best["val_loss_nats"],
        "bits/char": best["val_bits_per_char"],
    }
    print()
    common.print_table(
        rows,
        title=f"Validation loss on {len(val_ids) - 1:,} held-out characters (lower is better):",
        digits=3,
    )
    texts = generate_and_print(report.sampler, args)  # the best epoch's weights, restored

    # Everything is computed; only now touch the output folder.
    with run_folder(args.out, args.overwrite) as out:  # saved whole, or not at all
        save_model_atomically(model, out / "model.keras")
        metrics = {
            "data": source,
            "characters": {
                "total": len(text),
                "train": len(train_text),
                "validation_scored": len(val_ids) - 1,
                "vocabulary": len(vocabulary.characters),
            },
            "model": {
                "cell": args.cell,
                "units": args.units,
                "embedding_dim": args.embedding_dim,
                "dropout": args.dropout,
                "weights": model.count_params(),
            },
            "training": {
                "batch_size": batch_size,
                "seq_length": args.seq_length,
                "steps_per_epoch": args.steps_per_epoch,
                "learning_rate": args.learning_rate,
                "seconds": train_seconds,
                "chars_per_second": mean_speed(report.epochs),
            },
            "epochs": report.epochs,
            "best_epoch": best["epoch"],
            "val_loss_nats": best["val_loss_nats"],
            "val_bits_per_char": best["val_bits_per_char"],
            "baselines_nats": baselines,
            "seed": args.seed,
        }
        write_json(out / "metrics.json", metrics)
        write_json(
            out / "config.json", {"app": "textgen", "seed": args.seed}
        )  # which app made the run
        plot_losses(report.epochs, baselines, out / "loss.png")
        with open(out / "samples.txt", "w", encoding="utf-8") as handle:
            for row, sample in report.samples:
                handle.write(
                    f"===== after epoch {row['epoch']} ({row['wall_seconds'] / 60:.2f} min, validation {row['val_loss_nats']:.3f} nats/char) =====\n"
                )
                handle.write(args.prompt + sample + "\n\n")
            handle.write(f"===== final, best weights (epoch {best['epoch']}) =====\n")
            handle.write("\n\n".join(args.prompt + sample for sample in texts) + "\n")
    print(f"\nSaved model.keras, metrics.json, loss.png and samples.txt in {args.out}/")
    print(
        f"Generate more: python apps/textgen.py --load {args.out} --generate 1000 --temperature 0.8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
