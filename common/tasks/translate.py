"""Translation, the one definition: sentence pairs, word vocabularies, the attention model,
greedy and beam-search decoding, and BLEU / chrF.

apps/translate.py, notebook 15, bench/translate.py and the tests all import
from here::

    import common.tasks.translate as mt
    pairs = mt.read_pairs("data/spa_eng.tsv.xz", direction="spa-eng")  # (sources, targets)
    splits = mt.split_by_source(pairs, seed=0)          # no source sentence on two sides
    train = splits["train"]
    vocab = mt.Vocabularies.fit(train.sources, train.targets)  # training text only
    core = mt.build_translator(vocab, units=128)        # ids in, next-word probabilities out
    core.fit(*mt.teacher_forcing(vocab, train.sources, train.targets), ...)
    model = mt.saved_model(vocab, core)                 # raw strings in; what model.keras holds
    translator = mt.Translator(model)                   # works on a reloaded model.keras too
    translator.translate(["¿Dónde está el baño?"], beam_width=4)
    mt.scores(hypotheses, references)                   # sacrebleu's BLEU and chrF, exact match

Text stays as the languages write it: accents, ``¿``, ``¡``, capitals and
punctuation. Words and punctuation marks are the tokens (``"¿Dónde está?"``
reads ``¿ dónde está ?``); the source side is lower-cased (it is only read),
the target keeps its capitals (it is written out, and BLEU counts them).

The custom pieces a saved model holds (the two text standardizers) are
registered with Keras under the package ``rnn_workshop``, so ``model.keras``
reloads with ``keras.models.load_model`` once this module is imported.
"""

import re
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers
import numpy as np
import tensorflow as tf

from common.data.files import pair_columns as columns  # in data: the app checks it before TF
from common.data.files import read_text
from common.models.seq2seq import BahdanauDecoder

PAD, UNK, START, END = "", "[UNK]", "[START]", "[END]"  # ids 0, 1, 2, 3 on both sides
LANGUAGES = {"eng": "English", "spa": "Spanish"}  # names for the report; other codes shown as typed
SPLIT_FRACTIONS = (0.9, 0.05, 0.05)  # train, validation, test: by source sentence


# ---------------------------------------------------------------- reading pairs


@dataclass
class Pairs:
    """Parallel sentences: ``sources[i]`` translates to ``targets[i]``; and where they came from."""

    sources: list
    targets: list
    origin: str = "pairs"

    def __len__(self):
        return len(self.sources)

    def subset(self, indices):
        return Pairs(
            [self.sources[i] for i in indices], [self.targets[i] for i in indices], self.origin
        )


def parse_pairs(text, direction="spa-eng", origin="pairs"):
    """Tab-separated pairs (manythings.org's ``English<TAB>Other[<TAB>attribution]``) as :class:`Pairs`.

    Empty lines are skipped; a third column (the attribution newer releases add)
    is ignored. Text is put in Unicode NFC form, so an accent typed as a letter
    plus a combining mark is the same word as the precomposed one.

    >>> pairs = parse_pairs("Go.\\tVe.\\n\\nHi.\\t¡Hola!\\tCC-BY 2.0\\n", direction="spa-eng")
    >>> pairs.sources, pairs.targets
    (['Ve.', '¡Hola!'], ['Go.', 'Hi.'])

    Raises:
        ValueError: an unknown direction, a line without a tab or with an empty side
            (the message gives its number), or no pairs at all.
    """
    source_column, target_column = columns(direction)
    sources, targets = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < 2:
            raise ValueError(
                f"{origin}: expected two tab-separated columns (English<TAB>translation) on every "
                f"line; line {number} has one: {_shorten(line)!r}"
            )
        pair = [unicodedata.normalize("NFC", column.strip()) for column in cells[:2]]
        if not all(pair):
            raise ValueError(f"{origin}: line {number} has an empty sentence: {_shorten(line)!r}")
        sources.append(pair[source_column])
        targets.append(pair[target_column])
    if not sources:
        raise ValueError(f"{origin}: expected sentence pairs; the file holds none")
    return Pairs(sources, targets, origin)


def language_names(direction):
    """``("Spanish", "English")`` for ``"spa-eng"``; codes without a name are shown as they are."""
    return tuple(LANGUAGES.get(code, code) for code in direction.split("-"))


def read_pairs(path, direction="spa-eng", name=None):
    """:func:`parse_pairs` of a UTF-8 file (gzip or xz unpacked by content)."""
    name = name or str(path)
    return parse_pairs(read_text(path, name), direction, origin=name)


