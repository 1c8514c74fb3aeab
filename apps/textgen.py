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
(nats / ln 2), and the best epoch's weights are kept. The table at the end
puts the model beside two predictors that only count characters of the
training text: character frequencies (unigram) and "which character follows
this one" (bigram).

Why it is fast: small batches (32 x 50 characters, streamed by tf.data) make
more weight updates per minute on a CPU, and each training step runs the way
that is fastest on this CPU for this model (--train-step auto times three
ways once and remembers: one XLA-compiled program, Keras' default graph, or
bfloat16 arithmetic with float32 weights; the winner depends on the processor
and the model, README). The learning rate halves whenever validation stalls
(--schedule plateau: a seed repeats exactly for the same number of epochs) or
falls along a cosine to a tenth by the end of --minutes (--schedule cosine,
by the clock). --dropout is locked dropout (one mask per sequence), so the
GRU and LSTM layers keep their cuDNN defaults on a GPU. Generation reads the
prompt once, then carries each layer's state forward, one compiled step per
character, instead of re-running the model over a sliding window
(common/tasks/charlm.py). The README has the measurements (why a GRU for 2
minutes, an LSTM-512 for 10), bench/textgen.py the curves.

Ctrl-C during training saves the best epoch so far as a complete run (Ctrl-C
again while saving: nothing is saved). Prompt characters that never occur in
the training text are an error that names them. In --prompt, \\n is a new line.
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
from common.cli import RunOptions, UserError, option, prepare_out, report_user_errors
from common.cli import dropout_rate, positive_float, positive_int, positive_int_up_to
from common.cli import refuse_missing, refuse_unused_with_load
from common.cli import load_model_from_dir, save_run, shrink_for_quick
from common.cli import save_model_atomically, start_distribution, write_json
from common.data.files import download, read_text

# TensorFlow loads on first use: --help and option errors come first.
keras = common.import_later("keras")
steps = common.import_later("common.models.steps")
generation = common.import_later("common.tasks.charlm")

REPO = Path(__file__).resolve().parent.parent
BUNDLED_TEXT = REPO / "data" / "shakespeare.txt.gz"
CACHE = Path.home() / ".cache" / "rnn-workshop" / "textgen"  # --url downloads


@dataclass(frozen=True)
class Config(RunOptions):
    """A textgen run's options, checked, after ``--quick``: what the run was asked to do."""

    APP = "textgen"
    # With --load the saved run keeps its settings; these options say how to generate.
    WITH_LOAD = {"generate", "prompt", "temperature", "top_k", "samples", "seed"}
    GROUPS = {
        "data": "data (default: Shakespeare's plays, bundled in data/shakespeare.txt.gz)",
        "model": "model",
        "training": "training (an 'epoch' is --steps-per-epoch batches, not a pass over the text)",
        "generation": "generation",
    }

    epochs: int = option(100, quick=2)  # this app's own defaults for the shared options
    batch_size: int = option(32, quick=32)
    text: Path | None = option(
        None,
        "UTF-8 text to train on, at most 40 MB",  # generation.MAX_TEXT_BYTES
        group="data",
        type=Path,
        metavar="PATH",
        exclusive="source",
    )
    url: str | None = option(
        None,
        "download a UTF-8 text (at most 40 MB) and train on it (cached)",
        group="data",
        exclusive="source",
    )
    cache_dir: Path = option(
        CACHE, "where --url downloads and training-step timings are kept", group="data", type=Path
    )
    cell: str = option(
        "gru", "recurrent cell (gru is the better one for 2 minutes)", choices=["gru", "lstm"]
    )
    units: tuple = option(
        (256,), "units per layer; several stack layers", type=positive_int_up_to(4096), quick=(64,)
    )
    embedding_dim: int = option(
        64, "size of each character's learned vector", type=positive_int_up_to(4096), quick=16
    )
    dropout: float = option(
        0.0, "locked dropout between layers (one mask per sequence), in [0, 1)", type=dropout_rate
    )
    minutes: float = option(
        2.0, "wall-clock training budget", group="training", type=positive_float, quick=0.5
    )
    seq_length: int = option(
        50, "characters per training sequence", group="training", type=positive_int, quick=50
    )
    steps_per_epoch: int = option(
        200, "batches between validations", group="training", type=positive_int, quick=15
    )
    val_chars: int = option(
        100_000, "held-out characters to score", group="training", type=positive_int, quick=5000
    )
    learning_rate: float = option(
        5e-3, "Adam learning rate at the start", group="training", type=positive_float, quick=1e-2
    )
    train_step: str = option(
        "auto",
        "how each training step runs: xla (one compiled program), plain (Keras' default "
        "graph), bf16 (bfloat16 arithmetic, on CPUs that have it); auto: time each for a "
        "few seconds on this CPU, once, and take the fastest",
        group="training",
        choices=["auto", "xla", "plain", "bf16"],
        quick="xla",
    )
    schedule: str = option(
        "plateau",
        "plateau: halve the learning rate when validation stalls; cosine: lower it "
        "along a cosine to a tenth by the end of --minutes",
        group="training",
        choices=["plateau", "cosine"],
    )
    load: Path | None = option(
        None, "no training: sample DIR/model.keras", group="generation", type=Path, metavar="DIR"
    )
    generate: int = option(
        500, "characters to generate", group="generation", type=positive_int, metavar="N", quick=200
    )
    prompt: str = option("Romeo.\n", "text to start from; \\n is a new line", group="generation")
    temperature: float = option(
        0.8, "above 0; below 1 is safer, above 1 wilder", group="generation", type=positive_float
    )
    top_k: int = option(
        0, "sample among the K likeliest; 0: all, 1: greedy", group="generation", type=int
    )
    samples: int = option(
        1, "continuations, as one batch", group="generation", type=positive_int_up_to(1024)
    )

    @property
    def model_name(self):
        return f"{self.cell.upper()}-{'-'.join(map(str, self.units))}"


