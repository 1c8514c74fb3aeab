"""Translate short sentences between Spanish and English: a GRU encoder-decoder with Bahdanau attention.

    python apps/translate.py                        # Spanish -> English, bundled Tatoeba pairs, about 5 minutes
    python apps/translate.py --direction eng-spa --minutes 15
    python apps/translate.py --data fra.txt --direction fra-eng    # any manythings.org pairs file
    python apps/translate.py --load runs/translate/<run>/ --translate "¿Dónde está la estación?"
    echo "Tengo hambre." | python apps/translate.py --load runs/translate/<run>/ --translate -
    python apps/translate.py --load runs/translate/<run>/ --evaluate more_pairs.tsv

Spanish -> English is the default because everyone in an English-speaking
workshop can judge the output (and English, with few word endings, scores
higher); --direction eng-spa is there for those who read Spanish.

The network (common.tasks.translate): word embeddings -> bidirectional GRU
encoder -> GRU decoder that attends over the encoder's outputs before every
word it writes (Bahdanau et al., 2015) -> softmax over the target words. It
learns with teacher forcing; dropout is chosen on the validation split. The
saved model.keras reads raw text: both vocabularies, fit on training text
only, are inside it. Words are kept as the languages write them (accents,
capitals, ¿ ¡ and punctuation).

The test split holds no source sentence that training saw. The table scores
the network (greedy and beam search) with sacrebleu's BLEU and chrF beside two
pre-neural baselines: word for word with an IBM Model 1 lexicon, and the
translation of the most similar training sentence (TF-IDF retrieval).
attention.png shows where the decoder looked for a few test sentences.
"""

import dataclasses
import json
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
from common.data.files import pair_columns, read_lines

# TensorFlow loads on first use: --help and option errors come first.
mt = common.import_later("common.tasks.translate")


REPO = Path(__file__).resolve().parent.parent
BUNDLED_PAIRS = REPO / "data" / "spa_eng.tsv.xz"
EXAMPLES = 6  # test sentences shown in the report and drawn in attention.png
MIN_PAIRS = 100  # fewer cannot teach a translation, nor fill three splits worth scoring


@dataclass(frozen=True)
class Config(RunOptions):
    """A translation run's options, checked, after ``--quick``: what the run was asked to do."""

    APP = "translate"
    # With --load the saved run keeps its model and direction; these say what to translate.
    WITH_LOAD = {"translate", "evaluate", "beam_width", "length_penalty"}
    GROUPS = {
        "data": "data (default: 103,596 Tatoeba sentence pairs of up to 10 words, bundled)",
        "model": "model",
        "decoding": "decoding",
        "use": "use a saved model",
    }

    epochs: int = option(
        40,
        "most rounds of training, each a quarter pass over the training pairs; --minutes "
        "usually ends training first, and early stopping may",
        group="run",
        type=positive_int,
        quick=2,
    )
    batch_size: int = 64
    direction: str = option(
        "spa-eng",
        "source-target language codes; English must be one side: spa-eng, eng-spa, fra-eng ...",
        group="data",
    )
    data: Path | None = option(
        None,
        "tab-separated pairs, English first (manythings.org's format; a third column is ignored)",
        group="data",
        type=Path,
        metavar="FILE",
    )
    units: int = option(
        64,
        "GRU units per encoder direction (the decoder has twice as many)",
        type=positive_int_up_to(4096),
        quick=16,
    )
    embedding_dim: int = option(
        64, "size of each word vector", type=positive_int_up_to(4096), quick=16
    )
    dropout: tuple = option(
        (0.1, 0.3),
        "dropout rates to try; each trains for a quarter round and the one with the "
        "lowest validation loss goes on",
        type=dropout_rate,
        quick=(0.1,),
    )
    # 4,000 words cover 97% of the test split's English words; the softmax over them costs
    # a third less than over all 8,537 seen twice, and rarer words are copied from the source.
    max_tokens: int = option(
        4000, "most words per language, padding and [UNK] included", type=positive_int
    )
    learning_rate: float = option(
        4e-3, "Adam learning rate, lowered along a cosine", type=positive_float
    )
    minutes: float = option(
        4.0, "training time budget, trials included", group="run", type=positive_float, quick=0.05
    )
    beam_width: int = option(
        4,
        "prefixes kept by beam search (1: greedy only)",
        group="decoding",
        type=positive_int_up_to(64),
    )
    length_penalty: float = option(
        1.0,
        "beam scores are log-probability / length ** this (0: none, favours short output)",
        group="decoding",
        type=float,
    )
    load: Path | None = option(
        None, "skip training: use DIR/model.keras", group="use", type=Path, metavar="DIR"
    )
    translate: tuple | None = option(
        None,
        "with --load: translate each TEXT ('-': one sentence per line from stdin)",
        group="use",
        nargs="+",
        metavar="TEXT",
    )
    evaluate: Path | None = option(
        None, "with --load: score a pairs file", group="use", type=Path, metavar="FILE"
    )

    @property
    def languages(self):
        return mt.language_names(self.direction)


