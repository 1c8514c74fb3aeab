"""Benchmark apps/speech.py: leave-one-speaker-out over the five voices, and FSDD's own split.

    python bench/speech.py                      # 5 voices + FSDD's split, the app's default budget: about 20 minutes
    python bench/speech.py --speakers george theo --minutes 1
    python bench/speech.py --quick              # a smoke test of the script itself

For each voice in turn the app's own steps (load_data, train, report) run with
that voice held out: the networks never hear it, and the baselines' templates
and regression never saw it either. The average over the voices is the figure
a user recording their own voice can expect. FSDD's own split (takes 0-4 of
every voice as test) is beside it: speaker-dependent, it is the figure most
write-ups quote, and it is higher. Then the time to recognise a 10-second
recording with a saved strings.keras, loading included. The targets (issue 23):
leave-one-speaker-out single-digit accuracy >= 95% and above both baselines,
digit error rate <= 5% on strings from an unseen voice, a 10-second recording
in under a second. Times depend on the machine and on what else runs on it.
"""

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import common  # first: keeps TensorFlow's start-up log noise out of the terminal
import common.tasks.speech as sp
from apps import speech as app

import keras
import numpy as np


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="bench/speech.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--speakers",
        nargs="+",
        choices=app.SPEAKERS,
        default=list(app.SPEAKERS),
        help="voices to hold out, one run each (default: all five)",
    )
    parser.add_argument(
        "--minutes", type=float, help="training time of each run (default: the app's)"
    )
    parser.add_argument("--seed", type=int, default=42, help="(default: %(default)s)")
    parser.add_argument("--no-fsdd-split", action="store_true", help="skip FSDD's own split")
    parser.add_argument("--quick", action="store_true", help="a smoke test, seconds")
    return parser.parse_args(argv)


def run_once(args, out, test_speaker, split=None):
    """The app's steps with one voice held out (or on ``split``): (found, trained, config)."""
    argv = ["--test-speaker", test_speaker, "--seed", str(args.seed), "--out", str(out)]
    argv += ["--minutes", str(args.minutes)] if args.minutes else []
    argv += ["--quick"] if args.quick else []
    config = app.read_config(argv)
    with contextlib.redirect_stdout(sys.stderr):  # the app's own report goes to stderr
        split = split or app.load_data(config)
        trained = app.train(split, config)
        found = app.report(split, trained, config)
    return found, trained, config


def row(found, trained):
    digits, strings = found.digit_rows, found.string_rows
    ctc = [name for name in strings if name.startswith("CTC")][-1]
    baselines = [name for name in digits if name != sp.NETWORK_DIGITS]
    return {
        "digits: network": digits[sp.NETWORK_DIGITS]["test"],
        "DTW": digits[baselines[0]]["test"],
        "logistic": digits[baselines[1]]["test"],
        f"strings DER ({ctc.split(', ')[1]})": strings[ctc]["digit error rate"],
        "DER greedy": strings["CTC, greedy"]["digit error rate"],
        "DER pauses": strings["cut at pauses + digit network"]["digit error rate"],
        "strings right": strings[ctc]["strings right"],
        "train min": trained.seconds / 60,
    }


def shown(rows):
    return {
        name: {k: f"{v:.1f}" if k == "train min" else f"{100 * v:.1f}%" for k, v in r.items()}
        for name, r in rows.items()
    }


def recognition_seconds(trained, clips, folder, seconds=10.0):
    """Load strings.keras and recognise a 10-second recording: (cold, warm) seconds."""
    from scipy.io import wavfile

    rng = np.random.default_rng(0)
    wave, _ = sp.make_string(clips, rng, 10)
    while len(wave) < seconds * sp.SAMPLE_RATE:  # about 10 s of digits and pauses
        more, _ = sp.make_string(clips, rng, 5)
        wave = np.concatenate([wave, more])
    wave = wave[: int(seconds * sp.SAMPLE_RATE)]
    path = Path(folder) / "ten_seconds.wav"
    wavfile.write(path, sp.SAMPLE_RATE, wave)
    trained.strings.save(Path(folder) / "strings.keras")
    started = time.perf_counter()
    model = keras.models.load_model(Path(folder) / "strings.keras")
    sp.recognise(model, [app.read_wav(path, sp.SAMPLE_RATE)])
    cold = time.perf_counter() - started
    started = time.perf_counter()
    sp.recognise(model, [app.read_wav(path, sp.SAMPLE_RATE)])
    return cold, time.perf_counter() - started


def main(argv=None):
    args = parse_args(argv)
    speakers = args.speakers[:2] if args.quick else args.speakers
    rows, last = {}, None
    with tempfile.TemporaryDirectory() as folder:
        for speaker in speakers:
            print(f"Holding out {speaker} ...", file=sys.stderr)
            found, trained, _ = run_once(args, Path(folder) / speaker, speaker)
            rows[f"{speaker} (unseen)"] = row(found, trained)
            last = trained
        average = {
            k: float(np.mean([r[k] for r in rows.values()])) for k in next(iter(rows.values()))
        }
        rows[f"average of {len(speakers)} unseen voices"] = average
        if not args.no_fsdd_split:
            clips = sp.read_clips()
            if args.quick:
                clips = clips.subset(np.flatnonzero(clips.takes < 15))
            print("FSDD's own split (takes 0-4 of every voice) ...", file=sys.stderr)
            found, trained, _ = run_once(
                args, Path(folder) / "fsdd", speakers[0], sp.split_takes(clips)
            )
            rows["FSDD split (voices seen)"] = row(found, trained)
        clips = sp.read_clips()
        cold, warm = recognition_seconds(last, clips.subset(clips.speakers == 0), folder)
    print(f"\nSpeech benchmark (seed {args.seed}{', --quick' if args.quick else ''}):")
    print("digits: accuracy on single digits; DER: digit error rate on 200 strings of 3-10 digits")
    common.print_table(shown(rows))
    met = {
        "digits, unseen voices >= 95%": (
            average["digits: network"],
            average["digits: network"] >= 0.95,
        ),
        "digits: network > both baselines": (
            average["digits: network"] - max(average["DTW"], average["logistic"]),
            average["digits: network"] > max(average["DTW"], average["logistic"]),
        ),
    }
    der = [k for k in average if k.startswith("strings DER")][0]
    met["strings DER, unseen voices <= 5%"] = (average[der], average[der] <= 0.05)
    print()
    common.print_table(
        {
            **{
                k: {"measured": f"{100 * v:.1f}%", "met": "yes" if ok else "NO"}
                for k, (v, ok) in met.items()
            },
            "10 s recording < 1 s (load + recognise)": {
                "measured": f"{cold:.2f} s (warm {warm:.2f} s)",
                "met": "yes" if cold < 1 else "NO",
            },
        },
        title="Targets (issue 23):",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