def read_config(argv):
    """Parse and check the options before any work; ``--quick`` shrinks what was not typed."""
    parser = Config.parser(__doc__)
    args = parser.parse_args(argv)
    if args.load:
        refuse_unused_with_load(parser, argv, Config.WITH_LOAD)
    if args.top_k < 0:
        raise UserError(f"--top-k must be 0 (no limit) or more, got {args.top_k}")
    if args.train_step == "xla" and args.distribute != "none":
        raise UserError("--train-step xla cannot reach the other replicas' weights; drop it")
    if args.train_step == "bf16" and args.mixed_precision:
        raise UserError("--train-step bf16 and --mixed-precision (float16) exclude each other")
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
        if args.val_chars < args.seq_length:
            raise UserError(
                f"--val-chars {args.val_chars} is shorter than one sequence of --seq-length "
                f"{args.seq_length}"
            )
    refuse_missing("--text", args.text)
    refuse_missing("--load", args.load, "folder")
    return Config.from_args(args)


@report_user_errors
def main(argv=None):
    config = read_config(argv)
    if config.load:
        return generate_from_saved_run(config)
    distribution = start_distribution(config)  # before TensorFlow runs anything
    corpus = load_data(config)
    config = prompt_for(corpus, config)
    config = choose_training_step(corpus.vocabulary, config, distribution)  # before the seed
    common.set_seed(config.seed)
    with distribution.scope():  # the weights are mirrored on every replica
        model = build_model(corpus.vocabulary, config)
    trained = train(model, corpus, config, distribution)
    baselines, texts = report(corpus, trained, config)
    # All computed: only now touch the output folder, which gets the run whole or not at all.
    if save_run(
        config, distribution, save, corpus, trained, baselines, texts, config, distribution
    ):
        print(f"\nSaved model.keras, metrics.json, loss.png and samples.txt in {config.out}/")
        print(f"Generate more: python apps/textgen.py --load {config.out} --generate 1000")
    return 0


# ---------------------------------------------------------------- 1. the data


def load_data(config):
    """Read the text, hold out its last 10%, and encode it with the training part's vocabulary."""
    text, source = load_text(config)
    if config.quick:
        text = text[:100_000]
    try:
        corpus = generation.Corpus.from_text(text, config.seq_length, config.val_chars, source)
    except ValueError as error:
        raise UserError(f"{error}; use a longer text or a smaller --seq-length") from None
    unknown = int((corpus.val_ids == generation.UNKNOWN_ID).sum())
    print(
        f"Data: {corpus.source}: {len(text):,} characters, "
        f"{len(corpus.vocabulary.characters)} distinct; training on the first "
        f"{len(corpus.train_text):,}, validating on {len(corpus.val_ids) - 1:,} of the last "
        f"{len(corpus.held_out):,}"
        + (f" ({unknown} of them unknown to the vocabulary)" if unknown else "")
    )
    return corpus


