"""Train a character-level language model and generate text with it, fast on a CPU.

    python apps/textgen.py                              # bundled Shakespeare, offline, about 2 minutes
    python apps/textgen.py --minutes 10 --units 512 --cell lstm   # longer and bigger: lower loss
    python apps/textgen.py --text my_novel.txt --minutes 5
    python apps/textgen.py --url https://www.gutenberg.org/cache/epub/1342/pg1342.txt   # cached
    python apps/textgen.py --load runs/textgen/<run>/ --generate 500 --prompt "Romeo." --temperature 0.8 --top-k 20 --samples 3

How it works: the text becomes a sequence of character ids; the model
(embedding, GRU or LSTM layers, dense logits) reads a contiguous slice of it
and predicts, at every position, the next character (aligned many-to-many).
The last 10% of the text is held out: validation loss is measured there, in
nats per character (the cross-entropy Keras reports) and bits per character
(nats / ln 2), and the weights of the best epoch are kept. The table at the
end puts the model beside two predictors that need no training: character
frequencies (unigram) and "which character follows this one" counts (bigram),
both counted on the training text.

Why it is fast: training runs as one XLA-compiled step (jit_compile) on
batches streamed by tf.data. On a CPU, batches of 32 sequences of 50
characters train at about the same characters per second as 64 x 100 but make
four times as many weight updates, so the loss falls faster per minute (the
README has the measurement). The LSTM and GRU layers keep their default
settings, so a GPU runs them with cuDNN.
Generation reads the prompt once and then carries each layer's recurrent
state forward, one compiled step per new character, instead of re-running the
model over a sliding window for every character (see common/tasks/charlm.py and
bench/textgen.py).

The learning rate is halved whenever validation stalls (--schedule plateau,
the default: a seed repeats exactly for the same number of epochs); --schedule
cosine lowers it along a cosine to a tenth by the end of --minutes, following
the clock. --dropout is locked dropout between layers (one mask per sequence,
reused at every step), so the recurrent layers keep their cuDNN defaults and
the CPU step stays as fast as without.

Measured on 2 CPU cores (AMD EPYC, no GPU, 2026-12-05), validation nats per
character: the defaults (GRU-256, 2 minutes) 1.59 and 1.57 over two seeds,
where LSTM-256 scored 1.64 and 1.65 (a GRU step is cheaper, so it makes more
weight updates in the time); --minutes 10 --units 512 --cell lstm 1.44. The
README has the tables, bench/textgen.py the curves.

Ctrl-C during training stops it and saves the best epoch so far as a
complete run (Ctrl-C again while saving: nothing is saved). Prompt characters
that never occur in the training text are an error that names them (they are
not dropped). In --prompt, \\n stands for a new line.
"""

import dataclasses
import gzip
import hashlib
import math
import os
import signal
import sys
import time
import urllib.error
import urllib.request
import zlib
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
import common.tasks.charlm as generation
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
from common.report.plots import plt, save_figure

import keras
import numpy as np
import tensorflow as tf

REPO = Path(__file__).resolve().parent.parent
BUNDLED_TEXT = REPO / "data" / "shakespeare.txt.gz"
VALIDATION_FRACTION = 0.1  # the last 10% of the text


