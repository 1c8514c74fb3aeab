"""Character-level language models: the text and its vocabulary, the model, its training run,
a fast sampler and the run's report.

A character model reads character ids and predicts, at every position, the
logits of the next character (an aligned many-to-many network)::

    import common.tasks.charlm as generation
    corpus = generation.Corpus.from_text(text, seq_length=100, val_chars=100_000)
    model = generation.build_char_model(corpus.vocabulary, cell="lstm", units=(256,))
    generation.compile_char_model(model, learning_rate=5e-3)
    train = generation.sequence_dataset(corpus.train_ids, 100, 64, seed=0)
    model.fit(train, steps_per_epoch=100, ...)
    sampler = generation.CharSampler(model)
    texts = sampler.generate("Romeo.\\n", length=500, samples=4, temperature=0.8, top_k=20)

Why a sampler of its own: the usual tutorial loop calls ``model.predict`` on a
sliding window for every new character, so each character costs a full pass
over the window (plus ``predict``'s set-up). :class:`CharSampler` instead
reads the prompt once, keeps each recurrent layer's state, and then runs one
step of each cell per new character, all inside one compiled TensorFlow
function. That is hundreds of times faster, and it produces the same
characters as the full re-run (see ``tests/test_textgen.py``).

The vocabulary travels in the ``.keras`` file as the configuration of a
pass-through layer named ``"vocabulary"``, so ``keras.models.load_model``
alone restores a model that can encode prompts and decode samples, once this
module is imported (it registers the layer with Keras, package
``rnn_workshop``).
"""

import gzip
import lzma
import math
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from common.data.windows import window_starts
from common.models import steps as training_steps
from common.models.recurrent import as_units_tuple, check_fraction, recurrent_layer
from common.models.training import CosineDecayInTime
from common.report.metrics import print_table
from common.report.plots import plot_history

PADDING_ID = 0  # reserved: the Embedding masks id 0 (mask_zero=True), so no character uses it
UNKNOWN_ID = 1  # any character the training text did not contain
FIRST_CHARACTER_ID = 2
CHUNK = 128  # characters per call of the compiled generator
VALIDATION_FRACTION = 0.1  # the last 10% of the text is held out


@keras.saving.register_keras_serializable(package="rnn_workshop")
class CharacterVocabulary(keras.layers.Layer):
    """The character set of a text, carried in a model as a pass-through layer.

    Id 0 is padding, id 1 stands for any unknown character, and the characters
    of the training text, sorted, take ids 2, 3, ... The layer returns its
    input unchanged; it is in the model only so that ``model.save`` stores the
    characters in the ``.keras`` file.

    >>> vocabulary = CharacterVocabulary.from_text("abca")
    >>> vocabulary.size, vocabulary.encode("cab").tolist(), vocabulary.decode([4, 2])
    (5, [4, 2, 3], 'ca')

    Args:
        characters: a string of distinct characters, in id order.
    """

    def __init__(self, characters, **kwargs):
        kwargs.setdefault("name", "vocabulary")
        super().__init__(**kwargs)
        characters = str(characters)
        if len(set(characters)) != len(characters) or not characters:
            raise ValueError(
                f"Expected a non-empty string of distinct characters. Received: characters={characters!r}"
            )
        self.characters = characters
        self.supports_masking = True
        self.id_of = {
            character: index + FIRST_CHARACTER_ID for index, character in enumerate(characters)
        }
        self.lookup = np.array(["", ""] + list(characters))

    @classmethod
    def from_text(cls, text, **kwargs):
        """Every distinct character of ``text`` (pass the training text only)."""
        return cls("".join(sorted(set(text))), **kwargs)

    @property
    def size(self):
        """Number of ids, padding and unknown included: the model's output width."""
        return len(self.characters) + FIRST_CHARACTER_ID

    def unknown_characters(self, text):
        """The distinct characters of ``text`` outside the vocabulary, sorted."""
        return sorted(set(text) - set(self.id_of))

    def encode(self, text):
        """A string as an int32 array of ids; unknown characters become ``UNKNOWN_ID``."""
        return np.array(
            [self.id_of.get(character, UNKNOWN_ID) for character in text], dtype="int32"
        )

    def decode(self, ids):
        """Ids back to a string (padding and unknown ids give nothing)."""
        return "".join(self.lookup[np.asarray(ids, dtype="int64")])

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "characters": self.characters}