def load_text(config):
    """The text to train on and where it came from: ``--url``, ``--text`` or the bundled plays."""
    if config.url:
        name = f"--url {config.url}"
        try:
            path = download(config.url, config.cache_dir, name=name)
        except ValueError as error:
            raise UserError(
                f"{error}. Use --text with a local file, or no option for the bundled Shakespeare"
            ) from None
        name, source = f"{name}: the download, cached as {path}", config.url
    elif config.text:
        path = config.text
        name, source = f"--text {path}", str(path)
    else:
        path, name = BUNDLED_TEXT, str(BUNDLED_TEXT)
        source = "Shakespeare's plays (data/shakespeare.txt.gz)"
    try:  # the size first: a 300 MB file would fill memory before training starts
        generation.check_text_size(path, name)
        text = read_text(path, name=name)
    except ValueError as error:
        raise UserError(str(error)) from None
    if not text.strip():
        raise UserError(
            f"{name}: the file is empty"
            if not text
            else f"{name}: holds only spaces and line breaks"
        )
    return text, source


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


# ---------------------------------------------------------------- 2. the model


def model_options(config):
    return dict(
        cell=config.cell,
        units=config.units,
        embedding_dim=config.embedding_dim,
        dropout=config.dropout,
    )


def choose_training_step(vocabulary, config, distribution):
    """XLA, Keras' default graph or bfloat16: the fastest on this CPU, unless --train-step says."""
    if distribution.kind != "none" and config.train_step in ("auto", "xla"):
        # XLA cannot reach the other replicas' weights (typed, it was refused; this xla is
        # --quick's): Keras' own step under the strategy, no timing on one device.
        print("Training step: Keras' choice under a distribution strategy")
        return dataclasses.replace(config, train_step="auto")
    step, line = generation.choose_training_step(
        config.train_step,
        vocabulary,
        batch_size=config.batch_size,
        seq_length=config.seq_length,
        learning_rate=config.learning_rate,
        cache_file=config.cache_dir / "train_steps.json",
        **model_options(config),
    )
    print(line)
    return dataclasses.replace(config, train_step=step)


def build_model(vocabulary, config):
    """Embedding, GRU or LSTM layers and a dense head of next-character logits, compiled."""
    with steps.dtype_policy(config.train_step):
        model = generation.build_char_model(vocabulary, **model_options(config))
    # Adam with clipped gradients on the cross-entropy of the next character.
    jit_compile = (
        generation.use_xla() if config.train_step == "auto" else config.train_step == "xla"
    )
    return generation.compile_char_model(model, config.learning_rate, jit_compile)


# ---------------------------------------------------------------- 3. training


@dataclass
class Trained:
    """The model with its best epoch's weights, and each epoch's record."""

    model: "keras.Model"
    epochs: "generation.EpochReport"  # .epochs: a row per epoch; .samples; .best; .sampler
    batch_size: int
    seconds: float
    interrupted: bool  # Ctrl-C ended training; the best epoch so far was kept