@dataclass(frozen=True)
class Config(RunOptions):
    """A textgen run's options, checked, after ``--quick``: what the run was asked to do."""

    APP = "textgen"
    GROUPS = {
        "data": "data (default: Shakespeare's plays, bundled in data/shakespeare.txt.gz)",
        "model": "model",
        "training": "training (an 'epoch' here is --steps-per-epoch batches, not a pass over "
        "the text)",
        "generation": "generation",
    }

    epochs: int = option(100, quick=2)  # this app's own defaults for the shared options
    batch_size: int = option(32, quick=32)
    text: Path | None = option(
        None, "train on this UTF-8 text file",
        group="data", type=Path, metavar="PATH", exclusive="source",
    )  # fmt: skip
    url: str | None = option(
        None, "download a UTF-8 text file and train on it (needs the network once; cached)",
        group="data", exclusive="source",
    )  # fmt: skip
    cache_dir: Path = option(
        Path.home() / ".cache" / "rnn-workshop" / "textgen",
        "where --url downloads are kept", group="data", type=Path,
    )  # fmt: skip
    cell: str = option(
        "gru", "recurrent cell; both run on cuDNN on a GPU (default: gru, the better one for "
        "2 minutes; lstm for --minutes 10 --units 512)", choices=["gru", "lstm"],
    )  # fmt: skip
    units: tuple = option(
        (256,), "units per recurrent layer; several numbers stack layers, e.g. --units 256 256",
        type=positive_int_up_to(4096), quick=(64,),
    )  # fmt: skip
    embedding_dim: int = option(
        64, "size of each character's learned vector", type=positive_int_up_to(4096), quick=16
    )
    dropout: float = option(
        0.0, "locked dropout, one mask per sequence, after the embedding, between layers and "
        "before the head, in [0, 1)", type=dropout_rate,
    )  # fmt: skip
    minutes: float = option(
        2.0, "wall-clock training budget; stops after the batch that exceeds it",
        group="training", type=positive_float, quick=0.5,
    )  # fmt: skip
    seq_length: int = option(
        50, "characters per training sequence", group="training", type=positive_int, quick=50
    )
    steps_per_epoch: int = option(
        200, "batches between validations and samples",
        group="training", type=positive_int, quick=15,
    )  # fmt: skip
    val_chars: int = option(
        100_000, "validation characters scored each epoch, from the start of the held-out "
        "last 10%", group="training", type=positive_int, quick=5000,
    )  # fmt: skip
    learning_rate: float = option(
        5e-3, "Adam learning rate at the start", group="training", type=positive_float, quick=1e-2
    )
    schedule: str = option(
        "plateau", "plateau: halve the learning rate whenever validation loss stops falling; "
        "cosine: lower it along a cosine to a tenth by the end of --minutes, following the clock",
        group="training", choices=["plateau", "cosine"],
    )  # fmt: skip
    load: Path | None = option(
        None, "skip training: generate with the model.keras saved in DIR",
        group="generation", type=Path, metavar="DIR",
    )  # fmt: skip
    generate: int = option(
        500, "characters to generate after the prompt",
        group="generation", type=positive_int, metavar="N", quick=200,
    )  # fmt: skip
    prompt: str = option(
        "Romeo.\n", "text to start from; \\n is a new line; unknown characters are an error",
        group="generation",
    )  # fmt: skip
    temperature: float = option(
        0.8, "above 0; below 1 is safer and more repetitive, above 1 wilder",
        group="generation", type=positive_float,
    )  # fmt: skip
    top_k: int = option(
        0, "sample only among the K most likely characters; 0 for all, 1 is greedy",
        group="generation", type=int,
    )  # fmt: skip
    samples: int = option(
        1, "continuations to generate, as one batch",
        group="generation", type=positive_int_up_to(1024),
    )  # fmt: skip

    @property
    def model_name(self):
        return f"{self.cell.upper()}-{'-'.join(map(str, self.units))}"


def read_config(argv):
    """Parse and check the options before any work; ``--quick`` shrinks what was not typed."""
    args = Config.parser(__doc__).parse_args(argv)
    if args.top_k < 0:
        raise UserError(f"--top-k must be 0 (no limit) or more, got {args.top_k}")
    if args.schedule == "cosine" and args.distribute == "multiworker":
        raise UserError(
            "--schedule cosine follows each machine's own clock, so the workers' learning rates "
            "would drift apart; use --schedule plateau with --distribute multiworker"
        )
    args.prompt = args.prompt.replace("\\n", "\n")
    if not args.prompt:
        raise UserError("--prompt must have at least one character")
    if not args.load:  # a new run: can it be saved? Check before training.
        args.out = prepare_out(args.out, "textgen", args.overwrite)
        if args.quick:  # a smoke test: a slice of the text, a small model, a few short epochs
            shrink_for_quick(args, argv, **Config.quick_values())
    return Config.from_args(args)


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
        except (OSError, EOFError, zlib.error):  # truncated, not gzip, or a damaged body
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


