"""Speech, the one definition: spoken digits, strings of them, two recurrent recognisers, CTC.

apps/speech.py, bench/speech.py and the tests all import from here::

    import common.tasks.speech as sp
    clips = sp.read_clips()                                  # the bundled FSDD digits, 8 kHz
    split = sp.split_speakers(clips, test_speaker="george")  # a voice training never hears
    features = sp.Features.fit(split.train.waves)            # normalisation: training voices only
    digits = sp.build_digit_classifier(features)             # waveform in, 10 probabilities out
    digits.fit(sp.as_dataset(sp.DigitBatches(split.train), ()), ...)  # shifted, noisy clips
    strings = sp.build_string_recognizer(features, start_from=digits)  # per-frame logits out
    strings.fit(sp.as_dataset(sp.StringBatches(split.train), (None,)), ...)  # CTC: no alignments
    sp.recognise(strings, waves, beam_width=8)               # ["0412", ...]
    sp.digit_error_rate(references, hypotheses)              # edits / reference digits

One digit per clip is many-to-one: the network reads every frame and answers
once. A string of digits is many-to-many *without alignment*: nobody says which
frames hold which digit. CTC (connectionist temporal classification, Graves et
al. 2006) lets the network answer at every frame with a digit or a "blank", and
sums over every way of placing the spoken digits on the frames, so it learns
where the words are by itself. Reading the answer: take the likeliest symbol at
each frame, merge repeats, drop blanks (greedy), or keep several prefixes (beam).

The custom layers a saved model holds (:class:`~common.models.audio.LogMelSpectrogram`,
``UtteranceNormalization``, ``Cepstrum``) are registered with Keras under the package
``rnn_workshop``.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from common.data.audio import read_digit_clips
from common.models.audio import Cepstrum, LogMelSpectrogram, UtteranceNormalization
from common.models.ctc import ctc_decode, ctc_labels, symbol_error_rate
from common.models.training import CosineDecayInTime, cosine_factor, fit

SAMPLE_RATE = 8000
BUNDLED = Path(__file__).resolve().parents[2] / "data" / "fsdd_digits.mulaw.xz"
DIGIT_WINDOW = SAMPLE_RATE  # 1 s holds all but 3 of the 2,500 trimmed digits (median 0.3 s)
VALIDATION_TAKES = range(5)  # FSDD's own test takes, of the training voices: for early stopping
STRING_LENGTHS = (3, 10)  # digits in a scored string, both included
TRAINING_LENGTHS = (1, 10)  # training strings may be shorter: single digits teach CTC fastest
CONV_STRIDES = (2, 2)  # the front end's two convolutions: 10 ms frames become 40 ms steps
BUCKET = 4 * SAMPLE_RATE  # strings are padded to whole multiples of 4 s: few shapes to compile
# The networks read 13 MFCCs, not the 40 log-mel bands: on voices training never heard, the
# digit network alone got 83-86% of digits with 10 to 20 coefficients (13: 86%) and 77% with
# the 40 bands (leave-one-speaker-out, 40 s of training, one seed; chosen on those same five
# voices): the finer ripple across the bands is more the speaker's pitch than the word.
CEPSTRAL_COEFFICIENTS = 13


def read_clips(path=BUNDLED, name=None):
    """The spoken digits (:class:`common.data.audio.DigitClips`), each trimmed of silence."""
    clips = read_digit_clips(path, name)
    clips.waves = [trim_silence(wave) for wave in clips.waves]
    return clips


# ---------------------------------------------------------------- splitting and silence


@dataclass
class Split:
    train: object  # DigitClips: the training voices, takes 5-49
    validation: object  # the training voices, takes 0-4 (speaker-dependent: for early stopping)
    test: object  # every take of the test voice (speaker-independent: what a user gets)
    test_speaker: str
    unseen: bool = True  # False for FSDD's own split, where the test voices are heard in training

    @property
    def tested(self):
        """Whose recordings the test split holds, for the report."""
        if self.unseen:
            return f"{self.test_speaker}, a voice training never heard"
        return "every voice, other takes of which training heard"


def split_speakers(clips, test_speaker):
    """Hold one voice out for testing; the other voices' takes 0-4 are for validation."""
    if test_speaker not in clips.speaker_names:
        raise ValueError(
            f"Expected a speaker among {', '.join(clips.speaker_names)}. Received: {test_speaker!r}"
        )
    tested = clips.speakers == clips.speaker_names.index(test_speaker)
    held = np.isin(clips.takes, VALIDATION_TAKES)
    return Split(
        clips.subset(~tested & ~held),
        clips.subset(~tested & held),
        clips.subset(tested),
        test_speaker,
    )