def build_char_model(
    vocabulary, *, cell="lstm", units=(256,), embedding_dim=64, dropout=0.0, name="char_model"
):
    """Embedding, stacked LSTM/GRU, dense logits per position; the vocabulary rides along.

    Ids (batch, timesteps) in, next-character logits (batch, timesteps,
    vocabulary.size) out. The :class:`CharacterVocabulary` layer is appended
    after the logits.

    >>> vocabulary = CharacterVocabulary.from_text("to be or not to be")
    >>> model = build_char_model(vocabulary, units=(16,), embedding_dim=8, dropout=0.1)
    >>> tuple(model(np.ones((2, 7), dtype="int32")).shape)
    (2, 7, 9)

    Dropout here is *locked* (variational) dropout on the connections between
    layers, never on the recurrent state: ``SpatialDropout1D`` draws one mask
    per sequence and reuses it at every step (Gal and Ghahramani, 2016; the
    "LockedDropout" of AWD-LSTM). Keras' ``LSTM(dropout=...)`` does the same
    for its inputs; the difference is before the head, where a plain
    ``Dropout`` layer draws a fresh mask at every position, fifty times as many
    random numbers per step. Inside an XLA-compiled CPU step that was the slow
    part (the README has the measurement); locked masks train as fast as no
    dropout. The recurrent layers keep their default settings, so a GPU still
    runs them with cuDNN.

    Args:
        vocabulary: a :class:`CharacterVocabulary`.
        cell: ``"lstm"`` or ``"gru"`` (both keep the cuDNN kernel on a GPU), or ``"rnn"``.
        units: units per recurrent layer, e.g. ``(512,)`` or ``(256, 256)``.
        embedding_dim: size of each character's learned vector.
        dropout: rate of the locked dropout after the embedding, between
            recurrent layers and before the head; 0 for none.
    """
    if not isinstance(vocabulary, CharacterVocabulary):
        raise ValueError(
            f"Expected a CharacterVocabulary. Received: vocabulary={type(vocabulary).__name__}"
        )
    check_fraction("dropout", dropout)
    char_ids = keras.Input(shape=(None,), dtype="int64", name="inputs")
    # mask_zero: id 0 is padding (PADDING_ID), masked out of the recurrence.
    x = keras.layers.Embedding(vocabulary.size, embedding_dim, mask_zero=True, name="embedding")(
        char_ids
    )
    for depth, layer_units in enumerate(as_units_tuple(units), start=1):
        if dropout:  # one mask per sequence, the same at every step
            x = keras.layers.SpatialDropout1D(dropout, name=f"dropout_{depth}")(x)
        x = recurrent_layer(cell, layer_units, return_sequences=True, name=f"rnn_{depth}")(x)
    if dropout:
        x = keras.layers.SpatialDropout1D(dropout, name="head_dropout")(x)
    logits = keras.layers.Dense(vocabulary.size, name="head")(x)
    return keras.Model(char_ids, vocabulary(logits), name=name)


def vocabulary_of(model):
    """The :class:`CharacterVocabulary` inside ``model``; ``ValueError`` if it has none."""
    for layer in model.layers:
        if isinstance(layer, CharacterVocabulary):
            return layer
    raise ValueError(
        f"Expected a model built by build_char_model (with a 'vocabulary' layer). Received: model {model.name!r}"
    )


# ---------------------------------------------------------------- the text

# Training holds about 27 bytes per character of text (ids, slices, batches): 40 MB keeps a
# run under about 2 GB of memory, and is eight times the bundled plays.
MAX_TEXT_BYTES = 40_000_000


def check_text_size(path, name=None, limit=MAX_TEXT_BYTES):
    """Refuse a text of more than ``limit`` bytes before it is read whole into memory.

    A plain file is judged by its size; a gzip or xz file is unpacked only as far
    as the limit. A missing or damaged file passes: reading it says what is wrong.

    Raises:
        ValueError: the text is longer than ``limit``; the message states the limit.
    """
    path, name = Path(path), name or str(path)
    if not path.is_file():  # a pipe can be read once only: its reader takes it whole
        return
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
        opener = None
        if magic[:2] == b"\x1f\x8b" or path.suffix.lower() == ".gz":
            opener = gzip.open
        elif magic == b"\xfd7zXZ\x00" or path.suffix.lower() == ".xz":
            opener = lzma.open
        if opener is None:
            size = path.stat().st_size
        else:
            with opener(path, "rb") as handle:
                size = 0
                while size <= limit and (chunk := handle.read(1 << 20)):
                    size += len(chunk)
    except (OSError, EOFError, lzma.LZMAError, zlib.error):
        return
    if size > limit:
        received = f"{size / 1e6:,.0f} MB" if opener is None else "more once unpacked"
        unpack = {None: "", gzip.open: "zcat FILE | ", lzma.open: "xzcat FILE | "}[opener]
        raise ValueError(
            f"{name}: expected at most {limit / 1e6:g} MB of text (training needs about 27 "
            f"times that in memory); received {received}. Train on a part of it, e.g. "
            f"{unpack}head -c {limit} {'' if opener else 'FILE '}> part.txt"
        )


