"""Spoken digits from the Free Spoken Digit Dataset (FSDD), the speech app's default.

`fsdd_digits.mulaw.xz` holds all 2,500 recordings of the project's five-speaker
copy (digits 0-9, 50 takes each per speaker, mono, 8 kHz), 17 minutes of speech.
As 16-bit WAV they take 16.4 MB; stored as 8-bit mu-law (logarithmic steps with
mu = 255, as telephones use: about 38 dB signal-to-noise on these clips, more
than the recordings' own background noise) and packed with xz they take 5.4 MB.
`common.data.audio.read_digit_clips` reads them back as float waveforms.

Layout, inside the xz stream: one line of JSON (sample rate, speakers, and one
`[digit, speaker, take, samples]` row per clip), then every clip's mu-law bytes
one after another in that order.
"""

import json
import lzma
import wave
from pathlib import Path

import numpy as np

from common.data.audio import MU_LAW_MAGIC, mu_law_encode

PACKAGES = []  # read from the FSDD copy the project keeps beside the repository
REBUILD = "python data/rebuild.py speech  # reads ../shared/fsdd/"
SOURCE = (
    "Free Spoken Digit Dataset (github.com/Jakobovski/free-spoken-digit-dataset, v1.0.10), "
    "Zohar Jackson and contributors: speakers george, jackson, nicolas, theo and yweweler, "
    "from the copy in `../shared/fsdd/`; re-encoded as 8-bit mu-law."
)
LICENCE = (
    "Creative Commons Attribution-ShareAlike 4.0 (CC BY-SA 4.0), as the recordings it comes "
    "from; this re-encoding is shared under the same licence"
)
FILES = {
    "fsdd_digits.mulaw.xz": "2,500 spoken digits 0-9, 5 speakers x 50 takes, 8 kHz mu-law (FSDD, CC BY-SA 4.0)",
}
FSDD_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "fsdd"
SAMPLE_RATE = 8000


def build(data_dir, fsdd_dir=FSDD_DIR):
    speakers = sorted(json.loads((fsdd_dir / "speakers.json").read_text()))
    clips, audio = [], []
    for path in sorted((fsdd_dir / "recordings").glob("*.wav")):
        digit, speaker, take = path.stem.split("_")
        with wave.open(str(path)) as file:
            if (file.getframerate(), file.getnchannels(), file.getsampwidth()) != (8000, 1, 2):
                raise SystemExit(f"{path}: expected 8 kHz mono 16-bit")
            samples = np.frombuffer(file.readframes(file.getnframes()), "<i2") / 32768.0
        clips.append([int(digit), speakers.index(speaker), int(take), len(samples)])
        audio.append(mu_law_encode(samples))
    order = sorted(range(len(clips)), key=lambda i: (clips[i][1], clips[i][0], clips[i][2]))
    header = {"sample_rate": SAMPLE_RATE, "speakers": speakers, "clips": [clips[i] for i in order]}
    body = MU_LAW_MAGIC + json.dumps(header).encode() + b"\n"
    body += b"".join(audio[i].tobytes() for i in order)
    # Fixed preset and no timestamps in xz: the same recordings give the same bytes.
    packed = lzma.compress(body, preset=9 | lzma.PRESET_EXTREME)
    (Path(data_dir) / "fsdd_digits.mulaw.xz").write_bytes(packed)
    print(f"FSDD: {len(clips)} clips of {len(speakers)} speakers, {len(packed) / 1e6:.1f} MB")