def read_config(argv):
    """Parse and check the options before any work; ``--quick`` shrinks what was not typed."""
    parser = Config.parser(__doc__)
    args = parser.parse_args(argv)
    if args.load:
        refuse_unused_with_load(parser, argv, Config.WITH_LOAD)
    if (args.translate or args.evaluate) and not args.load:
        parser.error("--translate and --evaluate need --load DIR")
    if args.load and not (args.translate or args.evaluate):
        parser.error("--load needs --translate TEXT... or --evaluate FILE")
    if args.translate and "-" in args.translate and len(args.translate) > 1:
        raise UserError("--translate: '-' (read standard input) cannot be mixed with other texts")
    if not 0 <= args.length_penalty <= 5:  # NaN fails this too
        raise UserError(f"--length-penalty must be between 0 and 5; received {args.length_penalty}")
    if args.max_tokens < 5:
        raise UserError(
            f"--max-tokens must be at least 5 (4 special ids); received {args.max_tokens}"
        )
    if not args.load:  # a new run: can it be saved? Check before training.
        args.out = prepare_out(args.out, "translate", args.overwrite)
        if args.quick:  # a smoke test: a tiny model on a sample, a few seconds of training
            shrink_for_quick(args, argv, **Config.quick_values())
    for flag, path in (("--data", args.data), ("--evaluate", args.evaluate)):
        refuse_missing(flag, path)
    refuse_missing("--load", args.load, "folder")
    try:
        pair_columns(args.direction)
    except ValueError as error:
        raise UserError(f"--direction: {error}") from None
    if args.data is None and not args.load and args.direction not in ("spa-eng", "eng-spa"):
        raise UserError(
            f"--direction {args.direction}: the bundled pairs are Spanish and English (spa-eng "
            "or eng-spa); give other languages' pairs with --data FILE"
        )
    return Config.from_args(args)


# ---------------------------------------------------------------- the run's four steps


def load_data(config):
    """Sentence pairs, split by source sentence into train / validation / test."""
    path = config.data or BUNDLED_PAIRS
    name = f"--data {config.data}" if config.data else str(path.relative_to(REPO))
    try:
        pairs = mt.read_pairs(path, config.direction, name=name)
        if len(pairs) < MIN_PAIRS:
            raise ValueError(
                f"{name}: expected at least {MIN_PAIRS} sentence pairs to learn from; "
                f"received {len(pairs)}"
            )
        if config.quick:  # a smoke test: a sample of short pairs
            pairs = pairs.subset(range(min(len(pairs), 3000)))
        splits = mt.split_by_source(pairs, seed=config.seed)
    except ValueError as error:
        raise UserError(str(error)) from None
    source, target = config.languages
    print(
        f"Data: {len(pairs)} {source}-{target} pairs from {name}: "
        + ", ".join(f"{part} {len(split)}" for part, split in splits.items())
        + " (split by source sentence: none is on two sides)"
    )
    return splits


