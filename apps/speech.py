"""Recognise spoken digits, one per clip and whole strings of them (a number read aloud), with recurrent networks.

    python apps/speech.py                           # bundled FSDD recordings, one voice held out, about 2.5 minutes
    python apps/speech.py --test-speaker nicolas --minutes 5
    python apps/speech.py --load runs/speech/<run>/ --wav my_phone_number.wav

Two networks, both reading MFCCs (the log-mel spectrum's broad shape) that
layers inside the model compute from the waveform (the saved .keras files take
sound, nothing else):

  digits.keras   one digit per clip (many-to-one): a bidirectional GRU reads
                 the frames (40 ms steps) and answers once, beside two
                 pre-neural baselines: dynamic time warping to the nearest
                 training recording, and logistic regression on statistics
                 of the clip's spectrum over time.
  strings.keras  strings of 3 to 10 digits (many-to-many, with no alignment):
                 two bidirectional GRU layers answer "blank" or a digit at
                 every frame, trained with CTC, read by greedy and beam
                 decoding; beside the baseline that cuts the recording at its
                 pauses and classifies each piece with the one-digit network.

The test voice is one training never hears (--test-speaker): the figure that
matters to someone who records their own voice. The other voices' takes 0-4
(FSDD's own test takes, speaker-dependent) stop training and are scored too.
Training strings are made on the fly from the training voices' clips, with
random pauses, speed, loudness and background noise.
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

from common.cli import RunOptions, UserError, one_line, option, report_user_errors, write_json
from common.cli import dropout_rate, positive_float, positive_int, positive_int_up_to
from common.cli import load_model_from_dir, prepare_out, save_model_atomically
from common.cli import (
    refuse_missing,
    refuse_unused_with_load,
    save_run,
    shrink_for_quick,
    start_distribution,
)
from common.data.audio import read_wav

import numpy as np

# TensorFlow loads on first use: --help and option errors come first.
sp = common.import_later("common.tasks.speech")

SPEAKERS = ("george", "jackson", "nicolas", "theo", "yweweler")  # the bundled voices
SCORED_STRINGS = 200  # validation and test strings, the same ones every run (seeded); --quick: 20


@dataclass(frozen=True)
class Config(RunOptions):
    """A speech run's options, checked, after ``--quick``: what the run was asked to do."""

    APP = "speech"
    WITH_LOAD = {"wav", "beam_width"}  # with --load: what to recognise, and how
    GROUPS = {
        "data": "data (default: 2,500 bundled FSDD recordings, 5 voices, 8 kHz)",
        "model": "model",
        "decoding": "decoding",
        "use": "use a saved model",
    }

    test_speaker: str = option(
        "george", "the voice held out for testing", group="data", choices=SPEAKERS
    )
    strings: int = option(
        2000,
        "digit strings generated for each round of the strings network",
        group="data",
        type=positive_int_up_to(20000),
        quick=64,
    )
    units: int = option(
        64,
        "GRU units per direction (and convolution filters)",
        type=positive_int_up_to(1024),
        quick=8,
    )
    dropout: float = option(0.2, "dropout rate of both networks", type=dropout_rate)
    learning_rate: float = option(
        3e-3, "Adam learning rate, lowered along a cosine", type=positive_float
    )
    epochs: int = option(
        30,
        "most rounds of each network (a pass over the training clips, or --strings new "
        "strings); --minutes usually ends training first, and early stopping may",
        group="run",
        type=positive_int,
        quick=1,
    )
    batch_size: int = option(
        32, "examples per gradient step", group="run", type=positive_int_up_to(4096)
    )
    minutes: float = option(
        2.0,
        "training time budget of both networks (a third for digits, the rest for strings)",
        group="run",
        type=positive_float,
        quick=0.05,
    )
    beam_width: int = option(
        8,
        "prefixes kept by CTC beam search (1: greedy only)",
        group="decoding",
        type=positive_int_up_to(64),
    )
    load: Path | None = option(
        None, "skip training: use DIR/strings.keras", group="use", type=Path, metavar="DIR"
    )
    wav: tuple | None = option(
        None,
        "with --load: recognise the digits spoken in each WAV file (any sample rate, mono or "
        "stereo, 8-32-bit integer or float; at most 2 minutes each)",
        group="use",
        nargs="+",
        type=Path,
        metavar="FILE",
    )

    @property
    def scored_strings(self):
        """Validation and test strings a run makes (the same ones every run: seeded)."""
        return 20 if self.quick else SCORED_STRINGS