def split_text(text, seq_length, validation_fraction=VALIDATION_FRACTION):
    """The first 90% of ``text`` for training, the last 10% held out: split by position.

    A random split would put neighbouring characters on both sides, so the
    held-out loss would flatter the model.

    >>> split_text("x" * 90 + "y" * 10, seq_length=5)[1]
    'yyyyyyyyyy'

    Raises:
        ValueError: either part is shorter than one training sequence and its next character.
    """
    split = int(len(text) * (1 - validation_fraction))
    train_text, held_out = text[:split], text[split:]
    if min(len(train_text), len(held_out)) < seq_length + 1:
        needed = math.ceil((seq_length + 1) / validation_fraction) + 1
        raise ValueError(
            f"the text is too short: {len(text):,} characters, but {seq_length + 1}-character "
            f"training sequences with the last {validation_fraction:.0%} held out need at least "
            f"{needed:,}"
        )
    return train_text, held_out


@dataclass
class Corpus:
    """A text split by position, its characters as ids of the training part's vocabulary."""

    text: str
    train_text: str  # the first 90%
    held_out: str  # the last 10%
    vocabulary: CharacterVocabulary
    train_ids: np.ndarray
    val_ids: np.ndarray  # the scored start of the held-out text, one more id than is scored
    source: str = ""  # where the text came from, for the report

    @classmethod
    def from_text(cls, text, seq_length, val_chars, source=""):
        """Split ``text`` (:func:`split_text`) and encode it; ``val_chars`` held-out
        characters are scored. The vocabulary is the training text's only: no leakage."""
        train_text, held_out = split_text(text, seq_length)
        vocabulary = CharacterVocabulary.from_text(train_text)
        train_ids = vocabulary.encode(train_text)
        val_ids = vocabulary.encode(held_out)[: val_chars + 1]
        return cls(text, train_text, held_out, vocabulary, train_ids, val_ids, source)


# ---------------------------------------------------------------- training data


def sequence_dataset(ids, seq_length, batch_size, seed=None):
    """Batches of (inputs, targets): contiguous slices of ``ids``, targets shifted by one character.

    The slices sit on a grid of ``seq_length`` steps (``window_starts``, as
    ``common.data.windows`` cuts series). With a ``seed`` (training), each
    slice starts at a random offset within its stretch of the text and the
    slices are shuffled, and the stream repeats forever; without (validation),
    the slices tile the text once, in order. A text with fewer slices than
    ``batch_size`` gives smaller batches.

    Returns:
        A dataset of int32 (inputs, targets) batches, each (batch, seq_length).
    """
    ids = tf.constant(ids, dtype=tf.int32)
    # Each slice needs its next character: a "window" of seq_length and a "horizon" of 1.
    starts = window_starts(int(ids.shape[0]), seq_length, horizon=1, stride=seq_length)
    count = len(starts)
    if seed is None:
        starts = tf.data.Dataset.from_tensor_slices(starts)
    else:
        if count > 1:
            count -= 1  # leave room for the random offset
        offset_range = min(seq_length, int(ids.shape[0]) - count * seq_length)
        offsets = tf.data.Dataset.random(seed=seed).map(lambda value: value % offset_range)
        # Shuffle all slice positions (a few hundred KB of int64), afresh on every pass.
        starts = (
            tf.data.Dataset.from_tensor_slices(starts[:count])
            .shuffle(count, seed=seed, reshuffle_each_iteration=True)
            .repeat()
        )
        starts = tf.data.Dataset.zip(starts, offsets).map(lambda start, offset: start + offset)

    def slice_pair(start):
        window = ids[start : start + seq_length + 1]
        return window[:-1], window[1:]

    batches = starts.map(slice_pair, num_parallel_calls=tf.data.AUTOTUNE).batch(
        min(batch_size, count), drop_remainder=True
    )
    return batches.prefetch(tf.data.AUTOTUNE)