def split_takes(clips):
    """FSDD's own split: takes 0-4 of every voice test, 5-9 validation, the rest training.

    Speaker-dependent: every test voice is heard in training, so it scores
    higher than a voice the model never heard (:func:`split_speakers`).
    """
    return Split(
        clips.subset(clips.takes >= 10),
        clips.subset((clips.takes >= 5) & (clips.takes < 10)),
        clips.subset(clips.takes < 5),
        "every voice",
        unseen=False,
    )


def frame_energy(wave, frame=160):
    """Mean square of each ``frame``-sample frame (20 ms at 8 kHz), in dB below the loudest."""
    frames = len(wave) // frame
    if frames == 0:
        return np.zeros(0)
    power = np.mean(np.reshape(wave[: frames * frame], (frames, frame)) ** 2, axis=1)
    return 10 * np.log10(power / max(power.max(), 1e-12) + 1e-12)


def speech_frames(wave, threshold_db=-35.0, frame=160, above_noise_db=10.0):
    """True for each 20 ms frame within ``threshold_db`` of the loudest one and at least
    ``above_noise_db`` above the background (the quietest tenth of the frames)."""
    energy = frame_energy(wave, frame)
    if len(energy) == 0:
        return energy > 0
    background = np.percentile(energy, 10)
    return energy > max(threshold_db, background + above_noise_db)


def trim_silence(wave, threshold_db=-35.0, frame=160, margin=2):
    """``wave`` from its first to its last loud frame, keeping ``margin`` frames each side."""
    loud = np.flatnonzero(speech_frames(wave, threshold_db, frame))
    if len(loud) == 0:
        return wave
    start = max(loud[0] - margin, 0) * frame
    end = min((loud[-1] + 1 + margin) * frame, len(wave))
    return wave[start:end]


def segments(wave, threshold_db=-35.0, frame=160, min_gap=4, min_length=4):
    """(start, end) samples of each stretch of sound separated by at least ``min_gap`` quiet frames.

    A pause inside a word ("six": s-i-k-s) is short; a pause between words
    is longer. Stretches shorter than ``min_length`` frames are clicks, dropped.
    """
    loud = speech_frames(wave, threshold_db, frame)
    found, start, quiet = [], None, 0
    for index, is_loud in enumerate(loud):
        if is_loud:
            start = index if start is None else start
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet >= min_gap:
                found.append((start, index - quiet + 1))
                start, quiet = None, 0
    if start is not None:
        found.append((start, len(loud) - quiet))
    return [(s * frame, e * frame) for s, e in found if e - s >= min_length]


# ---------------------------------------------------------------- batches, with augmentation


def augment(wave, rng, gain_db=6.0, snr_db=(15.0, 40.0), speed=(0.9, 1.1)):
    """A copy of ``wave`` spoken a little faster or slower, louder or softer, with white noise.

    Changing the speed by a few percent also moves the pitch and the formants,
    as a shorter or longer vocal tract would: the cheapest way to make four
    voices sound like more (speed perturbation, Ko et al. 2015).
    """
    factor = rng.uniform(*speed)
    positions = np.arange(0, len(wave) - 1, factor)
    wave = np.interp(positions, np.arange(len(wave)), wave)
    wave = wave * 10 ** (rng.uniform(-gain_db, gain_db) / 20)
    signal = np.sqrt(np.mean(wave**2) + 1e-12)
    noise = signal / 10 ** (rng.uniform(*snr_db) / 20)
    return np.clip(wave + rng.normal(0, noise, len(wave)), -1, 1).astype("float32")


def in_window(wave, samples, offset=None):
    """``wave`` placed in ``samples`` zeros at ``offset`` (default: centred); cut if longer."""
    if len(wave) > samples:
        start = (len(wave) - samples) // 2
        return wave[start : start + samples]
    offset = (samples - len(wave)) // 2 if offset is None else offset
    window = np.zeros(samples, dtype="float32")
    window[offset : offset + len(wave)] = wave
    return window


def digit_windows(clips, samples=DIGIT_WINDOW):
    """(clips, samples) float32: every clip centred in its window, for scoring."""
    return np.stack([in_window(wave, samples) for wave in clips.waves])