def read_config(argv):
    """Parse and check the options before any work; ``--quick`` shrinks what was not typed."""
    parser = Config.parser(__doc__)
    args = parser.parse_args(argv)
    if args.load:
        refuse_unused_with_load(parser, argv, Config.WITH_LOAD)
        if not args.wav:
            parser.error("--load needs --wav FILE...")
    elif args.wav:
        parser.error("--wav needs --load DIR (a run of speech.py)")
    if args.distribute != "none" or args.mixed_precision:
        raise UserError(
            "speech.py trains on one device: its batches are generated as it goes "
            "(leave out --distribute and --mixed-precision)"
        )
    if not args.load:  # a new run: can it be saved? Check before training.
        args.out = prepare_out(args.out, "speech", args.overwrite)
        if args.quick:  # a smoke test: a tiny model on a few takes, seconds of training
            shrink_for_quick(args, argv, **Config.quick_values())
    refuse_missing("--wav", args.wav)
    refuse_missing("--load", args.load, "folder")
    return Config.from_args(args)


# ---------------------------------------------------------------- the run's four steps


def load_data(config):
    """The bundled clips, split by voice: training voices, their takes 0-4, the test voice."""
    try:
        clips = sp.read_clips()
    except ValueError as error:  # a damaged or missing bundled file (a partial checkout)
        raise UserError(f"{error}; rebuild it with: python data/rebuild.py speech") from None
    if config.quick:  # a smoke test: 10 takes of each digit and voice
        clips = clips.subset(np.flatnonzero(clips.takes < 10))
    split = sp.split_speakers(clips, config.test_speaker)
    training_voices = [n for n in clips.speaker_names if n != config.test_speaker]
    print(
        f"Data: {len(clips)} recordings of the digits 0-9 at {clips.sample_rate} Hz: training "
        f"{len(split.train)} ({', '.join(training_voices)}), validation "
        f"{len(split.validation)} (the same voices, takes 0-4), test {len(split.test)} "
        f"({config.test_speaker}, a voice training never hears)"
    )
    return split


@dataclass
class Trained:
    digits: object  # keras.Model: waveform -> 10 probabilities
    strings: object  # keras.Model: waveform -> per-frame CTC logits
    histories: dict  # "digits" / "strings" -> Keras history
    seconds: float


def train(split, config):
    """Normalise on the training voices, then train the digit network and the strings network."""
    common.set_seed(config.seed)
    features = sp.Features.fit(split.train.waves)  # training voices only
    budget, started = 60 * config.minutes, time.perf_counter()
    units, dropout, rate = config.units, config.dropout, config.learning_rate
    fit = dict(
        learning_rate=rate,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        verbose=config.progress,
    )

    print(f"Digits: a bidirectional GRU of {units} units, up to {budget / 180:.1f} minutes ...")
    digits = sp.build_digit_classifier(features, units, dropout, rate)
    digit_history = sp.train_digits(digits, split, budget / 3, **fit).history
    stop_if_diverged(digit_history, "digit", config)

    left = max(budget - (time.perf_counter() - started), 1.0)
    print(
        f"Strings: two bidirectional GRU layers and CTC, the first from the digit network, "
        f"{config.strings} new strings a round, up to {left / 60:.1f} minutes ..."
    )
    strings = sp.build_string_recognizer(features, units, dropout, rate, start_from=digits)
    string_history = sp.train_strings(
        strings,
        split,
        left,
        strings=config.strings,
        validation_strings=config.scored_strings,
        **fit,
    ).history
    stop_if_diverged(string_history, "strings", config)
    histories = {"digits": digit_history, "strings": string_history}
    return Trained(digits, strings, histories, time.perf_counter() - started)