def ngram_baselines(train_ids, val_ids, vocabulary_size):
    """Validation nats/char of models that only count: uniform, unigram and bigram (add-one smoothing)."""
    unigram = np.bincount(train_ids, minlength=vocabulary_size) + 1.0
    unigram /= unigram.sum()
    bigram = np.ones((vocabulary_size, vocabulary_size))
    np.add.at(bigram, (train_ids[:-1], train_ids[1:]), 1.0)
    bigram /= bigram.sum(axis=1, keepdims=True)
    usable = vocabulary_size - FIRST_CHARACTER_ID + 1  # characters plus "unknown"
    return {
        "uniform": math.log(usable),
        "unigram (character frequencies)": float(-np.log(unigram[val_ids[1:]]).mean()),
        "bigram (previous character)": float(-np.log(bigram[val_ids[:-1], val_ids[1:]]).mean()),
    }


def loss_by_position(model, ids, length, batch_size=32):
    """Mean next-character loss (nats) at each position of ``length``-character slices.

    ``ids`` is cut into consecutive slices of ``length`` characters (the
    remainder is dropped), and each slice is read from a zero state, as
    validation reads its slices. Entry ``i`` of the result, shape
    ``(length,)``, is the loss of predicting the character after position
    ``i``, averaged over all slices: entry 0 is guessed from one character of
    context, entry 49 from fifty. Its mean is the loss on slices of that length.

    >>> vocabulary = CharacterVocabulary.from_text("abc")
    >>> model = build_char_model(vocabulary, units=(8,), embedding_dim=4)
    >>> loss_by_position(model, vocabulary.encode("abcabcabc"), 4).shape
    (4,)
    """
    if length < 1 or batch_size < 1:
        raise ValueError(
            f"Expected length >= 1 and batch_size >= 1. Received: length={length}, "
            f"batch_size={batch_size}"
        )
    ids = np.asarray(ids)
    count = (len(ids) - 1) // length
    if count < 1:
        raise ValueError(
            f"Expected at least length + 1 = {length + 1} ids. Received: {len(ids)} ids"
        )
    inputs = ids[: count * length].reshape(count, length)
    targets = ids[1 : count * length + 1].reshape(count, length)
    total = np.zeros(length)
    for start in range(0, count, batch_size):
        logits = keras.ops.cast(
            model(inputs[start : start + batch_size], training=False), "float32"
        )
        losses = keras.losses.sparse_categorical_crossentropy(
            targets[start : start + batch_size], logits, from_logits=True
        )
        total += keras.ops.convert_to_numpy(keras.ops.sum(losses, axis=0))
    return total / count


# ---------------------------------------------------------------- the training run