class DigitBatches:
    """Training batches of single digits, (waves (batch, samples), digits (batch,)).

    Each pass (``iter``) draws a new order, and puts each clip at a random
    place in its window, a little faster or slower, louder or softer, with
    noise: the network cannot learn where a digit starts or how loud or how
    high a voice is. :func:`as_dataset` feeds them to ``fit``.
    """

    def __init__(self, clips, batch_size=32, rng=None, samples=DIGIT_WINDOW):
        self.clips, self.batch_size, self.samples = clips, batch_size, samples
        self.rng = rng or np.random.default_rng(0)

    def __len__(self):  # the last batch may be smaller: every clip is used
        return -(-len(self.clips) // self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(len(self.clips))
        for index in range(len(self)):
            rows = order[index * self.batch_size : (index + 1) * self.batch_size]
            waves = []
            for row in rows:
                wave = augment(self.clips.waves[row], self.rng)
                offset = self.rng.integers(0, max(self.samples - len(wave), 0) + 1)
                waves.append(in_window(wave, self.samples, offset))
            yield np.stack(waves), self.clips.digits[rows].astype("int32")


def as_dataset(batches, label_shape):
    """A ``tf.data.Dataset`` of ``batches`` (DigitBatches or StringBatches), drawn anew each epoch.

    The sound's length is left open, ``(batch, None)``: one compiled training
    step then serves strings of every length.
    """
    import tensorflow as tf

    signature = (
        tf.TensorSpec((None, None), tf.float32),
        tf.TensorSpec((None, *label_shape), tf.int32),
    )
    dataset = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=signature)
    # Tell Keras how many batches a pass holds (for its progress bar), and make the next ahead.
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)


def make_string(clips, rng, length, pause=(0.05, 0.4), edge=(0.1, 0.4), snr_db=(15.0, 40.0)):
    """One speaker reading ``length`` random digits: (waveform, digits).

    Clips of one voice joined with random pauses, each at its own loudness,
    then background noise over the whole string.
    """
    speaker = rng.choice(np.unique(clips.speakers))
    digits = rng.integers(0, 10, length)
    parts = [np.zeros(int(rng.uniform(*edge) * clips.sample_rate), "float32")]
    for position, digit in enumerate(digits):
        takes = np.flatnonzero((clips.speakers == speaker) & (clips.digits == digit))
        if len(takes) == 0:
            raise ValueError(f"Expected every digit from speaker {speaker}. Missing: {digit}")
        parts.append(clips.waves[rng.choice(takes)] * 10 ** (rng.uniform(-4, 4) / 20))
        gap = edge if position == length - 1 else pause
        parts.append(np.zeros(int(rng.uniform(*gap) * clips.sample_rate), "float32"))
    return augment(np.concatenate(parts), rng, gain_db=3.0, snr_db=snr_db), digits


def make_strings(clips, count, rng, lengths=STRING_LENGTHS):
    """``count`` strings of ``lengths[0]`` to ``lengths[1]`` digits: (waveforms, digit arrays)."""
    made = [make_string(clips, rng, rng.integers(lengths[0], lengths[1] + 1)) for _ in range(count)]
    return [wave for wave, _ in made], [digits for _, digits in made]