def _shorten(text, width=60):
    return text if len(text) <= width else text[: width - 3] + "..."


# ---------------------------------------------------------------- a split that does not leak


def source_key(sentence):
    """What makes two source sentences "the same" for the split: letters and digits, lower-cased.

    >>> source_key("¿Dónde está?") == source_key("¿dónde está")
    True
    """
    return " ".join(re.findall(r"\w+", sentence.lower()))


def split_by_source(pairs, fractions=SPLIT_FRACTIONS, seed=0):
    """Train / validation / test :class:`Pairs`, each source sentence (by :func:`source_key`) on one side.

    Tatoeba gives one sentence several translations ("Go." is "Ve.", "Vete."
    and "Vaya."); a random split of *pairs* would test the model on sentences
    it trained on. Here whole groups of pairs that share a source go to one
    side, so every test sentence is new to the model (its translations may
    still appear in training as the translation of another sentence: see
    :func:`overlap`).
    """
    if not (
        len(fractions) == 3 and all(f > 0 for f in fractions) and abs(sum(fractions) - 1) < 1e-9
    ):
        raise ValueError(f"Expected three positive fractions summing to 1. Received: {fractions}")
    groups = defaultdict(list)
    for index, sentence in enumerate(pairs.sources):
        groups[source_key(sentence)].append(index)
    keys = sorted(groups)
    if len(keys) < 3:
        raise ValueError(
            f"{pairs.origin}: expected at least 3 different source sentences to split three ways; "
            f"received {len(keys)}"
        )
    order = np.random.default_rng(seed).permutation(len(keys))
    # At least one source sentence on each side, however few there are.
    first = min(max(1, round(fractions[0] * len(keys))), len(keys) - 2)
    second = min(max(first + 1, round((fractions[0] + fractions[1]) * len(keys))), len(keys) - 1)
    parts = {"train": order[:first], "validation": order[first:second], "test": order[second:]}
    return {
        name: pairs.subset(sorted(i for k in part for i in groups[keys[k]]))
        for name, part in parts.items()
    }


def grouped_references(pairs):
    """Unique sources in first-seen order, each with every translation the pairs give it."""
    references = {}
    for source, target in zip(pairs.sources, pairs.targets):
        references.setdefault(source, [])
        if target not in references[source]:
            references[source].append(target)
    return list(references), list(references.values())


def overlap(train, test):
    """How much of ``test`` the training pairs still give away, as fractions of test sources.

    - ``reference_seen``: one of the sentence's references is also a training target
      (Tatoeba has many sentences that say the same thing).
    - ``one_word_away``: the source differs from a training source by one word
      substituted, added or removed (after :func:`source_key`).
    """

    def substituted(words):  # one key per word replaced by a wildcard
        return {(*words[:i], "*", *words[i + 1 :]) for i in range(len(words))}

    def shortened(words):  # the sentence with one word removed, each way
        return {(*words[:i], *words[i + 1 :]) for i in range(len(words))}

    train_words = [tuple(source_key(s).split()) for s in set(train.sources)]
    whole = set(train_words)
    wildcards = set().union(*(substituted(w) for w in train_words))
    cut = set().union(*(shortened(w) for w in train_words))
    train_targets = set(train.targets)
    sources, references = grouped_references(test)
    seen = sum(any(r in train_targets for r in refs) for refs in references)
    close = 0
    for sentence in sources:
        words = tuple(source_key(sentence).split())
        close += bool(
            words in whole  # the same words (the split keeps these apart; punctuation aside)
            or substituted(words) & wildcards  # one word substituted
            or words in cut  # one word fewer than a training sentence
            or shortened(words) & whole  # one word more
        )
    return {"reference_seen": seen / len(sources), "one_word_away": close / len(sources)}


# ---------------------------------------------------------------- words and vocabularies


@keras.saving.register_keras_serializable(package="rnn_workshop")
def split_punctuation(texts):
    """Put spaces around punctuation, so that a whitespace split gives words and marks.

    Letters (accented ones too), combining marks, digits, apostrophes and hyphens stay inside
    words ("don't", "well-known"); everything else (``. , ? ! ¿ ¡ " :`` ...) is a token.
    """
    # \pM: accents typed as combining marks stay in their word; \pZ: Unicode spaces (a
    # no-break space before "!" in French) are spaces, which RE2's \s alone does not cover.
    texts = tf.strings.regex_replace(texts, r"([^\pL\pM\pN\s\pZ'’-])", r" \1 ")
    return tf.strings.strip(tf.strings.regex_replace(texts, r"[\s\pZ]+", " "))


