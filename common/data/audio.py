"""Sound as numbers: reading WAV files of any common kind, resampling, and the bundled digits.

A waveform here is a float32 NumPy array of samples in [-1, 1], mono, at the
sample rate the caller asks for (the speech models use 8 kHz, FSDD's own rate).
"""

import json
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from common.data.files import read_bytes

MU = 255  # mu-law companding with the mu of G.711, as telephones encode speech
MU_LAW_MAGIC = b"MULAW-CLIPS 1\n"
MAX_SECONDS = 120.0  # longer files are refused: cut them into pieces first
MIN_RATE, MAX_RATE = 1_000, 768_000  # sample rates (Hz) any recorder writes
SILENT_PEAK = 1e-3  # a recording whose loudest sample is below this holds no speech (-60 dBFS)
MIN_SECONDS = 0.1  # the shortest recording read: a spoken digit lasts 0.2-0.6 s


def mu_law_encode(samples):
    """Float samples in [-1, 1] -> uint8 codes: logarithmic steps, fine near silence."""
    samples = np.clip(np.asarray(samples, dtype="float64"), -1.0, 1.0)
    squashed = np.sign(samples) * np.log1p(MU * np.abs(samples)) / np.log1p(MU)
    return np.round((squashed + 1) / 2 * MU).astype("uint8")


def mu_law_decode(codes):
    """uint8 codes -> float32 samples in [-1, 1] (the inverse of :func:`mu_law_encode`)."""
    squashed = np.asarray(codes, dtype="float64") / MU * 2 - 1
    return (np.sign(squashed) * np.expm1(np.abs(squashed) * np.log1p(MU)) / MU).astype("float32")


def resample(wave, rate, new_rate):
    """``wave`` sampled at ``rate`` Hz, resampled to ``new_rate`` Hz (polyphase, anti-aliased)."""
    if rate <= 0 or new_rate <= 0:
        raise ValueError(f"Expected positive sample rates. Received: {rate} and {new_rate}")
    if rate == new_rate:
        return np.asarray(wave, dtype="float32")
    from scipy.signal import resample_poly  # scipy comes with scikit-learn

    common_factor = gcd(int(rate), int(new_rate))
    up, down = int(new_rate) // common_factor, int(rate) // common_factor
    return resample_poly(np.asarray(wave, dtype="float64"), up, down).astype("float32")


def read_wav(path, sample_rate=8000, name=None, max_seconds=MAX_SECONDS):
    """A WAV file as a mono float32 waveform at ``sample_rate`` Hz.

    Reads 8-bit unsigned, 16-, 24- and 32-bit integer and 32/64-bit float
    files, mono or with several channels (averaged), at 1 kHz to 768 kHz.

    Raises:
        ValueError: not a regular WAV file, an empty or silent one, samples
            that are not numbers, or more than ``max_seconds`` of sound.
    """
    name = name or str(path)
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{name}: no such file")
    if not path.is_file():  # a folder, a pipe, a device: nothing to map or seek in
        raise ValueError(f"{name}: expected a WAV file; this is not a regular file")
    # 8 bytes per sample of 8 channels at the highest rate: a bound on any file we accept.
    if path.stat().st_size > max_seconds * MAX_RATE * 8 * 8 + 2**20:
        _refuse_long(path.stat().st_size / (MAX_RATE * 8 * 8), name, max_seconds)
    rate, data = _read_samples(path, name)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(
            f"{name}: expected a sample rate from {MIN_RATE:,} to {MAX_RATE:,} Hz. "
            f"Received: {rate:,} Hz"
        )
    if data.size == 0:
        raise ValueError(f"{name}: expected some sound; its header says it holds no samples")
    if len(data) < MIN_SECONDS * rate:  # shorter than any spoken digit
        raise ValueError(
            f"{name}: expected at least {MIN_SECONDS * 1000:g} ms of sound; received {len(data)} "
            f"sample{'s' if len(data) > 1 else ''} ({len(data) / rate * 1000:.1f} ms)"
        )
    _refuse_long(len(data) / rate, name, max_seconds)
    wave = _as_float(np.array(data), name)
    if wave.ndim == 2:  # (samples, channels): speech is the same in every channel, so average
        channels, wave = wave, wave.mean(axis=1)
        if np.abs(wave).max() < SILENT_PEAK <= np.abs(channels).max(axis=0).min():
            raise ValueError(
                f"{name}: expected speech; its channels cancel out when mixed into one (one is "
                "the other upside down): keep one channel"
            )
    if np.abs(wave).max() < SILENT_PEAK:
        raise ValueError(f"{name}: expected speech; the recording is silent")
    return resample(wave, rate, sample_rate)