def compile_char_model(model, learning_rate, jit_compile=None):
    """Adam, gradients clipped to norm 1, on the next character's cross-entropy from logits.

    ``jit_compile=None`` lets :func:`use_xla` decide. Returns ``model``.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=use_xla() if jit_compile is None else jit_compile,
    )
    return model


def choose_training_step(
    requested,
    vocabulary,
    *,
    batch_size,
    seq_length,
    learning_rate,
    cache_file=None,
    **model_options,
):
    """How to run the training step, and one line saying why: ``(step, line)``.

    ``requested`` is one of :data:`common.models.steps.STEPS` (used as asked) or
    ``"auto"``: on a GPU or under a distribution strategy Keras decides (the
    step returned is ``"auto"``); on a CPU each way is timed for a few steps on
    a model built with ``model_options`` (as :func:`build_char_model` takes
    them) and the fastest is taken, remembered in ``cache_file`` for the next run.
    """
    if requested != "auto":
        training_steps.check_step(requested)
        return requested, f"Training step: {requested} ({TRAINING_STEP_NAMES[requested]}), as asked"
    if tf.distribute.has_strategy() or tf.config.list_physical_devices("GPU"):
        return "auto", "Training step: Keras' choice for this device"

    def build(step):
        with training_steps.dtype_policy(step):
            model = build_char_model(vocabulary, **model_options)
        return compile_char_model(model, learning_rate, jit_compile=step == "xla")

    ids = np.random.default_rng(0).integers(
        FIRST_CHARACTER_ID, vocabulary.size, size=(batch_size, seq_length + 1)
    )
    # What the speed depends on besides the processor; the vocabulary only by its order of size.
    options = ", ".join(f"{name} {value}" for name, value in sorted(model_options.items()))
    key = f"char model: {options}, vocabulary < {2 ** math.ceil(math.log2(vocabulary.size))}, "
    key += f"batch {batch_size} x {seq_length}"
    step, timings = training_steps.fastest_step(
        build, ids[:, :-1], ids[:, 1:], cache_file=cache_file, key=key
    )
    chars = batch_size * seq_length
    speeds = ", ".join(
        f"{name} {chars / timing['wall_seconds']:,.0f}" for name, timing in timings.items()
    )
    when = "timed on this CPU before" if timings[step].get("cached") else "just timed on this CPU"
    return step, (
        f"Training step: {step} ({TRAINING_STEP_NAMES[step]}), the fastest {when}; characters "
        f"per second: {speeds}"
    )


TRAINING_STEP_NAMES = {
    "xla": "one XLA-compiled program",
    "plain": "Keras' default TensorFlow graph",
    "bf16": "bfloat16 arithmetic, float32 weights",
}


def use_xla():
    """``jit_compile`` when no training step was chosen: XLA on a CPU (the faster way on the
    AMD CPU it was measured on; :func:`choose_training_step` times the ways on yours).

    On a GPU, "auto" lets Keras pick the cuDNN kernels instead, which XLA cannot
    compile; under a distribution strategy XLA cannot reach the other replicas' weights.
    """
    if tf.distribute.has_strategy():
        return False
    return "auto" if tf.config.list_physical_devices("GPU") else True


def learning_rate_schedule(schedule, learning_rate, seconds):
    """The callback that lowers the learning rate: ``"plateau"`` or ``"cosine"``.

    ``"plateau"`` halves it whenever validation loss stops falling (repeatable:
    it reads the loss, not the clock); ``"cosine"`` lowers it along a cosine to
    a tenth of ``learning_rate`` by the end of ``seconds`` of training.
    """
    if schedule == "cosine":
        return CosineDecayInTime(seconds, learning_rate, final_fraction=0.1)
    if schedule == "plateau":
        return keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=1, min_lr=1e-4
        )
    raise ValueError(f'Expected schedule "plateau" or "cosine". Received: schedule={schedule!r}')


class EpochReport(keras.callbacks.Callback):
    """Per epoch: wall time, training speed, validation nats and bits per character, and a sample.

    ``epochs`` collects one row (a dict) per epoch, ``samples`` a (row, text)
    pair per epoch, and ``best_weights`` the weights of the lowest finite
    validation loss so far (Ctrl-C skips EarlyStopping's restore, so they are
    kept here too). ``sampler`` is a :class:`CharSampler` of the model.
    """

    def __init__(self, chars_per_batch, sample_prompt, sample_length, temperature, top_k, seed):
        super().__init__()
        self.chars_per_batch = chars_per_batch
        self.sample_settings = dict(temperature=temperature, top_k=top_k, seed=seed)
        self.sample_prompt, self.sample_length = sample_prompt, sample_length
        self.epochs, self.samples = [], []
        self.best_weights = None

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

    @property
    def best(self):
        """The row of the epoch with the lowest validation loss."""
        return min(self.epochs, key=lambda row: row["val_loss_nats"])

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        self.sampler = CharSampler(self.model)

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
            f"epoch {row['epoch']:3d}  {row['wall_seconds'] / 60:5.2f} min  "
            f"train {row['train_loss_nats']:.3f}  "
            f"validation {val_loss:.3f} nats/char = {row['val_bits_per_char']:.3f} bits/char  "
            f"{speed}   | {(self.sample_prompt + text)[:60]!r}",
            flush=True,
        )


# Why a field of metrics.json can be NaN, for ``write_json``'s notes.
RESUMED = "trained before a multi-worker run was restarted and resumed from its checkpoint"
METRIC_NOTES = {
    "wall_seconds": RESUMED,
    "learning_rate": RESUMED,
    "train_chars_per_second": "not timed: the epoch had one batch (the first is not timed), "
    f"or was {RESUMED}",
    "chars_per_second": "every epoch had one batch, and the first is not timed",
}


def run_metrics(corpus, report, baselines, model, training):
    """A training run's record for metrics.json: the data, the model's and the training's
    settings (dicts), every epoch's row, the best epoch's loss and the baselines'.

    Args:
        corpus: the :class:`Corpus` trained on.
        report: the run's :class:`EpochReport`.
        baselines: :func:`ngram_baselines` of the corpus.
    """
    best = report.best
    return {
        "data": corpus.source,
        "characters": {
            "total": len(corpus.text),
            "train": len(corpus.train_text),
            "validation_scored": len(corpus.val_ids) - 1,
            "vocabulary": len(corpus.vocabulary.characters),
        },
        "model": model,
        "training": training,
        "epochs": report.epochs,
        "best_epoch": best["epoch"],
        "val_loss_nats": best["val_loss_nats"],
        "val_bits_per_char": best["val_bits_per_char"],
        "baselines_nats": baselines,
    }


def mean_speed(epochs):
    """Mean training characters per second over the epochs that were timed (NaN if none)."""
    speeds = [row["train_chars_per_second"] for row in epochs]
    speeds = [speed for speed in speeds if math.isfinite(speed)]
    return float(np.mean(speeds)) if speeds else math.nan


# ---------------------------------------------------------------- sampling


def choose_next(logits, temperature, top_k, seed):
    """Pick one id per row of ``logits`` (batch, vocabulary size).

    - Padding and unknown ids are never chosen.
    - ``temperature == 0``: greedy, the most likely id.
    - ``temperature > 0``: sample from ``softmax(logits / temperature)``; below 1
      sharpens the distribution (safer, more repetitive text), above 1 flattens it.
    - ``top_k > 0``: sample only among the ``top_k`` most likely ids (ties with
      the k-th may add a few); ``top_k == 1`` is greedy. 0 means no limit.
    - ``seed``: shape (2,) int32; the same seed gives the same choice.
    """
    logits = tf.cast(logits, "float32")
    vocabulary_size = tf.shape(logits)[-1]
    never = tf.one_hot(PADDING_ID, vocabulary_size, on_value=True, off_value=False) | tf.one_hot(
        UNKNOWN_ID, vocabulary_size, on_value=True, off_value=False
    )
    logits = tf.where(never[None, :], tf.constant(-np.inf, "float32"), logits)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    scaled = logits / tf.maximum(temperature, 1e-6)

    def keep_top_k():
        k = tf.clip_by_value(top_k, 1, vocabulary_size)
        kth_largest = tf.gather(tf.sort(scaled, axis=-1, direction="DESCENDING"), [k - 1], axis=-1)
        return tf.where(scaled < kth_largest, tf.constant(-np.inf, "float32"), scaled)

    scaled = tf.cond(top_k > 0, keep_top_k, lambda: scaled)  # the sort costs time: only when asked
    sampled = tf.cast(tf.random.stateless_categorical(scaled, 1, seed)[:, 0], tf.int32)
    return tf.where(temperature > 0, sampled, greedy)


class CharSampler:
    """Generate text from a character model, one recurrent step per new character.

    The model's layers are reused as they are: its ``Embedding``, each
    recurrent layer's cell (``LSTMCell``/``GRUCell``/``SimpleRNNCell``), and its
    dense head. The prompt is read once, one step per character, and each layer's
    state is carried forward; then every new character costs one more step. The
    steps run in a ``tf.function`` compiled with XLA, 128 characters per call,
    so Python is not involved per character.

    Several samples run as one batch: the same prompt, independent draws.

    Args:
        model: a model from :func:`build_char_model` (trained, or reloaded with
            ``keras.models.load_model``).
        jit_compile: compile the generation loop with XLA (faster per character,
            a second or two to compile for each new batch size).
    """

    def __init__(self, model, jit_compile=True):
        self.model = model
        self.vocabulary = vocabulary_of(model)
        self.embedding = model.get_layer("embedding")
        self.recurrent_layers = [
            layer for layer in model.layers if isinstance(layer, keras.layers.RNN)
        ]
        if not self.recurrent_layers:
            raise ValueError(
                f"Expected a model with recurrent layers. Received: model {model.name!r}"
            )
        self.head = model.get_layer("head")
        # Compiled once per batch size: the prompt reader for any prompt length, the
        # generator with XLA for a fixed chunk of characters (any length is whole chunks).
        self._read_prompt_compiled = tf.function(self._read_prompt, reduce_retracing=True)
        self._generate_chunk_compiled = tf.function(self._generate_chunk, jit_compile=jit_compile)

    def initial_states(self, batch_size):
        """Zero states, one list per recurrent layer (LSTM: [h, c]; GRU and RNN: [h])."""
        states = []
        for layer in self.recurrent_layers:
            state_size = layer.cell.state_size
            sizes = state_size if isinstance(state_size, (list, tuple)) else [state_size]
            states.append([tf.zeros((batch_size, size)) for size in sizes])
        return states

    def step(self, char_ids, states):
        """One character per row in, next-character logits and the new states out."""
        x = tf.gather(
            self.embedding.embeddings, char_ids
        )  # the Embedding's lookup, without its padding mask
        new_states = []
        for layer, state in zip(self.recurrent_layers, states):
            x, state = layer.cell(x, state, training=False)
            state = state if isinstance(state, (list, tuple)) else [state]
            # float32 between steps: a model trained in bfloat16 computes in it, the loop keeps one type
            new_states.append([tf.cast(part, "float32") for part in state])
        return tf.cast(self.head(x), "float32"), new_states

    def _read_prompt(self, prompt_ids, samples):
        """Run the prompt through the network once; return the last logits and the states."""
        states = self.initial_states(samples)
        logits = tf.zeros((samples, self.vocabulary.size))

        def read_one(position, logits, states):
            logits, states = self.step(tf.fill([samples], prompt_ids[position]), states)
            return position + 1, logits, states

        _, logits, states = tf.while_loop(
            lambda position, logits, states: position < tf.shape(prompt_ids)[0],
            read_one,
            (0, logits, states),
        )
        return logits, states

    def _generate_chunk(self, logits, states, temperature, top_k, seed, offset):
        """``CHUNK`` new characters per row, then the logits and states to carry on from."""
        generated = tf.TensorArray(tf.int32, size=CHUNK)

        def write_one(position, logits, states, generated):
            char_ids = choose_next(logits, temperature, top_k, tf.stack([seed, offset + position]))
            logits, states = self.step(char_ids, states)
            return position + 1, logits, states, generated.write(position, char_ids)

        _, logits, states, generated = tf.while_loop(
            lambda position, *_: position < CHUNK, write_one, (0, logits, states, generated)
        )
        return tf.transpose(generated.stack()), logits, states

    def generate_ids(self, prompt, length, *, samples=1, temperature=1.0, top_k=0, seed=0):
        """Ids of ``samples`` continuations of ``prompt``, shape (samples, length)."""
        if not prompt:
            raise ValueError('Expected a prompt of at least one character. Received: prompt=""')
        unknown = self.vocabulary.unknown_characters(prompt)
        if unknown:
            raise ValueError(
                f"Expected prompt characters from the training text. Received unknown characters: {unknown}"
            )
        if temperature < 0:
            raise ValueError(
                f"Expected temperature >= 0 (0 is greedy). Received: temperature={temperature}"
            )
        if top_k < 0:
            raise ValueError(f"Expected top_k >= 0 (0 means no limit). Received: top_k={top_k}")
        # samples stays a Python int: the batch size is fixed per compiled function.
        logits, states = self._read_prompt_compiled(
            tf.constant(self.vocabulary.encode(prompt)), int(samples)
        )
        settings = (
            tf.constant(float(temperature), tf.float32),
            tf.constant(int(top_k), tf.int32),
            tf.constant(int(seed) % (2**31 - 1), tf.int32),
        )
        chunks = []
        for offset in range(0, length, CHUNK):
            ids, logits, states = self._generate_chunk_compiled(
                logits, states, *settings, tf.constant(offset, tf.int32)
            )
            chunks.append(ids.numpy())
        return (
            np.concatenate(chunks, axis=1)[:, :length]
            if chunks
            else np.zeros((samples, 0), "int32")
        )

    def generate(self, prompt, length, *, samples=1, temperature=1.0, top_k=0, seed=0):
        """``samples`` continuations of ``prompt``, each ``length`` characters (prompt not included).

        Args:
            prompt: text to start from; every character must be in the vocabulary.
            length: characters to generate after the prompt.
            samples: continuations generated together, as one batch.
            temperature: 0 for greedy, else the softmax temperature (see :func:`choose_next`).
            top_k: sample among the ``top_k`` most likely characters only; 0 for all.
            seed: the same seed, prompt and settings give the same text.
        """
        ids = self.generate_ids(
            prompt, length, samples=samples, temperature=temperature, top_k=top_k, seed=seed
        )
        return [self.vocabulary.decode(row) for row in ids]


def generate_by_rerunning(model, prompt, length):
    """Greedy text the slow way: re-run the whole model over the growing text for each character.

    The reference that :class:`CharSampler` must agree with at temperature 0.
    The text is padded on the right to one fixed length, so the model is
    compiled once; the network reads left to right, so what follows position
    ``t`` cannot change the logits at ``t``.
    """
    vocabulary = vocabulary_of(model)
    ids = np.full((1, len(prompt) + length), FIRST_CHARACTER_ID, dtype="int32")
    ids[0, : len(prompt)] = vocabulary.encode(prompt)
    run_model = tf.function(lambda inputs: model(inputs, training=False))
    for position in range(len(prompt), len(prompt) + length):
        logits = run_model(tf.constant(ids))[:, position - 1]
        ids[0, position] = int(choose_next(logits, 0.0, 0, tf.constant([0, 0]))[0])
    return vocabulary.decode(ids[0, len(prompt) :])


def predict_window_loop(model, prompt, length, window=100, temperature=1.0, seed=0):
    """The keras.io-style loop: ``model.predict`` on the last ``window`` characters, once per character.

    Kept as the baseline for ``bench/textgen.py``: each new character re-reads
    the whole window and pays ``predict``'s set-up cost. A short text is padded
    on the left with the padding id, which the embedding masks out, so every
    call has the same shape and ``predict`` compiles once, as with keras.io's
    fixed-length windows.
    """
    vocabulary = vocabulary_of(model)
    rng = np.random.default_rng(seed)
    ids = [PADDING_ID] * window + list(vocabulary.encode(prompt))
    for _ in range(length):
        logits = model.predict(np.array([ids[-window:]], dtype="int32"), verbose=0)[0, -1].astype(
            "float64"
        )
        logits[[PADDING_ID, UNKNOWN_ID]] = -np.inf
        probabilities = np.exp((logits - logits.max()) / temperature)
        ids.append(int(rng.choice(len(probabilities), p=probabilities / probabilities.sum())))
    return vocabulary.decode(ids[window + len(prompt) :])


# ---------------------------------------------------------------- reporting


def print_validation_table(baselines, model_name, best, scored):
    """Print each baseline beside the best epoch (a row of ``EpochReport.epochs``), in nats and
    bits per character on ``scored`` held-out characters; return the table's rows."""
    rows = {
        name: {"nats/char": value, "bits/char": value / math.log(2)}
        for name, value in baselines.items()
    }
    rows[f"{model_name} (best epoch, {best['epoch']})"] = {
        "nats/char": best["val_loss_nats"],
        "bits/char": best["val_bits_per_char"],
    }
    print()
    title = f"Validation loss on {scored:,} held-out characters (lower is better):"
    print_table(rows, title=title, digits=3)
    return rows