@keras.saving.register_keras_serializable(package="rnn_workshop")
def split_punctuation_lower(texts):
    """:func:`split_punctuation` of the lower-cased text (accented capitals too)."""
    return split_punctuation(tf.strings.lower(texts, encoding="utf-8"))


def tokenize(sentences, lower=False):
    """Sentences as lists of tokens, exactly as the model's vectorizer splits them.

    >>> tokenize(["¿Dónde está el baño?"], lower=True)
    [['¿', 'dónde', 'está', 'el', 'baño', '?']]
    """
    standardize = split_punctuation_lower if lower else split_punctuation
    split = tf.strings.split(standardize(tf.constant(list(sentences), dtype=tf.string)))
    return [[token.decode("utf-8") for token in row] for row in split.to_list()]


def detokenize(tokens):
    """Tokens back to a sentence as it is written: no space before ``. , ? !``, none after ``¿ ¡``.

    >>> detokenize(["¿", "Dónde", "está", "?"])
    '¿Dónde está?'
    """
    text = " ".join(tokens)
    text = re.sub(r" ([.,!?;:%)\]}»…])", r"\1", text)
    return re.sub(r"([¿¡(\[{«]) ", r"\1", text)


@dataclass
class Vocabularies:
    """The word lists of both sides, fit on training text only, and the lengths the model reads.

    Ids: 0 padding, 1 ``[UNK]`` (a word not in the list), 2 ``[START]``,
    3 ``[END]``, then words from the most to the least frequent.
    """

    source: list
    target: list
    source_length: int  # tokens read per source sentence; longer ones are cut
    target_length: int  # decoder steps: the longest training target plus [END]

    @classmethod
    def fit(cls, sources, targets, max_tokens=12000, min_count=2, max_length=15):
        """Count the training sentences' words; keep those seen ``min_count`` times, at most
        ``max_tokens`` ids per side (specials included).

        A word seen once in training is hardly learnt; as ``[UNK]`` it teaches
        the model what to do with a word it does not know (copy it, through
        the attention weights: :meth:`Translator.translate`).
        """
        if max_tokens < 5:
            raise ValueError(f"Expected max_tokens >= 5 (4 special ids). Received: {max_tokens}")
        source_tokens, target_tokens = tokenize(sources, lower=True), tokenize(targets)
        lengths = [max(map(len, source_tokens)), max(map(len, target_tokens)) + 1]
        source_length, target_length = (min(length, max_length) for length in lengths)
        return cls(
            _word_list(source_tokens, max_tokens, min_count),
            _word_list(target_tokens, max_tokens, min_count),
            source_length,
            target_length,
        )

    def source_ids(self, sentences):
        """(batch, source_length) int64 ids of raw source sentences, padded with 0 and cut."""
        return _ids(tokenize(sentences, lower=True), self.source, self.source_length)

    def target_ids(self, sentences):
        """(batch, target_length) ids of the targets followed by ``[END]`` (cut to fit)."""
        rows = [tokens[: self.target_length - 1] + [END] for tokens in tokenize(sentences)]
        return _ids(rows, self.target, self.target_length)


def _word_list(token_lists, max_tokens, min_count):
    counts = Counter(token for tokens in token_lists for token in tokens)
    # Most frequent first; ties alphabetical, so the same text always gives the same ids.
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return [PAD, UNK, START, END] + words[: max_tokens - 4]


def _ids(token_lists, vocabulary, length):
    index = {word: i for i, word in enumerate(vocabulary)}
    ids = np.zeros((len(token_lists), length), dtype="int64")
    for row, tokens in enumerate(token_lists):
        row_ids = [index.get(token, 1) for token in tokens[:length]]
        ids[row, : len(row_ids)] = row_ids
    return ids


def teacher_forcing(vocab, sources, targets):
    """``((source ids, decoder inputs), next-word targets)`` for training with teacher forcing.

    The decoder reads ``[START] w1 w2 ...`` and learns to say ``w1 w2 ... [END]``:
    at every step it sees the true previous word, not its own guess.
    """
    target_ids = vocab.target_ids(targets)
    decoder_inputs = np.zeros_like(target_ids)
    decoder_inputs[:, 0] = 2  # [START]
    decoder_inputs[:, 1:] = np.where(target_ids[:, :-1] == 3, 0, target_ids[:, :-1])  # no [END] in
    return (vocab.source_ids(sources), decoder_inputs), target_ids