def load_text(config):
    if config.url:
        return download_text(config.url, config.cache_dir), config.url
    if config.text:
        return read_text_file(config.text), str(config.text)
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
        self.best_weights = None  # kept here too: Ctrl-C skips EarlyStopping's restore

    def add_earlier(self, history):
        """Rows for the epochs a resumed multi-worker run trained before it stopped (losses only)."""
        earlier = len(history["loss"]) - len(self.epochs)
        self.epochs[:0] = [
            {
                "epoch": epoch + 1,
                "wall_seconds": math.nan,  # timed by the run that was stopped
                "train_loss_nats": history["loss"][epoch],
                "val_loss_nats": history["val_loss"][epoch],
                "val_bits_per_char": history["val_loss"][epoch] / math.log(2),
                "learning_rate": math.nan,  # not recorded by the run that was stopped
                "train_chars_per_second": math.nan,
            }
            for epoch in range(earlier)
        ]

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
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "train_chars_per_second": (self.batches - 1) * self.chars_per_batch / training_seconds
            if self.batches > 1
            else math.nan,  # one batch: the first is not timed (it includes compilation)
        }
        finite = [
            old["val_loss_nats"] for old in self.epochs if math.isfinite(old["val_loss_nats"])
        ]
        if math.isfinite(val_loss) and (not finite or val_loss < min(finite)):
            self.best_weights = self.model.get_weights()  # never a diverged (NaN) epoch
        self.epochs.append(row)
        text = self.sampler.generate(
            self.sample_prompt, self.sample_length, **self.sample_settings
        )[0]
        self.samples.append((row, text))
        speed = (
            f"{row['train_chars_per_second']:,.0f} chars/s"
            if math.isfinite(row["train_chars_per_second"])
            else "(one batch: no speed)"
        )
        print(
            f"epoch {row['epoch']:3d}  {row['wall_seconds'] / 60:5.2f} min  train {row['train_loss_nats']:.3f}  "
            f"validation {val_loss:.3f} nats/char = {row['val_bits_per_char']:.3f} bits/char  "
            f"{speed}   | {(self.sample_prompt + text)[:60]!r}",
            flush=True,
        )


def mean_speed(epochs):
    speeds = [row["train_chars_per_second"] for row in epochs]
    speeds = [speed for speed in speeds if math.isfinite(speed)]
    return float(np.mean(speeds)) if speeds else math.nan


def build_model(config, vocabulary):
    model = generation.build_char_model(
        vocabulary,
        cell=config.cell,
        units=config.units,
        embedding_dim=config.embedding_dim,
        dropout=config.dropout,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=use_xla(),
    )
    return model


def learning_rate_schedule(config):
    """Halving on a plateau (repeatable: it reads validation loss, not the clock), or a cosine in time."""
    if config.schedule == "cosine":
        return common.CosineDecayInTime(
            60 * config.minutes, config.learning_rate, final_fraction=0.1
        )
    return keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=0.5, patience=1, min_lr=1e-4
    )


def use_xla():
    """XLA compiles each training step into one fused program: faster on a CPU.

    On a GPU, "auto" lets Keras pick the cuDNN kernels instead, which XLA cannot
    compile; under a distribution strategy XLA cannot reach the other replicas' weights.
    """
    if tf.distribute.has_strategy():
        return False
    return "auto" if tf.config.list_physical_devices("GPU") else True


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


def generate_and_print(sampler, config):
    unknown = sampler.vocabulary.unknown_characters(config.prompt)
    if unknown:
        raise UserError(
            f"--prompt has characters the model never saw in training: {', '.join(map(repr, unknown))}; remove or replace them"
        )
    started = time.perf_counter()
    texts = sampler.generate(
        config.prompt,
        config.generate,
        samples=config.samples,
        temperature=config.temperature,
        top_k=config.top_k,
        seed=config.seed,
    )
    seconds = time.perf_counter() - started
    for number, text in enumerate(texts, start=1):
        heading = f"sample {number} of {len(texts)}" if len(texts) > 1 else "sample"
        print(
            f"\n----- {heading} (temperature {config.temperature}"
            + (f", top-k {config.top_k}" if config.top_k else "")
            + ") -----"
        )
        print(config.prompt + text)
    print(
        f"\n({len(texts) * config.generate:,} characters in {seconds:.2f} s, compilation included)"
    )
    return texts


def generate_from_saved_run(config):
    model = load_model_from_dir(config.load, app="textgen")
    try:
        generation.vocabulary_of(model)
    except ValueError:
        raise UserError(
            f"--load {config.load}: model.keras is not a character model from textgen.py (it has no vocabulary)"
        ) from None
    generate_and_print(generation.CharSampler(model), config)
    return 0


# ---------------------------------------------------------------- the run's four steps


@dataclass
class Corpus:
    """The text, split by position, and its characters as ids of a training-text vocabulary."""

    text: str
    source: str
    train_text: str  # the first 90%
    held_out: str  # the last 10%
    vocabulary: generation.CharacterVocabulary
    train_ids: np.ndarray
    val_ids: np.ndarray  # the scored start of the held-out text, one more id than is scored