def stop_if_diverged(history, name, config):
    if (epoch := common.diverged(history)) is not None:
        raise UserError(
            f"training diverged: the {name} network's loss stopped being a number in round "
            f"{epoch}; lower --learning-rate (it is {config.learning_rate:g})"
        )


def report(split, trained, config):
    """Both tables, each network beside its baselines, on the test split; examples."""
    digit_rows, predictions = sp.score_digits(trained.digits, split)
    print()
    common.print_table(
        sp.table_rows(digit_rows),
        title=f"One digit per recording: accuracy on the test split's {len(split.test)} recordings "
        f"({split.tested}) and on the training voices' {len(split.validation)} held-out takes",
    )
    waves, labels = sp.make_strings(split.test, config.scored_strings, np.random.default_rng(2))
    string_rows, outputs = sp.score_strings(
        trained.strings, trained.digits, waves, sp.as_text(labels), config.beam_width
    )
    print()
    common.print_table(
        sp.table_rows(string_rows),
        title=f"{len(waves)} strings of 3-10 digits made from the test split ({split.tested})",
    )
    verdict = sp.verdict(digit_rows, string_rows)
    print("\n" + verdict)
    examples = sp.examples(waves, sp.as_text(labels), outputs)
    print("\nExamples (reference -> network):")
    for reference, found in examples:
        print(f"  {reference:>10} -> {found}")
    return sp.Found(digit_rows, string_rows, verdict, examples, predictions, waves[0], labels[0])


def save(out, split, trained, found, config):
    """Write both models, the metrics, the pictures and the training curves into ``out``."""
    save_model_atomically(trained.digits, out / "digits.keras")
    save_model_atomically(trained.strings, out / "strings.keras")
    metrics = sp.run_metrics(split, trained, found)
    metrics["config"] = dataclasses.asdict(config)
    write_json(out / "metrics.json", metrics)
    write_json(out / "config.json", {"app": "speech", "seed": config.seed})
    sp.plot_run(out, split, trained, found)


@report_user_errors
def main(argv=None):
    started = time.perf_counter()
    config = read_config(argv)
    if config.load:
        return use_saved_model(config)
    distribution = start_distribution(config)  # one device: see read_config
    split = load_data(config)
    trained = train(split, config)
    found = report(split, trained, config)
    # Everything is computed; only now touch the output folder, which gets the run whole or not at all.
    if save_run(config, distribution, save, split, trained, found, config):
        print(
            f"\nSaved digits.keras, strings.keras, metrics.json, confusion.png, example.png and "
            f"training.png in {config.out}/ ({time.perf_counter() - started:.0f} s; try --load "
            f"{config.out} --wav FILE.wav)"
        )
    return 0


# ---------------------------------------------------------------- a saved model in use


def use_saved_model(config):
    """``--load DIR --wav FILE...``: the digits spoken in each recording, one line each."""
    waves = []
    for path in config.wav:  # every file is checked before any is recognised
        try:
            waves.append(read_wav(path, sp.SAMPLE_RATE, name=f"--wav {path}"))
        except ValueError as error:
            raise UserError(str(error)) from None
    model = load_model_from_dir(config.load, "strings.keras", app="speech")
    if model.input_shape != (None, None) or model.output_shape[-1] != 11:
        raise UserError(
            f"--load {config.load}: strings.keras is not a digit-string recogniser; was it "
            "saved by another app?"
        )
    for path, digits in zip(config.wav, sp.recognise(model, waves, config.beam_width)):
        print(f"{one_line(path)}: {digits or '(no digits heard)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