def training_batches(vocab, pairs, batch_size, seed=0):
    """Teacher-forcing batches of ``pairs`` as a ``tf.data.Dataset``, shuffled, repeating for ever.

    Repeating lets a run count its "epochs" in rounds shorter than one pass
    (``steps_per_epoch``), so validation and early stopping look in more often.
    """
    (source_ids, decoder_inputs), target_ids = teacher_forcing(vocab, pairs.sources, pairs.targets)
    data = tf.data.Dataset.from_tensor_slices(((source_ids, decoder_inputs), target_ids))
    data = data.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True).repeat()
    return data.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- the model


def build_translator(
    vocab, units=128, embedding_dim=128, dropout=0.2, learning_rate=2e-3, name="translator"
):
    """Embedding + bidirectional GRU encoder, GRU decoder with Bahdanau attention, deep output.

    Shapes, for a batch of ``batch`` sentence pairs::

        source ids (batch, source_length) -> embedding (batch, source_length, embedding_dim)
          -> bidirectional GRU: outputs (batch, source_length, 2 * units) and the two final states
        decoder inputs (batch, target_length) -> embedding (batch, target_length, embedding_dim)
          -> BahdanauDecoder, 2 * units wide, starting from both encoder states: at every step it
             attends over the encoder outputs with its previous state
             -> (batch, target_length, 4 * units) = [state; context]
          -> deep output: Dense(embedding_dim) -> Dense(target words, softmax)

    The deep output layer (Bahdanau et al. 2015 have one too) squeezes
    ``[state; context]`` to ``embedding_dim`` numbers before the softmax over
    thousands of words: the softmax is most of the work, and this makes it
    several times cheaper. It is linear (a low-rank factorisation of one big
    layer): with tanh there, the network stalled at predicting the commonest
    words whatever the input. Padding (id 0) is masked: the encoder's gets no
    attention, the targets' no loss.
    """
    source_ids = keras.Input(shape=(vocab.source_length,), dtype="int64", name="encoder_inputs")
    decoder_ids = keras.Input(shape=(vocab.target_length,), dtype="int64", name="decoder_inputs")
    embedded = layers.Embedding(len(vocab.source), embedding_dim, mask_zero=True, name="embedding")
    encoder = layers.Bidirectional(
        layers.GRU(units, return_sequences=True, return_state=True, dropout=dropout),
        name="encoder",
    )
    encoder_outputs, forward, backward = encoder(embedded(source_ids))
    state = layers.Concatenate(name="encoder_state")([forward, backward])
    previous_words = layers.Embedding(
        len(vocab.target), embedding_dim, mask_zero=True, name="decoder_embedding"
    )(decoder_ids)
    decoder = BahdanauDecoder(2 * units, cell="gru", dropout=dropout, name="decoder")
    decoded, _ = decoder([previous_words, encoder_outputs], state)
    hidden = layers.Dense(embedding_dim, name="deep_output")(decoded)  # linear: see above
    hidden = layers.Dropout(dropout, name="output_dropout")(hidden)
    probabilities = layers.Dense(len(vocab.target), activation="softmax", name="head")(hidden)
    model = keras.Model([source_ids, decoder_ids], probabilities, name=name)
    compile_translator(model, learning_rate)
    return model