def train(splits, config, distribution):
    """Fit the vocabularies, try each dropout rate briefly, then train the best one to the budget."""
    common.set_seed(config.seed)
    vocab = mt.Vocabularies.fit(
        splits["train"].sources, splits["train"].targets, max_tokens=config.max_tokens
    )
    source, target = config.languages
    print(
        f"Vocabularies (training text only): {len(vocab.source)} {source} and "
        f"{len(vocab.target)} {target} ids; sentences read up to {vocab.source_length} tokens, "
        f"written up to {vocab.target_length}"
    )
    batch_size = distribution.global_batch(config.batch_size)
    train_batches = mt.training_batches(vocab, splits["train"], batch_size, seed=config.seed)
    validation = mt.teacher_forcing(
        vocab, splits["validation"].sources, splits["validation"].targets
    )
    # A round is a quarter of a pass, so validation (early stopping) looks in four times a pass.
    steps = max(1, len(splits["train"]) // (4 * batch_size))
    budget, started = 60 * config.minutes, time.perf_counter()

    def build(dropout):
        with distribution.scope():
            return mt.build_translator(
                vocab, config.units, config.embedding_dim, dropout, config.learning_rate
            )

    def fit(core, rounds, seconds, callbacks=(), steps=steps):
        return common.fit(
            core,
            train_batches,
            validation,
            epochs=rounds,
            steps_per_epoch=steps,
            patience=2,
            max_seconds=seconds,
            callbacks=callbacks,
            verbose=config.progress,
            distribution=distribution,
        ).history

    print(distribution.describe(config.batch_size))
    # Dropout chosen on validation: a quarter round for each rate (at most half the budget in
    # all), then the model with the lowest validation loss goes on. Early on, less dropout
    # tends to win; longer trials would choose better, and leave less time to train.
    tried, trials = {}, {}
    for dropout in config.dropout if len(config.dropout) > 1 else ():
        print(f"Trial: dropout {dropout:g} for {max(1, steps // 4)} batches ...")
        tried[dropout] = build(dropout)
        seconds = budget / (2 * len(config.dropout))
        trial = fit(tried[dropout], 1, seconds, steps=max(1, steps // 4))
        trials[dropout] = trial["val_loss"][-1]
        print(f"  validation loss {trials[dropout]:.3f}")
    dropout = min(trials, key=trials.get) if trials else config.dropout[0]
    core = tried[dropout] if dropout in tried else build(dropout)  # the winner goes on
    left = max(budget - (time.perf_counter() - started), 1.0)
    print(
        f"Training: dropout {dropout:g}, {config.units} units, up to {left / 60:.1f} more minutes "
        f"in rounds of {steps} batches of {batch_size} (a quarter pass), teacher forcing ..."
    )
    history = fit(core, config.epochs, left, [common.CosineDecayInTime(left, config.learning_rate)])
    if (epoch := common.diverged(history)) is not None:
        raise UserError(
            f"training diverged: the loss stopped being a number in round {epoch}; lower "
            f"--learning-rate (it is {config.learning_rate:g})"
        )
    model = mt.saved_model(vocab, distribution.local_copy(core))
    seconds = time.perf_counter() - started
    return mt.Trained(model, vocab, history, dropout, trials, seconds)


def report(splits, trained, config):
    """Score greedy and beam search on the test split beside the two baselines; show examples."""
    source, target = config.languages
    test_sources, references = mt.grouped_references(splits["test"])
    rows, outputs = mt.score_all(
        trained.model,
        splits["train"],
        test_sources,
        references,
        config.beam_width,
        config.length_penalty,
    )
    seen = mt.overlap(splits["train"], splits["test"])
    print()
    common.print_table(
        mt.table_rows(rows),
        title=f"Test split: {len(test_sources)} {source} sentences none of which training saw, "
        f"{len(splits['test'])} reference translations ({100 * seen['reference_seen']:.0f}% of the "
        f"sentences have a reference that is also a training {target} sentence; "
        f"{100 * seen['one_word_away']:.0f}% are one word away from a training sentence)",
    )
    verdict = mt.verdict(rows)
    print("\n" + verdict)
    if "NOT" in verdict:
        print("(More --minutes, or more --units and --embedding-dim, is what it needs.)")
    network = f"network, beam {config.beam_width}" if config.beam_width > 1 else "network, greedy"
    examples = mt.examples(outputs[network], test_sources, references, EXAMPLES)
    print(f"\nExamples ({network}):")
    for shown in examples:
        print(
            f"  {shown.source}\n    -> {shown.translation.text}\n    reference: {shown.reference}"
        )
    return mt.Found(rows, seen, verdict, examples)


def save(out, splits, trained, found, config, distribution):
    """Write the model, the metrics, attention maps and the training curves into ``out``."""
    save_model_atomically(trained.model, out / "model.keras")
    metrics = mt.run_metrics(splits, trained, found)
    metrics.update(
        config=dataclasses.asdict(config), trained_on=distribution.summary(config.batch_size)
    )
    write_json(out / "metrics.json", metrics)
    # Who made it, and which column of a pairs file it reads (for --evaluate).
    write_json(
        out / "config.json",
        {"app": "translate", "direction": config.direction, "seed": config.seed},
    )
    mt.plot_run(out, trained, found)


@report_user_errors
def main(argv=None):
    started = time.perf_counter()
    config = read_config(argv)
    if config.load:
        return use_saved_model(config)
    distribution = start_distribution(config)  # before TensorFlow runs anything
    splits = load_data(config)
    trained = train(splits, config, distribution)
    found = report(splits, trained, config)
    # Everything is computed; only now touch the output folder, which gets the run whole or not at all.
    if save_run(config, distribution, save, splits, trained, found, config, distribution):
        print(
            f"\nSaved model.keras, metrics.json, attention.png and training.png in {config.out}/ "
            f"({time.perf_counter() - started:.0f} s; try --load {config.out} --translate "
            '"¿Qué hora es?")'
        )
    return 0


# ---------------------------------------------------------------- a saved model in use


def use_saved_model(config):
    """``--load``: translate sentences (``--translate``) or score a pairs file (``--evaluate``)."""
    model = load_model_from_dir(config.load, app="translate")
    try:
        translator = mt.Translator(model)
    except ValueError:
        raise UserError(
            f"--load {config.load}: model.keras is not a translation model; was it saved by "
            "another app?"
        ) from None
    decoding = dict(beam_width=config.beam_width, length_penalty=config.length_penalty)
    if config.evaluate:
        direction = saved_direction(config.load)
        name = f"--evaluate {config.evaluate}"
        try:
            pairs = mt.read_pairs(config.evaluate, direction, name=name)
        except ValueError as error:
            raise UserError(str(error)) from None
        sources, references = mt.grouped_references(pairs)
        started = time.perf_counter()
        hypotheses = [t.text for t in translator.translate(sources, **decoding)]
        found = mt.scores(hypotheses, references) | {"seconds": time.perf_counter() - started}
        name = f"network, beam {config.beam_width}" if config.beam_width > 1 else "network, greedy"
        common.print_table(
            mt.table_rows({name: found}),
            title=f"{config.evaluate}: {len(sources)} sentences, {len(pairs)} references",
        )
    if config.translate:
        try:
            sentences = read_lines(sys.stdin) if config.translate == ("-",) else config.translate
            kept, notes = mt.sentences_to_translate(list(sentences), translator.source_length)
        except ValueError as error:
            raise UserError(f"--translate: {error}") from None
        for note in notes:
            sys.stderr.write(f"translate: {note}\n")
        for translation in translator.translate(kept, **decoding):
            print(translation.text)
    return 0


def saved_direction(folder):
    """The direction a saved run translates, from its config.json."""
    try:
        direction = json.loads((Path(folder) / "config.json").read_text())["direction"]
        mt.columns(direction)
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(
            f"--load {folder}: config.json does not say which direction the model translates; "
            "is this a run of translate.py?"
        ) from None
    return direction


if __name__ == "__main__":
    sys.exit(main())