def train(model, corpus, config, distribution):
    """Train until early stopping, the time budget, ``config.epochs`` or Ctrl-C; keep the best epoch."""
    global_batch = distribution.global_batch(config.batch_size)
    train_batches = generation.sequence_dataset(
        corpus.train_ids, config.seq_length, global_batch, seed=config.seed
    )
    validation = generation.sequence_dataset(corpus.val_ids, config.seq_length, global_batch)
    batch_size = train_batches.element_spec[0].shape[0]  # below --batch-size for a short text
    print(distribution.describe(config.batch_size))
    print(
        f"Training {config.model_name} ({model.count_params():,} weights), batches of "
        f"{batch_size} x {config.seq_length} characters, {config.steps_per_epoch} batches per "
        f"epoch, for up to {config.minutes:g} minutes or {config.epochs} epochs (Ctrl-C stops "
        "and keeps the best epoch) ..."
    )
    sampling = dict(temperature=config.temperature, top_k=config.top_k, seed=config.seed)
    epochs = generation.EpochReport(batch_size * config.seq_length, config.prompt, 200, **sampling)
    schedule = generation.learning_rate_schedule(
        config.schedule, config.learning_rate, 60 * config.minutes
    )
    started, interrupted = time.perf_counter(), False
    try:  # early stopping restores the best epoch's weights; the time budget ends on schedule
        history = common.fit(
            model,
            train_batches,
            validation,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,  # the training stream repeats forever
            patience=3,
            max_seconds=60 * config.minutes,
            # A bar in a terminal; in a log, EpochReport's own line per epoch is the progress.
            verbose=1 if config.progress == 1 else 0,
            distribution=distribution,
            callbacks=[schedule, epochs],
        )
    except KeyboardInterrupt:
        if epochs.best_weights is None or distribution.workers > 1:
            raise  # nothing worth saving yet; or a cluster, which resumes from its checkpoints
        model.set_weights(epochs.best_weights)
        interrupted = True
        print(
            f"\nInterrupted during epoch {len(epochs.epochs) + 1}: keeping epoch "
            f"{epochs.best['epoch']}, the best so far, and saving it as a complete run "
            "(Ctrl-C again: nothing is saved)",
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
    if config.train_step == "bf16":  # sample and save in float32: the same weights, any machine
        model = steps.in_float32(model)
        epochs.sampler = generation.CharSampler(model)
    return Trained(model, epochs, batch_size, seconds, interrupted)


# ---------------------------------------------------------------- 4. beside the baselines


def report(corpus, trained, config):
    """Put the best epoch beside the n-gram baselines, then generate from it."""
    baselines = generation.ngram_baselines(corpus.train_ids, corpus.val_ids, corpus.vocabulary.size)
    generation.print_validation_table(
        baselines, config.model_name, trained.epochs.best, len(corpus.val_ids) - 1
    )
    texts = generate_and_print(trained.epochs.sampler, config)  # with the best epoch's weights
    return baselines, texts


def generate_and_print(sampler, config):
    unknown = sampler.vocabulary.unknown_characters(config.prompt)
    if unknown:
        raise UserError(
            "--prompt has characters the model never saw in training: "
            f"{', '.join(map(repr, unknown))}; remove or replace them"
        )
    return generation.print_samples(
        sampler,
        config.prompt,
        config.generate,
        samples=config.samples,
        temperature=config.temperature,
        top_k=config.top_k,
        seed=config.seed,
    )


# ---------------------------------------------------------------- 5. save


def save(out, corpus, trained, baselines, texts, config, distribution):
    """Write the model, the metrics, the loss plot and every sample into ``out``."""
    save_model_atomically(trained.model, out / "model.keras")
    model = model_options(config)
    model["weights"] = trained.model.count_params()
    options = ("seq_length", "steps_per_epoch", "learning_rate", "schedule", "train_step")
    training = {
        "batch_size": trained.batch_size,
        **{key: getattr(config, key) for key in options},
        "seconds": trained.seconds,
        "chars_per_second": generation.mean_speed(trained.epochs.epochs),
        "interrupted": trained.interrupted,
    }
    metrics = generation.run_metrics(corpus, trained.epochs, baselines, model, training)
    metrics.update(seed=config.seed, trained_on=distribution.summary(config.batch_size))
    write_json(out / "metrics.json", metrics, generation.METRIC_NOTES)
    write_json(out / "config.json", {"app": "textgen", "seed": config.seed})  # who made it
    generation.plot_losses(trained.epochs.epochs, baselines, out / "loss.png")
    generation.write_samples(
        out / "samples.txt", config.prompt, trained.epochs.samples, texts, metrics["best_epoch"]
    )


# ---------------------------------------------------------------- --load: generate only


def generate_from_saved_run(config):
    model = load_model_from_dir(config.load, app="textgen")
    try:
        generation.vocabulary_of(model)
    except ValueError:
        raise UserError(
            f"--load {config.load}: model.keras is not a character model from textgen.py "
            "(it has no vocabulary)"
        ) from None
    generate_and_print(generation.CharSampler(model), config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