def compile_translator(model, learning_rate=2e-3):
    """Adam with clipped gradients and next-word cross-entropy (padding masked by Keras)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def saved_model(vocab, core, name="translate"):
    """Raw strings in: the model ``model.keras`` holds, with both vocabularies inside.

    Inputs ``[source text (batch,), decoder inputs (batch, target_length)]``;
    outputs ``{"probabilities": (batch, target_length, target vocabulary),
    "words": (batch, target_length) the likeliest next word at each step, as
    text}``. The source vocabulary is a ``TextVectorization`` layer's; the
    target vocabulary is the ``words`` output's ``StringLookup``, so a reloaded
    file decodes to text with nothing else (:class:`Translator`).
    """
    text = keras.Input(shape=(), dtype="string", name="source_text")
    decoder_inputs = keras.Input(shape=(vocab.target_length,), dtype="int64", name="decoder_inputs")
    vectorizer = keras.layers.TextVectorization(
        standardize=split_punctuation_lower,
        split="whitespace",
        vocabulary=vocab.source[2:],  # the layer adds padding and [UNK] itself
        output_sequence_length=vocab.source_length,
        name="source_vectorizer",
    )
    probabilities = core([keras.ops.cast(vectorizer(text), "int64"), decoder_inputs])
    # mask_token="": id 0 is padding here too, so the ids line up with vocab.target exactly.
    words = keras.layers.StringLookup(
        vocabulary=vocab.target[2:], mask_token="", invert=True, name="target_words"
    )(keras.ops.argmax(probabilities, axis=-1))
    return keras.Model(
        [text, decoder_inputs], {"probabilities": probabilities, "words": words}, name=name
    )


# ---------------------------------------------------------------- decoding


def _words_only(log_probabilities):
    """Padding (id 0) and [START] (id 2) are never words to write: make them impossible."""
    log_probabilities[:, [0, 2]] = -np.inf
    return log_probabilities


@dataclass
class Translation:
    """One decoded sentence: the text, its tokens, their log-probability and attention weights."""

    text: str
    tokens: list
    log_probability: float
    attention: np.ndarray  # (output tokens, source tokens)
    source_tokens: list


class Translator:
    """Greedy and beam-search decoding with a trained (or reloaded) :func:`saved_model`.

    The encoder runs once per sentence; then each step runs the decoder for one
    word, for a whole batch of sentences (and beams) at once, reusing the
    trained layers: no new weights, and the same numbers as the training model
    under teacher forcing.
    """

    def __init__(self, model):
        try:
            self.vectorizer = model.get_layer("source_vectorizer")
            self.vocabulary = np.array(model.get_layer("target_words").get_vocabulary())
            core = model.get_layer("translator")
            self.embedding = core.get_layer("embedding")
            self.encoder = core.get_layer("encoder")
            self.decoder_embedding = core.get_layer("decoder_embedding")
            self.decoder = core.get_layer("decoder")
            self.deep_output = core.get_layer("deep_output")
            self.head = core.get_layer("head")
        except ValueError:
            raise ValueError(
                f"Expected a model made by common.tasks.translate.saved_model. Received: "
                f"a model named {model.name!r} with layers {[layer.name for layer in model.layers]}"
            ) from None
        self.source_length = core.inputs[0].shape[1]
        self.max_length = core.inputs[1].shape[1]
        self._encode = tf.function(self._encode_batch, reduce_retracing=True)
        self._step = tf.function(self._step_batch, reduce_retracing=True)

    def _encode_batch(self, source_ids):
        mask = keras.ops.not_equal(source_ids, 0)
        outputs, forward, backward = self.encoder(self.embedding(source_ids), mask=mask)
        return outputs, mask, keras.ops.concatenate([forward, backward], axis=-1)

    def _step_batch(self, previous, state, encoder_outputs, mask, keys):
        output, [state], weights = self.decoder.step(
            self.decoder_embedding(previous), [state], encoder_outputs, mask, keys
        )
        probabilities = self.head(self.deep_output(output))
        return keras.ops.log(keras.ops.maximum(probabilities, 1e-30)), state, weights

    def source_ids(self, sentences):
        """(batch, source_length) ids, as the saved model's own vectorizer makes them."""
        texts = tf.constant([unicodedata.normalize("NFC", s) for s in sentences], dtype=tf.string)
        return keras.ops.convert_to_numpy(self.vectorizer(texts)).astype("int64")

    def greedy(self, source_ids, max_length=None):
        """The likeliest word at every step, fed back as the next input.

        Returns ``(tokens (batch, steps), log-probabilities (batch,), attention
        (batch, steps, source_length))``; a row ends at its first ``[END]`` (id 3),
        padding (0) after it.
        """
        max_length = max_length or self.max_length
        outputs, mask, state = self._encode(source_ids)
        keys = self.decoder.attention.key_projection(outputs)
        batch = len(source_ids)
        previous = np.full(batch, 2, dtype="int64")  # [START]
        done = np.zeros(batch, dtype=bool)
        totals, tokens, attention = np.zeros(batch), [], []
        for _ in range(max_length):
            log_probabilities, state, weights = self._step(previous, state, outputs, mask, keys)
            log_probabilities = _words_only(log_probabilities.numpy())
            previous = np.where(done, 0, log_probabilities.argmax(-1))
            totals += np.where(done, 0.0, log_probabilities[np.arange(batch), previous])
            tokens.append(previous)
            attention.append(weights.numpy())
            done |= previous == 3
            if done.all():
                break
        return np.stack(tokens, 1), totals, np.stack(attention, 1)

    def beam_search(self, source_ids, beam_width=4, length_penalty=1.0, max_length=None):
        """Keep the ``beam_width`` best prefixes of every sentence; return the best finished one.

        Prefixes are ranked by log-probability divided by ``length ** length_penalty``
        (0: no normalisation, which favours short outputs since every word costs
        log-probability; 1: the mean per word). A finished prefix (it said
        ``[END]``) keeps its score and competes with the longer ones. With
        ``beam_width=1`` this is :meth:`greedy`. Returns the same three arrays.
        """
        if not (isinstance(beam_width, int) and beam_width >= 1):
            raise ValueError(f"Expected beam_width to be a positive int. Received: {beam_width!r}")
        max_length = max_length or self.max_length
        outputs, mask, state = self._encode(source_ids)
        batch, width = len(source_ids), beam_width
        repeat = np.repeat(np.arange(batch), width)  # row -> its sentence
        outputs, mask, state = (tf.gather(x, repeat) for x in (outputs, mask, state))
        keys = self.decoder.attention.key_projection(outputs)
        totals = np.tile([0.0] + [-np.inf] * (width - 1), batch)  # one live prefix to start
        lengths, done = np.zeros(batch * width), np.zeros(batch * width, dtype=bool)
        previous = np.full(batch * width, 2, dtype="int64")
        tokens = np.zeros((batch * width, 0), dtype="int64")
        attention = np.zeros((batch * width, 0, self.source_length), dtype="float32")
        for _ in range(max_length):
            log_probabilities, state, weights = self._step(previous, state, outputs, mask, keys)
            log_probabilities = _words_only(log_probabilities.numpy())
            # A finished prefix continues only with padding, at no cost.
            log_probabilities[done] = -np.inf
            log_probabilities[done, 0] = 0.0
            # Every row's divisor is the same for all its words, so each beam's best `k`
            # words are its best by the normalised score too: rank only those width * k.
            k = min(width, log_probabilities.shape[1])
            top_totals, top_words = tf.math.top_k(totals[:, None] + log_probabilities, k=k)
            top_totals, top_words = top_totals.numpy(), top_words.numpy()  # ties: lower id first
            new_lengths = lengths + np.where(done, 0, 1)
            ranked = top_totals / np.maximum(new_lengths, 1)[:, None] ** length_penalty
            # Stable sort: among equal scores the lower index wins, as argmax does (width 1 = greedy).
            best = np.argsort(-ranked.reshape(batch, width * k), axis=1, kind="stable")
            best = best[:, :width]
            rows = (np.arange(batch)[:, None] * width + best // k).ravel()
            words = top_words[rows, (best % k).ravel()]
            totals = top_totals[rows, (best % k).ravel()]
            lengths = new_lengths[rows]
            done = done[rows] | (words == 3)
            previous = words
            tokens = np.concatenate([tokens[rows], words[:, None]], axis=1)
            attention = np.concatenate([attention[rows], weights.numpy()[rows][:, None]], axis=1)
            state = tf.gather(state, rows)
            if done.all():
                break
        # The best row of each sentence by the same normalised score, a finished one if any is
        # (an unfinished prefix ran out of steps: it is cut off).
        scores = totals / np.maximum(lengths, 1) ** length_penalty
        finished_somewhere = np.repeat(done.reshape(batch, width).any(axis=1), width)
        scores = np.where(finished_somewhere & ~done, -np.inf, scores).reshape(batch, width)
        best = np.arange(batch) * width + np.argmax(scores, axis=1)
        return tokens[best], totals[best], attention[best]

    def translate(self, sentences, beam_width=1, length_penalty=1.0, batch_size=256):
        """Raw sentences in, :class:`Translation` objects out (greedy when ``beam_width=1``).

        An ``[UNK]`` in the output is replaced by the source word the decoder
        attended to most at that step (Luong et al., 2015): names and numbers it
        never saw in training are copied, as a human translator would.
        """
        sentences = list(sentences)
        results = []
        for start in range(0, len(sentences), batch_size):
            chunk = sentences[start : start + batch_size]
            ids = self.source_ids(chunk)
            if beam_width == 1:
                tokens, totals, attention = self.greedy(ids)
            else:
                tokens, totals, attention = self.beam_search(ids, beam_width, length_penalty)
            shown = tokenize([unicodedata.normalize("NFC", s) for s in chunk])
            for row, source_tokens in enumerate(shown):
                source_tokens = source_tokens[: self.source_length]
                results.append(
                    self._translation(tokens[row], totals[row], attention[row], source_tokens)
                )
        return results

    def _translation(self, ids, total, attention, source_tokens):
        ids = list(ids)
        length = ids.index(3) if 3 in ids else len(ids)  # up to [END]
        words = []
        for step, token in enumerate(ids[:length]):
            if token == 1 and source_tokens:  # [UNK]: copy the source word attended to most
                words.append(source_tokens[int(np.argmax(attention[step, : len(source_tokens)]))])
            else:
                words.append(str(self.vocabulary[token]))
        weights = attention[: length + 1, : max(len(source_tokens), 1)]
        return Translation(detokenize(words), words, float(total), weights, source_tokens)


# ---------------------------------------------------------------- scores


def scores(hypotheses, references):
    """Corpus BLEU and chrF as sacrebleu computes them, and the exact-match rate.

    ``references[i]`` is the list of acceptable translations of sentence ``i``
    (one or several). BLEU: the geometric mean of 1- to 4-gram precisions
    clipped by the references, times a brevity penalty, on sacrebleu's standard
    ``13a`` tokenisation, cased. chrF: character 6-gram F-score (recall weighed
    twice), kinder to near-misses in word endings, which Spanish has many of.

    >>> round(scores(["the cat sat on the mat"], [["the cat sat on the mat"]])["BLEU"], 1)
    100.0
    """
    import sacrebleu

    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(
            f"Expected one list of references per hypothesis, at least one. Received: "
            f"{len(hypotheses)} hypotheses and {len(references)} reference lists"
        )
    most = max(len(refs) for refs in references)
    # sacrebleu reads reference *streams*; a sentence with fewer references gets None, ignored.
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(most)]
    exact = np.mean([h in refs for h, refs in zip(hypotheses, references)])
    return {
        "BLEU": sacrebleu.corpus_bleu(hypotheses, streams).score,
        "chrF": sacrebleu.corpus_chrf(hypotheses, streams).score,
        "exact match": float(exact),
    }