def _read_samples(path, name):
    """``(rate, samples)`` from scipy's reader, every way it fails turned into one ValueError."""
    import warnings

    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():  # unknown chunks (cue points, tags) are skipped quietly
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            try:  # mapped: a long file costs nothing until its length is checked
                return wavfile.read(path, mmap=True)
            except ValueError as error:
                if "mmap" not in str(error):
                    raise
            return wavfile.read(path)  # 24-bit samples cannot be mapped; the size is bounded
    except MemoryError:
        raise
    except Exception as error:  # scipy's reader fails on crafted headers in a dozen ways
        detail = str(error).split("\n")[0] or type(error).__name__
        if isinstance(error, OSError):  # the disk, not the file's content
            detail = error.strerror or detail
        elif not isinstance(error, ValueError):  # Python's own words (a division by zero ...)
            detail = f"its header is damaged ({type(error).__name__})"
        raise ValueError(
            f"{name}: expected a WAV file (PCM or float); could not read it: {detail}"
        ) from None


def _refuse_long(seconds, name, max_seconds):
    if seconds > max_seconds:
        raise ValueError(
            f"{name}: expected at most {max_seconds:g} seconds of sound; received "
            f"{seconds:,.0f} seconds (cut it into shorter pieces first)"
        )


def _as_float(data, name):
    """Integer samples scaled to [-1, 1); float samples checked to be numbers in [-1, 1]."""
    if data.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (data.astype("float32") - 128) / 128
    if np.issubdtype(data.dtype, np.integer):  # 16-bit, and 24-bit read into int32's top bits
        return data.astype("float32") / np.float32(-np.iinfo(data.dtype).min)
    if not np.issubdtype(data.dtype, np.floating):
        raise ValueError(f"{name}: expected integer or float samples; received {data.dtype}")
    if not np.isfinite(data).all():
        raise ValueError(f"{name}: expected numbers; some samples are NaN or infinite")
    peak = float(np.abs(data).max(initial=0.0))
    if peak > 2:  # a little overshoot is common; 32767 means integers stored as floats
        raise ValueError(f"{name}: expected float samples from -1 to 1; the largest is {peak:g}")
    return np.clip(data.astype("float32"), -1, 1)


@dataclass
class DigitClips:
    """Recordings of single spoken digits: ``waves[i]`` says ``digits[i]``, by ``speakers[i]``."""

    waves: list  # float32 waveforms of different lengths
    digits: np.ndarray  # 0-9
    speakers: np.ndarray  # index into speaker_names
    takes: np.ndarray  # FSDD's take number 0-49
    speaker_names: list
    sample_rate: int

    def __len__(self):
        return len(self.waves)

    def subset(self, keep):
        """The clips where boolean ``keep`` is true (or at the indices in ``keep``)."""
        index = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        return DigitClips(
            [self.waves[i] for i in index],
            self.digits[index],
            self.speakers[index],
            self.takes[index],
            self.speaker_names,
            self.sample_rate,
        )


def read_digit_clips(path, name=None):
    """The bundled spoken digits (``data/fsdd_digits.mulaw.xz``, see ``data/build_speech.py``)."""
    name = name or str(path)
    raw = read_bytes(path, name)
    try:
        if not raw.startswith(MU_LAW_MAGIC):
            raise ValueError("no mu-law clips header")
        header_end = raw.find(b"\n", len(MU_LAW_MAGIC))
        header = json.loads(raw[len(MU_LAW_MAGIC) : header_end])
        clips = np.array(header["clips"], dtype="int64").reshape(-1, 4)
        speakers, sample_rate = list(header["speakers"]), int(header["sample_rate"])
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{name}: expected a mu-law clips file (data/build_speech.py)") from None
    codes = np.frombuffer(raw, dtype="uint8", offset=header_end + 1)
    if len(codes) != clips[:, 3].sum():
        raise ValueError(f"{name}: expected {clips[:, 3].sum()} samples; received {len(codes)}")
    ends = np.cumsum(clips[:, 3])
    waves = [mu_law_decode(codes[end - length : end]) for end, length in zip(ends, clips[:, 3])]
    digits, speaker_ids, takes = clips[:, 0], clips[:, 1], clips[:, 2]
    return DigitClips(waves, digits, speaker_ids, takes, speakers, sample_rate)