def print_samples(sampler, prompt, length, *, samples=1, temperature=1.0, top_k=0, seed=0):
    """Generate ``samples`` continuations of ``prompt``, print each under a heading with the
    time taken, and return them (see :meth:`CharSampler.generate`)."""
    started = time.perf_counter()
    texts = sampler.generate(
        prompt, length, samples=samples, temperature=temperature, top_k=top_k, seed=seed
    )
    seconds = time.perf_counter() - started
    for number, text in enumerate(texts, start=1):
        heading = f"sample {number} of {len(texts)}" if len(texts) > 1 else "sample"
        settings = f"temperature {temperature}" + (f", top-k {top_k}" if top_k else "")
        print(f"\n----- {heading} ({settings}) -----")
        print(prompt + text)
    print(f"\n({len(texts) * length:,} characters in {seconds:.2f} s, compilation included)")
    return texts


def plot_losses(epochs, baselines, path):
    """Training and validation loss against wall-clock minutes, beside the bigram baseline."""
    bigram = baselines["bigram (previous character)"]
    return plot_history(
        {
            "loss": [row["train_loss_nats"] for row in epochs],
            "val_loss": [row["val_loss_nats"] for row in epochs],
        },
        path,
        title="Character model",
        x=[row["wall_seconds"] / 60 for row in epochs],
        xlabel="wall-clock time (minutes)",
        ylabel="loss (nats per character)",
        labels=("training (running mean over the epoch)", "validation (held-out last 10%)"),
        baselines={f"bigram baseline ({bigram:.2f})": bigram},
    )


def write_samples(path, prompt, epoch_samples, final_texts, best_epoch):
    """The sample after each epoch (``EpochReport.samples``), then the final ones, as text."""
    with open(path, "w", encoding="utf-8") as handle:
        for row, sample in epoch_samples:
            handle.write(
                f"===== after epoch {row['epoch']} ({row['wall_seconds'] / 60:.2f} min, "
                f"validation {row['val_loss_nats']:.3f} nats/char) =====\n"
            )
            handle.write(prompt + sample + "\n\n")
        handle.write(f"===== final, best weights (epoch {best_epoch}) =====\n")
        handle.write("\n\n".join(prompt + sample for sample in final_texts) + "\n")