def score_all(model, train, sources, references, beam_width=4, length_penalty=1.0):
    """The report's rows: the network (greedy, and beam search if ``beam_width > 1``) and the
    two baselines fit on ``train``, each with BLEU, chrF, exact match and seconds taken.

    Returns ``(rows, outputs)``: ``{name: scores}`` and ``{name: list of Translation or str}``.
    """
    from common.tasks import translate_baselines as baselines

    translator = Translator(model)
    decoders = {"network, greedy": dict(beam_width=1)}
    if beam_width > 1:
        decoders[f"network, beam {beam_width}"] = dict(beam_width=beam_width)
    rows, outputs = {}, {}
    for name, settings in decoders.items():
        started = time.perf_counter()
        outputs[name] = translator.translate(sources, length_penalty=length_penalty, **settings)
        seconds = time.perf_counter() - started
        rows[name] = scores([t.text for t in outputs[name]], references) | {"seconds": seconds}
    started = time.perf_counter()
    # Tokenised in two calls, not one TensorFlow call per sentence (minutes on 100,000).
    everything = list(dict.fromkeys([*train.sources, *sources]))
    tokens = dict(zip(everything, tokenize(everything, lower=True)))
    retrieval = baselines.NearestNeighbour(train.sources, train.targets, tokenize=tokens.get)
    outputs["retrieval (TF-IDF)"] = retrieval.translate(sources)
    rows["retrieval (TF-IDF)"] = scores(outputs["retrieval (TF-IDF)"], references) | {
        "seconds": time.perf_counter() - started
    }
    started = time.perf_counter()
    lexicon = baselines.ibm_model1([tokens[s] for s in train.sources], tokenize(train.targets))
    words = baselines.word_for_word(lexicon, [tokens[s] for s in sources])
    outputs["word for word (IBM 1)"] = [detokenize(w) for w in words]
    rows["word for word (IBM 1)"] = scores(outputs["word for word (IBM 1)"], references) | {
        "seconds": time.perf_counter() - started
    }
    return rows, outputs