def load_data(config):
    """Read the text, split it, and encode it with a vocabulary of the training part only."""
    text, source = load_text(config)
    if config.quick:
        text = text[:100_000]
    train_text, held_out = split_text(text, config.seq_length)
    vocabulary = generation.CharacterVocabulary.from_text(train_text)  # training text only
    train_ids = vocabulary.encode(train_text)
    val_ids = vocabulary.encode(held_out)[: config.val_chars + 1]
    if len(val_ids) < config.seq_length + 1:
        raise UserError(
            f"--val-chars {config.val_chars} is shorter than one sequence of --seq-length "
            f"{config.seq_length}"
        )
    unknown = int((val_ids == generation.UNKNOWN_ID).sum())
    print(
        f"Data: {source}: {len(text):,} characters, {len(vocabulary.characters)} distinct; "
        f"training on the first {len(train_text):,}, validating on {len(val_ids) - 1:,} of the "
        f"last {len(held_out):,}"
        + (f" ({unknown} of them unknown to the vocabulary)" if unknown else "")
    )
    return Corpus(text, source, train_text, held_out, vocabulary, train_ids, val_ids)


def prompt_for(corpus, config):
    """The run's prompt: ``--prompt``, or, when the default does not fit the text, its first line."""
    unknown = corpus.vocabulary.unknown_characters(config.prompt)
    if not unknown:
        return config
    if config.prompt != Config.prompt:  # the user's own prompt: say what is wrong with it
        raise UserError(
            "--prompt has characters the training text does not contain: "
            f"{', '.join(map(repr, unknown))}; remove or replace them"
        )
    start = corpus.train_text.lstrip()[:40].split("\n")[0][:20] or corpus.train_text[:1]
    print(f"--prompt: the default {Config.prompt!r} does not fit this text; using {start!r}")
    return dataclasses.replace(config, prompt=start)


@dataclass
class Trained:
    """The model with its best epoch's weights, and each epoch's record."""

    model: keras.Model
    epochs: EpochReport  # .epochs: one row per epoch; .samples: a sample after each; .sampler
    batch_size: int
    seconds: float
    interrupted: bool  # Ctrl-C ended training; the best epoch so far was kept

    @property
    def best(self):
        return min(self.epochs.epochs, key=lambda row: row["val_loss_nats"])


def train(corpus, config, distribution):
    """Train until early stopping, the time budget, ``config.epochs`` or Ctrl-C; keep the best epoch."""
    common.set_seed(config.seed)
    global_batch = distribution.global_batch(config.batch_size)
    train_batches = generation.sequence_dataset(
        corpus.train_ids, config.seq_length, global_batch, seed=config.seed
    )
    validation = generation.sequence_dataset(corpus.val_ids, config.seq_length, global_batch)
    batch_size = train_batches.element_spec[0].shape[0]  # below --batch-size for a short text
    with distribution.scope():  # the weights are mirrored on every replica
        model = build_model(config, corpus.vocabulary)
    if distribution.kind != "none":
        print(distribution.describe(config.batch_size))
    print(
        f"Training {config.model_name} ({model.count_params():,} weights), batches of "
        f"{batch_size} x {config.seq_length} characters, {config.steps_per_epoch} batches per "
        f"epoch, for up to {config.minutes:g} minutes or {config.epochs} epochs (Ctrl-C stops "
        "and keeps the best epoch) ..."
    )
    epochs = EpochReport(
        batch_size * config.seq_length, config.prompt, 200, config.temperature, config.top_k,
        config.seed,
    )  # fmt: skip
    started, interrupted = time.perf_counter(), False
    try:  # early stopping restores the best epoch's weights; the time budget ends on schedule
        history = common.fit(
            model, train_batches, validation, epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,  # the training stream repeats forever
            patience=3, max_seconds=60 * config.minutes,
            # A bar in a terminal; in a log, EpochReport's own line per epoch is the progress.
            verbose=1 if config.progress == 1 else 0, distribution=distribution,
            callbacks=[learning_rate_schedule(config), epochs],
        )  # fmt: skip
    except KeyboardInterrupt:
        if epochs.best_weights is None or distribution.workers > 1:
            raise  # nothing worth saving yet; or a cluster, which resumes from its checkpoints
        model.set_weights(epochs.best_weights)
        interrupted = True
        best = min(epochs.epochs, key=lambda row: row["val_loss_nats"])
        print(
            f"\nInterrupted during epoch {len(epochs.epochs) + 1}: keeping epoch {best['epoch']}, "
            "the best so far, and saving it as a complete run (Ctrl-C again: nothing is saved)",
            flush=True,
        )
    else:
        if (epoch := common.diverged(history)) is not None:
            raise UserError(
                f"training diverged: the loss stopped being a number in epoch {epoch}; lower "
                f"--learning-rate (it is {config.learning_rate:g})"
            )
        epochs.add_earlier(history.history)
    seconds = time.perf_counter() - started
    if distribution.kind != "none":  # sample and save from a copy on one device
        model = distribution.local_copy(model)
        epochs.sampler = generation.CharSampler(model)
    return Trained(model, epochs, batch_size, seconds, interrupted)