def pad_batch(waves, multiple=BUCKET):
    """(batch, samples) zeros holding ``waves``, the length rounded up to ``multiple``."""
    samples = -(-max(len(wave) for wave in waves) // multiple) * multiple
    batch = np.zeros((len(waves), samples), dtype="float32")
    for row, wave in enumerate(waves):
        batch[row, : len(wave)] = wave
    return batch


def label_batch(digit_lists):
    """(batch, longest) CTC labels: digit d as d + 1, padded with 0 (the blank): :func:`ctc_labels`."""
    return ctc_labels(digit_lists)


class StringBatches:
    """Training batches of generated digit strings, ``count`` new ones each pass (``iter``):
    (waves (batch, samples), CTC labels (batch, longest)).

    Strings of similar length share a batch, so little of it is padding; the
    batches come in a random order.
    """

    def __init__(self, clips, count=2000, batch_size=32, rng=None):
        self.clips, self.count, self.batch_size = clips, count, batch_size
        self.rng = rng or np.random.default_rng(0)

    def __len__(self):  # the last batch may be smaller
        return -(-self.count // self.batch_size)

    def __iter__(self):
        waves, digits = make_strings(self.clips, self.count, self.rng, TRAINING_LENGTHS)
        by_length = np.argsort([len(wave) for wave in waves])
        starts = self.rng.permutation(len(self)) * self.batch_size
        for start in starts:
            rows = by_length[start : start + self.batch_size]
            yield pad_batch([waves[r] for r in rows]), label_batch([digits[r] for r in rows])


# ---------------------------------------------------------------- the models


@dataclass
class Features:
    """MFCC frames: log-mel bands, each recording's mean taken away, the first ``coefficients``
    cepstral coefficients, then scaled by statistics of the training voices."""

    mean: np.ndarray  # (coefficients,), of the training voices' normalised frames
    std: np.ndarray
    coefficients: int = CEPSTRAL_COEFFICIENTS

    @classmethod
    def fit(cls, waves, sample_rate=SAMPLE_RATE, coefficients=CEPSTRAL_COEFFICIENTS, batch=256):
        """The mean and spread of the training recordings' frames, computed by the model's own
        layers (:meth:`layers` without the last): the statistics of what the network reads."""
        steps = [UtteranceNormalization(), Cepstrum(coefficients)]
        frames = np.concatenate(log_mels(waves, sample_rate, batch, then=steps))
        return cls(frames.mean(axis=0), frames.std(axis=0) + 1e-6, coefficients)

    def layers(self, sample_rate=SAMPLE_RATE):
        """waveform (batch, samples) -> log-mel (batch, frames, mels) -> minus the recording's
        mean frame -> first cepstral coefficients (batch, frames, coefficients) -> scaled
        one by one with the training voices' statistics."""
        return [
            LogMelSpectrogram(sample_rate, name="log_mel"),
            UtteranceNormalization(name="utterance_normalization"),
            Cepstrum(self.coefficients, name="cepstrum"),
            layers.Normalization(axis=-1, mean=self.mean, variance=self.std**2, name="normalize"),
        ]


def log_mels(waves, sample_rate=SAMPLE_RATE, batch_size=256, then=()):
    """Each waveform's (frames, mels) log-mel spectrogram, as the models compute it, passed
    through the layers ``then`` if any (e.g. the per-recording mean and the cepstrum).

    Computed in batches of similar lengths; zero padding at the end changes no
    frame a wave has (the last frame is padded with zeros anyway), and the
    per-recording mean does not count padding frames.
    """
    spectrogram = LogMelSpectrogram(sample_rate)
    order = np.argsort([len(wave) for wave in waves])
    found = [None] * len(waves)
    for start in range(0, len(waves), batch_size):
        rows = order[start : start + batch_size]
        batch = spectrogram(pad_batch([waves[r] for r in rows], 1))
        for layer in then:
            batch = layer(batch)
        batch = keras.ops.convert_to_numpy(batch)
        for row, spectra in zip(rows, batch):
            found[row] = spectra[: spectrogram.frames(len(waves[row]))]
    return found


def _front_end(features, units, dropout):
    """waveform (batch, samples) -> normalised MFCCs (batch, frames, coefficients) -> two Conv1D of
    stride 2 -> (batch, frames / 4, units): 40 ms steps, a quarter of the recurrent work.

    The convolutions use SiLU (x * sigmoid(x)), not ReLU: with ReLU, 3 of 18
    training runs we made ended answering the same digit for every recording
    (units that an early step switched off for good, most likely)."""
    waves = keras.Input(shape=(None,), name="waveform")
    x = waves
    for layer in features.layers():
        x = layer(x)
    # A coefficient dropped for a whole clip, not frame by frame: no one coefficient is relied on
    x = layers.SpatialDropout1D(dropout, name="feature_dropout")(x)
    for depth, (width, stride) in enumerate(zip((5, 3), CONV_STRIDES), start=1):
        x = layers.Conv1D(
            units, width, strides=stride, padding="same", activation="silu", name=f"conv_{depth}"
        )(x)
    return waves, x


def build_digit_classifier(features, units=64, dropout=0.2, learning_rate=2e-3):
    """One digit per clip (many-to-one): waveform (batch, samples) -> (batch, 10) probabilities.

    Front end (:func:`_front_end`) -> bidirectional GRU, its two final states
    (batch, 2 * units) -> dropout -> Dense(10, softmax).
    """
    waves, x = _front_end(features, units, dropout)
    x = layers.Bidirectional(layers.GRU(units, dropout=dropout), name="gru_1")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    probabilities = layers.Dense(10, activation="softmax", name="digit")(x)
    model = keras.Model(waves, probabilities, name="digit_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def build_string_recognizer(features, units=64, dropout=0.2, learning_rate=2e-3, start_from=None):
    """Digit strings (many-to-many, unaligned): waveform (batch, samples) -> (batch, frames / 4, 11).

    Front end -> two bidirectional GRU layers returning sequences -> Dense(11):
    per 40 ms, logits of blank (0) and digits 0-9 (1-10), trained with
    ``keras.losses.CTC``. No ``Masking`` layer: padding is silence, and the
    network learns to say "blank" there (a mask before a CTC loss has failed
    in Keras 3, keras-team/keras#23228).

    ``start_from``, a trained :func:`build_digit_classifier` of the same size,
    gives its front end and its GRU to this network's first layers (transfer
    learning): they already hear digits, and CTC only has to learn where they
    are. Its GRU returned one state; the same weights return one per frame.
    """
    waves, x = _front_end(features, units, dropout)
    for depth in (1, 2):
        x = layers.Bidirectional(
            layers.GRU(units, return_sequences=True, dropout=dropout), name=f"gru_{depth}"
        )(x)
    logits = layers.Dense(11, name="symbols")(x)
    model = keras.Model(waves, logits, name="string_recognizer")
    if start_from is not None:
        for name in ("conv_1", "conv_2", "gru_1"):
            model.get_layer(name).set_weights(start_from.get_layer(name).get_weights())
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0), loss=keras.losses.CTC()
    )
    return model


def train_digits(
    model, split, seconds=None, *, learning_rate, epochs=30, batch_size=32, seed=0, verbose=0
):
    """Fit the digit network on the training clips, each shifted in its 1 s window and
    perturbed (speed, loudness, noise) anew every round; the validation takes stop it early.

    At most ``epochs`` rounds and ``seconds`` of training (None: no time limit), the
    learning rate lowered along a cosine (:func:`cosine_schedule`). Returns the Keras history.
    """
    batches = DigitBatches(split.train, batch_size, np.random.default_rng([seed, 1]))
    return fit(
        model,
        as_dataset(batches, label_shape=()),
        (digit_windows(split.validation), split.validation.digits),
        epochs=epochs,
        patience=4,
        max_seconds=seconds,
        callbacks=[cosine_schedule(learning_rate, seconds, epochs)],
        verbose=verbose,
    )


def cosine_schedule(learning_rate, seconds, epochs):
    """The learning rate lowered along a cosine to a tenth: over ``seconds`` of training when
    there is a time budget (the app), else over ``epochs`` rounds (the same on any machine)."""
    if seconds is not None:
        return CosineDecayInTime(seconds, learning_rate)
    return keras.callbacks.LearningRateScheduler(
        lambda epoch: learning_rate * cosine_factor(epoch / epochs, final_fraction=0.1)
    )


def train_strings(
    model,
    split,
    seconds=None,
    *,
    learning_rate,
    strings=2000,
    validation_strings=200,
    epochs=30,
    batch_size=32,
    seed=0,
    verbose=0,
):
    """Fit the strings network with CTC on ``strings`` new training strings a round, made from
    the training voices' clips; strings of the validation takes stop it early (the same
    ``validation_strings`` every run). At most ``epochs`` rounds and ``seconds`` (None: no time
    limit). Returns the Keras history.
    """
    batches = StringBatches(split.train, strings, batch_size, np.random.default_rng([seed, 2]))
    waves, labels = make_strings(split.validation, validation_strings, np.random.default_rng(1))
    return fit(
        model,
        as_dataset(batches, label_shape=(None,)),
        (pad_batch(waves), label_batch(labels)),
        epochs=epochs,
        patience=4,
        max_seconds=seconds,
        callbacks=[cosine_schedule(learning_rate, seconds, epochs)],
        verbose=verbose,
    )


def output_frames(samples):
    """Frames the recogniser writes for ``samples`` samples: 10 ms frames, then each stride."""
    frames = LogMelSpectrogram().frames(np.asarray(samples))
    for stride in CONV_STRIDES:
        frames = -(-frames // stride)
    return frames


# ---------------------------------------------------------------- recognising and scoring


def classify(model, waves, batch_size=128):
    """Digits (ints) for clips, each centred in the classifier's window."""
    windows = np.stack([in_window(wave, DIGIT_WINDOW) for wave in waves])
    return np.argmax(model.predict(windows, batch_size=batch_size, verbose=0), axis=-1)


def frame_logits(model, waves):
    """Per-frame logits (batch, frames, 11) of a padded batch, and each wave's frame count."""
    batch = pad_batch(waves, multiple=BUCKET)  # few lengths: predict compiles once for each
    logits = np.asarray(model.predict_on_batch(batch))  # one batch: less set-up than predict
    return logits, output_frames([len(wave) for wave in waves])


def decode(logits, lengths, beam_width=1):
    """CTC decoding of per-frame logits (:func:`common.models.ctc.ctc_decode`): digit strings
    like ``"0412"``. Beam width 1 is greedy; wider beams keep that many prefixes."""
    return ["".join(map(str, digits)) for digits in ctc_decode(logits, lengths, beam_width)]


def recognise(model, waves, beam_width=1, batch_size=32):
    """Digit strings for waveforms of any lengths, in order (sorted internally into batches)."""
    order = np.argsort([len(wave) for wave in waves])
    found = [None] * len(waves)
    for start in range(0, len(waves), batch_size):
        rows = order[start : start + batch_size]
        logits, lengths = frame_logits(model, [waves[r] for r in rows])
        for row, text in zip(rows, decode(logits, lengths, beam_width)):
            found[row] = text
    return found


def split_and_classify(classifier, waves):
    """The baseline for strings: cut at pauses, classify each piece with the one-digit model."""
    pieces, owners = [], []
    for index, wave in enumerate(waves):
        for start, end in segments(wave):
            pieces.append(wave[start:end])
            owners.append(index)
    digits = classify(classifier, pieces) if pieces else []
    found = [""] * len(waves)
    for owner, digit in zip(owners, digits):
        found[owner] += str(digit)
    return found


def digit_error_rate(references, hypotheses):
    """Edits (substituted, dropped or extra digits) per reference digit, over all strings."""
    return symbol_error_rate(references, hypotheses)


def string_scores(references, hypotheses, seconds):
    """Digit error rate, whole-string accuracy and seconds, for one row of the strings table."""
    exact = np.mean([ref == hyp for ref, hyp in zip(references, hypotheses)])
    return {
        "digit error rate": digit_error_rate(references, hypotheses),
        "strings right": float(exact),
        "seconds": seconds,
    }


def as_text(digit_lists):
    return ["".join(map(str, digits)) for digits in digit_lists]


# ---------------------------------------------------------------- the classical baselines


def mfccs(waves, coefficients=12, step=2):
    """Each wave's (frames / step, coefficients) MFCCs, mean-normalised.

    MFCCs are the log-mel bands' cosine transform, first terms: the spectrum's
    broad shape. The 0th (overall loudness) is left out and each clip's mean is
    taken away (cepstral mean normalisation): a louder voice or another
    microphone shifts every frame alike, and should not change the digit.
    """
    return _cepstra(log_mels(waves), coefficients, step)


def _cepstra(spectrograms, coefficients=12, step=2):
    """:func:`mfccs` of log-mel spectrograms already computed."""
    from scipy.fft import dct

    found = []
    for spectra in spectrograms:
        cepstra = dct(spectra[::step], type=2, norm="ortho", axis=-1)[:, 1 : coefficients + 1]
        found.append(cepstra - cepstra.mean(axis=0))
    return found


def dtw_distances(query, templates):
    """Dynamic-time-warping distance from ``query`` (frames, d) to each template.

    ``templates`` is a list of (frames_k, d) arrays. Each cell of the
    cumulative cost adds the frame distance to the cheapest of its three
    predecessors (match, stretch the query, stretch the template); all
    templates advance together. Divided by the
    two lengths' sum, so long and short templates compare fairly.
    """
    longest = max(len(t) for t in templates)
    # Padding is never read: cell (i, j) depends only on cells at or before j.
    padded = np.zeros((len(templates), longest, query.shape[1]))
    for k, template in enumerate(templates):
        padded[k, : len(template)] = template
    lengths = np.array([len(t) for t in templates])
    # (templates, query frames, template frames) Euclidean frame distances
    cost = np.sqrt(((query[None, :, None, :] - padded[:, None, :, :]) ** 2).sum(-1))
    total = np.full((len(templates), longest + 1), np.inf)
    total[:, 0] = 0.0
    for i in range(len(query)):
        row = np.full_like(total, np.inf)
        for j in range(1, longest + 1):
            best = np.minimum(np.minimum(total[:, j - 1], total[:, j]), row[:, j - 1])
            row[:, j] = cost[:, i, j - 1] + best
        total = row
    return total[np.arange(len(templates)), lengths] / (len(query) + lengths)


def dtw_templates(train_clips, per_digit=None, rng=None):
    """``(templates, digits)``: MFCCs of ``per_digit`` training recordings of each digit (all
    of them by default), the nearest of which names a recording's digit (:func:`dtw_classify`)."""
    keep = np.arange(len(train_clips))
    if per_digit:  # a sample of templates per digit: DTW is slow in NumPy
        rng = rng or np.random.default_rng(0)
        keep = np.concatenate(
            [
                rng.choice(np.flatnonzero(train_clips.digits == d), per_digit, replace=False)
                for d in range(10)
            ]
        )
    return mfccs([train_clips.waves[k] for k in keep]), train_clips.digits[keep]


def dtw_classify(templates, digits, waves):
    """Each wave's digit: that of the nearest template by DTW on MFCCs (1-nearest neighbour)."""
    return np.array([digits[np.argmin(dtw_distances(q, templates))] for q in mfccs(waves)])


def mfcc_statistics(waves):
    """(clips, 92): each clip's spread of MFCCs (12) and mean and spread of log-mel bands (40 + 40).

    A summary that forgets the order of the frames: what a digit sounds like
    on average, not how it unfolds. (The MFCCs' own means are zero: each
    recording's mean is taken away, see :func:`mfccs`.)
    """
    spectrograms = log_mels(waves)  # once: the MFCCs are computed from them
    rows = zip(_cepstra(spectrograms), spectrograms)
    return np.stack(
        [np.concatenate([c.std(axis=0), m.mean(axis=0), m.std(axis=0)]) for c, m in rows]
    )


def fit_logistic(train_clips):
    """Logistic regression on MFCC statistics: a model that ignores the order of the frames."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    return model.fit(mfcc_statistics(train_clips.waves), train_clips.digits)


def accuracy(actual, predicted):
    return float(np.mean(np.asarray(actual) == np.asarray(predicted)))


# ---------------------------------------------------------------- the report


NETWORK_DIGITS = "network (bidirectional GRU)"


def score_digits(model, split, templates_per_digit=20, seed=0):
    """Accuracy on the test split and on the training voices' held-out takes, beside the baselines.

    Returns ``(rows, predictions)``: ``{name: {"test", "validation", "seconds"}}``
    and the network's digits for the test voice (for the confusion matrix).
    """
    regression = fit_logistic(split.train)
    templates, labels = dtw_templates(split.train, templates_per_digit, np.random.default_rng(seed))
    methods = {
        NETWORK_DIGITS: lambda waves: classify(model, waves),
        f"DTW to {len(templates)} recordings (1-NN)": lambda waves: dtw_classify(
            templates, labels, waves
        ),
        "logistic regression, MFCC statistics": lambda waves: regression.predict(
            mfcc_statistics(waves)
        ),
    }
    rows, predictions = {}, None
    for name, predict in methods.items():
        started = time.perf_counter()
        test = predict(split.test.waves)
        seen = predict(split.validation.waves)
        rows[name] = {
            "test": accuracy(split.test.digits, test),
            "validation": accuracy(split.validation.digits, seen),
            "seconds": time.perf_counter() - started,
        }
        predictions = test if predictions is None else predictions
    return rows, predictions


def score_strings(strings, digits, waves, references, beam_width=8):
    """Digit error rate and whole strings right: CTC greedy and beam, and cutting at pauses."""
    methods = {"CTC, greedy": lambda: recognise(strings, waves, 1)}
    if beam_width > 1:
        methods[f"CTC, beam {beam_width}"] = lambda: recognise(strings, waves, beam_width)
    methods["cut at pauses + digit network"] = lambda: split_and_classify(digits, waves)
    rows, outputs = {}, {}
    for name, method in methods.items():
        started = time.perf_counter()
        outputs[name] = method()
        rows[name] = string_scores(references, outputs[name], time.perf_counter() - started)
    return rows, outputs


def table_rows(rows):
    """Scores as the report prints them: rates in %, seconds to 0.1."""
    return {
        name: {
            column: f"{value:.1f}" if column == "seconds" else f"{100 * value:.1f}%"
            for column, value in row.items()
        }
        for name, row in rows.items()
    }


def verdict(digit_rows, string_rows):
    """Plain sentences: does each network beat its baselines, and does beam search help?"""
    network = digit_rows[NETWORK_DIGITS]["test"]
    baseline = max(
        (n for n in digit_rows if n != NETWORK_DIGITS), key=lambda n: digit_rows[n]["test"]
    )
    best = digit_rows[baseline]["test"]
    said = [
        f"Digits: the network gets {100 * network:.1f}% of the test recordings right"
        + (" and beats" if network > best else ", NOT beating")
        + f" the best baseline, {baseline}, at {100 * best:.1f}%."
    ]
    ctc = min(
        (n for n in string_rows if n.startswith("CTC")),
        key=lambda n: string_rows[n]["digit error rate"],
    )
    pauses = string_rows["cut at pauses + digit network"]["digit error rate"]
    rate = string_rows[ctc]["digit error rate"]
    said.append(
        f"Strings: {ctc} gets {100 * rate:.1f} digits wrong in a hundred"
        + (", fewer than" if rate < pauses else ", NOT fewer than")
        + f" cutting at pauses ({100 * pauses:.1f})."
    )
    names = [n for n in string_rows if n.startswith("CTC")]
    if len(names) == 2:
        gain = string_rows[names[0]]["digit error rate"] - string_rows[names[1]]["digit error rate"]
        said.append(
            "Beam search and greedy decoding score the same."
            if abs(gain) < 1e-9
            else f"Beam search {'removes' if gain > 0 else 'adds'} {100 * abs(gain):.1f} "
            "errors in a hundred digits over greedy decoding."
        )
    return "\n".join(said)


def examples(waves, references, outputs, count=6):
    """The first ``count`` test strings with what CTC decoding heard (beam search, if it ran)."""
    name = [n for n in outputs if n.startswith("CTC")][-1]
    return [(references[i], outputs[name][i]) for i in range(min(count, len(waves)))]


@dataclass
class Found:
    digit_rows: dict
    string_rows: dict
    verdict: str
    examples: list
    digit_predictions: np.ndarray  # the network's digit for each test clip
    example_wave: np.ndarray  # a test string, drawn in example.png
    example_digits: np.ndarray


def run_metrics(split, trained, found):
    """metrics.json's content: both tables, the split and the training."""
    return {
        "digits": found.digit_rows,
        "strings": found.string_rows,
        "verdict": found.verdict,
        "test_speaker": split.test_speaker,
        "clips": {
            "train": len(split.train),
            "validation": len(split.validation),
            "test": len(split.test),
        },
        "rounds": {name: len(history["loss"]) for name, history in trained.histories.items()},
        "training_seconds": trained.seconds,
        "examples": [{"reference": r, "heard": h} for r, h in found.examples],
    }


def plot_run(folder, split, trained, found):
    """``confusion.png``, ``example.png`` (sound, spectrogram, CTC per frame) and ``training.png``."""
    from common.report.plots import plot_history

    folder = Path(folder)
    curves = {}
    for name, history in trained.histories.items():  # one panel per network
        curves[name], curves[f"val_{name}"] = history["loss"], history["val_loss"]
    plot_history(
        curves,
        folder / "training.png",
        metrics=tuple(trained.histories),
        title="Loss (digits: cross-entropy, strings: CTC)",
        xlabel="round",
        ylabel="loss",
    )
    plot_confusion(split.test.digits, found.digit_predictions, folder / "confusion.png", split)
    plot_ctc_example(
        trained.strings,
        found.example_wave,
        as_text([found.example_digits])[0],
        folder / "example.png",
    )


def plot_confusion(actual, predicted, path=None, split=None):
    """Which digit was heard (across) for each digit said (down), on the test split.

    Saved at ``path`` (returning it), or returned as a figure when there is no path.
    """
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    from common.report.plots import _laid_out, save_figure

    counts = confusion_matrix(actual, predicted, labels=range(10))
    figure, axis = plt.subplots(figsize=(5.2, 4.6))
    axis.imshow(counts, cmap="Blues")
    for (said, heard), count in np.ndenumerate(counts):
        if count:
            color = "white" if count > counts.max() / 2 else "black"
            axis.text(heard, said, count, ha="center", va="center", fontsize=8, color=color)
    axis.set(xticks=range(10), yticks=range(10), xlabel="heard", ylabel="said")
    if split is not None:
        axis.set_title(f"Single digits: {split.tested}", fontsize=9)
    return save_figure(figure, path) if path else _laid_out(figure)


def plot_ctc_example(model, wave, reference, path=None):
    """A test string: waveform, log-mel spectrogram, and each frame's CTC probabilities.

    Saved at ``path`` (returning it), or returned as a figure when there is no path.
    """
    import matplotlib.pyplot as plt

    from common.report.plots import _laid_out, save_figure

    logits, lengths = frame_logits(model, [wave])
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits[0, : lengths[0]]))
    heard = decode(logits, lengths)[0]
    figure, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    seconds = np.arange(len(wave)) / SAMPLE_RATE
    axes[0].plot(seconds, wave, linewidth=0.5)
    axes[0].set(ylabel="amplitude", title=f"said {reference}, heard {heard or '(nothing)'}")
    spectra = log_mels([wave])[0]
    axes[1].imshow(
        spectra.T,
        origin="lower",
        aspect="auto",
        extent=(0, len(wave) / SAMPLE_RATE, 0, spectra.shape[1]),
    )
    axes[1].set(ylabel="mel band")
    frame = len(wave) / SAMPLE_RATE / len(probabilities)
    axes[2].imshow(
        probabilities.T,
        origin="lower",
        aspect="auto",
        cmap="Greys",
        extent=(0, len(probabilities) * frame, -0.5, 10.5),
    )
    axes[2].set(
        yticks=range(11),
        yticklabels=["blank"] + [str(d) for d in range(10)],
        xlabel="seconds",
        ylabel="CTC output",
    )
    return save_figure(figure, path) if path else _laid_out(figure)