def table_rows(rows):
    """The scores as the report prints them: BLEU and chrF to 0.1, exact match in %, seconds."""
    return {
        name: {
            "BLEU": f"{row['BLEU']:.1f}",
            "chrF": f"{row['chrF']:.1f}",
            "exact match": f"{100 * row['exact match']:.1f}%",
            "seconds": f"{row['seconds']:.1f}",
        }
        for name, row in rows.items()
    }


def verdict(rows):
    """One plain sentence on who won by BLEU: the best network decoding against the best baseline."""
    network = max(
        (name for name in rows if name.startswith("network")), key=lambda n: rows[n]["BLEU"]
    )
    baseline = max(
        (name for name in rows if not name.startswith("network")), key=lambda n: rows[n]["BLEU"]
    )
    gap = rows[network]["BLEU"] - rows[baseline]["BLEU"]
    if gap > 0:
        said = f"Verdict: the {network} beats the best baseline, {baseline}, by {gap:.1f} BLEU."
    else:
        said = (
            f"Verdict: the network does NOT beat the baselines: {baseline} scores "
            f"{-gap:.1f} BLEU more than the {network}; it needs more training or a larger model."
        )
    names = [n for n in rows if n.startswith("network")]
    if len(names) == 2:
        difference = rows[names[1]]["BLEU"] - rows[names[0]]["BLEU"]
        if abs(difference) < 0.05:
            said += " Beam search and greedy decoding score the same."
        else:
            said += (
                f" Beam search {'adds' if difference > 0 else 'loses'} {abs(difference):.1f} "
                "BLEU over greedy decoding."
            )
    return said