@dataclass
class Report:
    """The validation table beside the n-gram baselines, and the final samples."""

    baselines: dict  # name -> validation nats per character
    texts: list  # the samples generated with the best weights


def report(corpus, trained, config):
    """Put the best epoch beside the unigram and bigram baselines, then generate from it."""
    baselines = generation.ngram_baselines(corpus.train_ids, corpus.val_ids, corpus.vocabulary.size)
    rows = {
        name: {"nats/char": value, "bits/char": value / math.log(2)}
        for name, value in baselines.items()
    }
    best = trained.best
    rows[f"{config.model_name} (best epoch, {best['epoch']})"] = {
        "nats/char": best["val_loss_nats"],
        "bits/char": best["val_bits_per_char"],
    }
    print()
    common.print_table(
        rows,
        title=f"Validation loss on {len(corpus.val_ids) - 1:,} held-out characters (lower is better):",
        digits=3,
    )
    texts = generate_and_print(trained.epochs.sampler, config)  # with the best epoch's weights
    return Report(baselines, texts)


def save(out, corpus, trained, found, config, distribution):
    """Write the model, the metrics, the loss plot and every sample into ``out``."""
    save_model_atomically(trained.model, out / "model.keras")
    best = trained.best
    metrics = {
        "data": corpus.source,
        "characters": {
            "total": len(corpus.text),
            "train": len(corpus.train_text),
            "validation_scored": len(corpus.val_ids) - 1,
            "vocabulary": len(corpus.vocabulary.characters),
        },
        "model": {
            "cell": config.cell,
            "units": list(config.units),
            "embedding_dim": config.embedding_dim,
            "dropout": config.dropout,
            "weights": trained.model.count_params(),
        },
        "training": {
            "batch_size": trained.batch_size,
            "seq_length": config.seq_length,
            "steps_per_epoch": config.steps_per_epoch,
            "learning_rate": config.learning_rate,
            "schedule": config.schedule,
            "seconds": trained.seconds,
            "chars_per_second": mean_speed(trained.epochs.epochs),
            "interrupted": trained.interrupted,
        },
        "epochs": trained.epochs.epochs,
        "best_epoch": best["epoch"],
        "val_loss_nats": best["val_loss_nats"],
        "val_bits_per_char": best["val_bits_per_char"],
        "baselines_nats": found.baselines,
        "seed": config.seed,
        "trained_on": distribution.summary(config.batch_size),
    }
    resumed = "trained before a multi-worker run was restarted and resumed from its checkpoint"
    reasons = {
        "wall_seconds": resumed,
        "learning_rate": resumed,
        "train_chars_per_second": "not timed: the epoch had one batch (the first is not timed), "
        f"or was {resumed}",
        "chars_per_second": "every epoch had one batch, and the first is not timed",
    }
    write_json(out / "metrics.json", metrics, reasons)
    write_json(out / "config.json", {"app": "textgen", "seed": config.seed})  # who made it
    plot_losses(trained.epochs.epochs, found.baselines, out / "loss.png")
    with open(out / "samples.txt", "w", encoding="utf-8") as handle:
        for row, sample in trained.epochs.samples:
            handle.write(
                f"===== after epoch {row['epoch']} ({row['wall_seconds'] / 60:.2f} min, "
                f"validation {row['val_loss_nats']:.3f} nats/char) =====\n"
            )
            handle.write(config.prompt + sample + "\n\n")
        handle.write(f"===== final, best weights (epoch {best['epoch']}) =====\n")
        handle.write("\n\n".join(config.prompt + sample for sample in found.texts) + "\n")


@report_user_errors
def main(argv=None):
    config = read_config(argv)
    if config.load:
        return generate_from_saved_run(config)
    distribution = start_distribution(config)  # before TensorFlow runs anything
    corpus = load_data(config)
    config = prompt_for(corpus, config)
    trained = train(corpus, config, distribution)
    found = report(corpus, trained, config)
    if not distribution.is_chief:  # one run folder per cluster: worker 0 writes it
        return finish_worker(distribution)
    # Everything is computed; only now touch the output folder, which gets the run whole or not at all.
    with run_folder(config.out, config.overwrite) as out:
        save(out, corpus, trained, found, config, distribution)
    distribution.finish()
    print(f"\nSaved model.keras, metrics.json, loss.png and samples.txt in {config.out}/")
    print(
        f"Generate more: python apps/textgen.py --load {config.out} --generate 1000 --temperature 0.8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