@dataclass
class Example:
    source: str
    translation: Translation
    reference: str


def examples(translations, sources, references, count=6, seed=0):
    """``count`` test sentences spread over the split (fixed by ``seed``), with their outputs."""
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(sources), size=min(count, len(sources)), replace=False))
    return [Example(sources[i], translations[i], references[i][0]) for i in picked]


@dataclass
class Trained:
    """What training made: the saved model, its vocabularies, and how it got there."""

    model: keras.Model
    vocab: Vocabularies
    history: dict
    dropout: float
    trials: dict  # dropout -> validation loss after its short trial
    seconds: float


@dataclass
class Found:
    rows: dict
    overlap: dict
    verdict: str
    examples: list


def run_metrics(splits, trained, found):
    """metrics.json's content: the scores, the split, the vocabularies and the training."""
    vocab = trained.vocab
    return {
        "test": found.rows,
        "verdict": found.verdict,
        "test_overlap_with_training": found.overlap,
        "pairs": {name: len(split) for name, split in splits.items()},
        "vocabularies": {
            "source_words": len(vocab.source),
            "target_words": len(vocab.target),
            "source_length": vocab.source_length,
            "target_length": vocab.target_length,
        },
        "dropout": trained.dropout,
        "dropout_trials_validation_loss": {str(k): v for k, v in trained.trials.items()},
        "rounds": len(trained.history["loss"]),
        "training_seconds": trained.seconds,
        "examples": [
            {"source": e.source, "translation": e.translation.text, "reference": e.reference}
            for e in found.examples
        ],
    }


def plot_run(folder, trained, found):
    """``training.png`` (loss per round) and ``attention.png`` (the examples' attention maps)."""
    import matplotlib.pyplot as plt

    from common.report.plots import plot_attention, plot_history, save_figure

    plot_history(trained.history, Path(folder) / "training.png", xlabel="round (a quarter pass)")
    columns = 3
    rows = -(-len(found.examples) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.8 * rows), squeeze=False)
    for axis, shown in zip(axes.ravel(), found.examples):
        t = shown.translation
        plot_attention(
            t.attention, t.source_tokens or ["(empty)"], t.tokens, axis=axis, title=shown.source
        )
    for axis in axes.ravel()[len(found.examples) :]:
        axis.axis("off")
    save_figure(figure, Path(folder) / "attention.png")


def sentences_to_translate(sentences, source_length):
    """The sentences to translate, and notes for the user about the ones changed or left out.

    Empty lines are skipped; a sentence longer than the model reads is cut to
    its first ``source_length`` tokens (a note says so).

    Raises:
        ValueError: a sentence that is not UTF-8 (surrogates), or no sentence at all.
    """
    kept, notes = [], []
    for number, sentence in enumerate(sentences, start=1):
        try:
            sentence.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"expected UTF-8 text; sentence {number} is not") from None
        if sentence.strip():
            kept.append((number, sentence))
        else:
            notes.append(f"skipping sentence {number}: it is empty")
    lengths = [len(t) for t in tokenize([s for _, s in kept], lower=True)] if kept else []
    for (number, _), length in zip(kept, lengths):  # one TensorFlow call for all of them
        if length > source_length:
            notes.append(
                f"sentence {number} has {length} words and marks; the model reads the "
                f"first {source_length}"
            )
    kept = [sentence for _, sentence in kept]
    if not kept:
        raise ValueError("expected at least one sentence to translate; received only empty ones")
    return kept, notes
