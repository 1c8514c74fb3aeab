"""Speech: reading sound, the log-mel layer, CTC, decoding, the baselines, and the app's contract."""

import os
import struct
import wave as wavemodule

import numpy as np
import scipy.fft
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.io import wavfile

import common  # noqa: F401  (quiet TensorFlow first)
import common.tasks.speech as sp
from common.data.audio import mu_law_decode, mu_law_encode, read_wav, resample
from common.models.audio import LogMelSpectrogram
from conftest import REPO, call_app, examples

import keras


@pytest.fixture(scope="module")
def clips():
    return sp.read_clips()


def tone(seconds=0.5, rate=8000, hz=440.0, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("float32")


# ---------------------------------------------------------------- reading sound


def test_mu_law_keeps_speech_within_a_quantisation_step():
    samples = np.linspace(-1, 1, 100001)
    decoded = mu_law_decode(mu_law_encode(samples))
    # Steps are finest near silence: the error is under 3% of the value plus 1e-4.
    assert np.all(np.abs(decoded - samples) <= 0.03 * np.abs(samples) + 1e-4)
    assert mu_law_encode([0.0])[0] in (127, 128) and mu_law_encode([1.0, -1.0]).tolist() == [255, 0]


def test_resampling_keeps_the_pitch_and_scales_the_length():
    high = tone(1.0, 16000, 440.0)
    low = resample(high, 16000, 8000)
    assert len(low) == 8000
    spectrum = np.abs(np.fft.rfft(low))
    assert np.argmax(spectrum) == 440  # one bin per Hz over one second
    # A tone above the new Nyquist frequency (4 kHz) is filtered out, not folded back as 2 kHz.
    aliased = resample(tone(1.0, 16000, 6000.0), 16000, 8000)
    assert np.abs(aliased[100:-100]).max() < 0.02


def write_pcm(path, samples, rate, width, channels=1):
    """A WAV of ``width`` bytes per sample, written by hand (scipy cannot write 24-bit)."""
    frames = np.repeat(samples[:, None], channels, axis=1).ravel()
    if width == 1:
        data = np.round(frames * 127 + 128).astype("uint8").tobytes()
    else:
        scaled = np.round(frames * (2 ** (8 * width - 1) - 1)).astype("int64")
        data = b"".join(int(v).to_bytes(width, "little", signed=True) for v in scaled)
    with wavemodule.open(str(path), "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(width)
        file.setframerate(rate)
        file.writeframes(data)


@pytest.mark.parametrize(
    "kind", ["8-bit", "16-bit", "24-bit", "32-bit", "float32", "float64", "stereo 16-bit"]
)
@pytest.mark.parametrize("rate", [8000, 11025, 44100])
def test_every_common_wav_reads_as_the_same_8khz_sound(kind, rate, tmp_path):
    sound = tone(0.3, rate, 300.0)
    path = tmp_path / "x.wav"
    if kind.startswith("float"):
        wavfile.write(path, rate, sound.astype(kind))
    else:
        width = int(kind.split("-")[0].split()[-1]) // 8
        write_pcm(path, sound, rate, width, channels=2 if "stereo" in kind else 1)
    read = read_wav(path, 8000)
    expected = resample(sound, rate, 8000)
    tolerance = 0.02 if kind == "8-bit" else 1e-3
    assert read.dtype == np.float32 and len(read) == len(expected)
    assert np.abs(read - expected).max() < tolerance


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"RIFF....WAVEjunk"), "expected a WAV file"),
        (lambda p: p.write_text("timestamp,value\n1,2\n"), "expected a WAV file"),
        (lambda p: p.write_bytes(b""), "expected a WAV file"),
        (lambda p: wavfile.write(p, 8000, np.zeros(0, "int16")), "holds no samples"),
        (lambda p: wavfile.write(p, 8000, np.zeros(8000, "int16")), "is silent"),
        (
            lambda p: wavfile.write(p, 8000, np.array([0.1, np.nan] + [0.2] * 800, "float32")),
            "NaN or infinite",
        ),
        (lambda p: wavfile.write(p, 8000, np.array([20000], "int16")), "received 1 sample"),
        (  # a stereo file whose channels are each other upside down: silent once mixed
            lambda p: wavfile.write(p, 8000, np.outer(tone(), [1, -1]).astype("float32")),
            "channels cancel out",
        ),
        (lambda p: wavfile.write(p, 1000, np.ones(1000 * 3601, "int16")), "at most 120 seconds"),
        (lambda p: write_pcm(p, np.full(1000 * 121, 0.5), 1000, 3), "at most 120 seconds"),
        (lambda p: wavfile.write(p, 400_000_001, np.ones(10, "int16")), "from 1,000 to 768,000"),
        (lambda p: wavfile.write(p, 8000, np.full(800, 32767.0, "float32")), "from -1 to 1"),
        (lambda p: p.mkdir(), "not a regular file"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.write_bytes(b"RIFF"), "could not read it"),
        (lambda p: p.write_bytes(no_data_chunk()), "could not read it"),
        (lambda p: p.write_bytes(b"RIFF$\0\0\0WAVEfmt \x10\0\0\0\x01\0"), "could not read it"),
    ],
)
def test_a_bad_wav_is_refused_with_a_reason(make, message, tmp_path):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(ValueError, match=message) as refused:
        read_wav(path, name="rec.wav")
    assert str(refused.value).count("rec.wav") == 1  # said once, not wrapped twice


def no_data_chunk():
    """RIFF/WAVE with a good fmt chunk and no data chunk, the RIFF size saying so."""
    wave_and_fmt = wav_header(1, 8000, 16, b"")[8:36]
    return b"RIFF" + struct.pack("<I", len(wave_and_fmt)) + wave_and_fmt


def wav_header(channels, rate, bits, body):
    """A PCM WAV header with any field values, then ``body``."""
    block = channels * bits // 8 % 2**16  # the fields wrap as a careless writer's would
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block % 2**32, block, bits)
    data = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body))
    return b"RIFF" + struct.pack("<I", 4 + len(data) + len(body)) + b"WAVE" + data + body


@settings(max_examples=examples(200), deadline=None)
@given(
    channels=st.integers(0, 70000),
    rate=st.integers(0, 2**32 - 1),
    bits=st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64, 65535]),
    body=st.binary(max_size=64),
    cut=st.integers(0, 80),
)
def test_any_wav_header_reads_or_is_refused_in_one_line(
    channels, rate, bits, body, cut, tmp_path_factory
):
    path = tmp_path_factory.mktemp("wav") / "x.wav"
    content = wav_header(channels % 65536, rate, bits, body)
    path.write_bytes(content[: len(content) - cut])
    try:
        wave = read_wav(path, name="x.wav")
    except ValueError as error:
        assert str(error).startswith("x.wav: ") and "\n" not in str(error)
    else:
        assert wave.dtype == np.float32 and np.isfinite(wave).all() and len(wave) > 0


# ---------------------------------------------------------------- features


def test_the_log_mel_layer_equals_a_numpy_computation():
    rng = np.random.default_rng(0)
    waves = rng.normal(0, 0.1, (2, 1000)).astype("float32")
    layer = LogMelSpectrogram(8000, frame_length=200, frame_step=80, fft_length=256, mels=40)
    got = keras.ops.convert_to_numpy(layer(waves))
    frames = layer.frames(1000)
    assert got.shape == (2, frames, 40) and frames == 13
    # By hand: zero-pad the end, cut 200-sample frames every 80, periodic Hann window, |FFT|^2.
    padded = np.concatenate([waves, np.zeros((2, (frames - 1) * 80 + 200 - 1000))], axis=1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(200) / 200)
    spectra = np.stack([padded[:, i * 80 : i * 80 + 200] * window for i in range(frames)], axis=1)
    power = np.abs(np.fft.rfft(spectra, n=256, axis=-1)) ** 2
    mel = keras.ops.convert_to_numpy(layer.mel_matrix)
    expected = np.log(power @ mel + 1e-6)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_features_are_fit_on_the_training_voices_only(clips):
    split = sp.split_speakers(clips, "theo")
    features = sp.Features.fit(split.train.waves)
    # Each recording's mean frame is taken away first, so the spread is what is fit, of the
    # first cepstral coefficients (the cosine transform across the bands).
    frames = np.concatenate([f - f.mean(axis=0) for f in sp.log_mels(split.train.waves)])
    cepstra = scipy.fft.dct(frames, type=2, norm="ortho", axis=-1)[:, : sp.CEPSTRAL_COEFFICIENTS]
    assert features.std.shape == (sp.CEPSTRAL_COEFFICIENTS,) == features.mean.shape
    np.testing.assert_allclose(features.std, cepstra.std(axis=0), rtol=1e-3)
    every = sp.Features.fit(clips.waves)
    assert np.abs(every.std - features.std).max() > 1e-3  # the test voice would move them


def test_the_statistics_are_of_what_the_models_own_layers_compute(clips):
    waves = clips.waves[::50]  # 50 recordings of every voice and digit, of many lengths
    features = sp.Features.fit(waves, batch=16)  # several batches, each padded to its longest
    frames = []
    for wave in waves:  # one at a time through the model's layers, no padding at all
        x = wave[None]
        for layer in features.layers()[:-1]:  # log-mel, minus the mean frame, cepstrum
            x = layer(x)
        frames.append(keras.ops.convert_to_numpy(x)[0])
    frames = np.concatenate(frames)
    np.testing.assert_allclose(features.mean, frames.mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(features.std, frames.std(axis=0) + 1e-6, rtol=1e-4)


@pytest.mark.slow  # the shared --quick run
def test_the_saved_models_scale_their_inputs_with_training_voices_only(quick_runs, clips):
    status, _, err, out = quick_runs("speech")
    assert status == 0, err
    quick = sp.split_speakers(clips.subset(clips.takes < 10), "george")  # as --quick splits
    expected = sp.Features.fit(quick.train.waves)
    for name in ("digits.keras", "strings.keras"):
        layer = keras.models.load_model(out / name).get_layer("normalize")
        variance = keras.ops.convert_to_numpy(layer.variance).ravel()
        np.testing.assert_allclose(variance, expected.std**2, rtol=1e-4)


def test_the_cepstrum_layer_is_the_cosine_transform_of_the_bands_first_terms():
    from common.models.audio import Cepstrum

    rng = np.random.default_rng(0)
    frames = rng.normal(0, 1, (2, 7, 40)).astype("float32")
    got = keras.ops.convert_to_numpy(Cepstrum(13)(frames))
    # By hand: the orthonormal DCT-II of each frame, c_k = s_k sum_n x_n cos(pi k (2n + 1) / 80).
    n, k = np.arange(40), np.arange(13)[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / 80) * np.where(
        k == 0, np.sqrt(1 / 40), np.sqrt(2 / 40)
    )
    np.testing.assert_allclose(got, frames @ basis.T, atol=1e-4)
    assert got.shape == (2, 7, 13)
    # A constant shift of every band (a louder recording) moves the 0th coefficient only.
    shifted = keras.ops.convert_to_numpy(Cepstrum(13)(frames + 3.0))
    np.testing.assert_allclose(shifted[..., 1:], got[..., 1:], atol=1e-4)
    np.testing.assert_allclose(shifted[..., 0] - got[..., 0], 3.0 * np.sqrt(40), rtol=1e-4)
    with pytest.raises(ValueError, match="at most as many coefficients as mel bands"):
        Cepstrum(41)(frames)
    with pytest.raises(ValueError, match="at most as many coefficients as mel bands"):
        Cepstrum(41)(keras.Input((None, 40)))  # when the model is built, before any sound
    with pytest.raises(ValueError, match="coefficients >= 1"):
        Cepstrum(0)


def test_utterance_normalization_ignores_padding_frames():
    from common.models.audio import UtteranceNormalization

    rng = np.random.default_rng(0)
    wave = rng.normal(0, 0.1, 800).astype("float32")
    layer = LogMelSpectrogram()
    alone = layer(wave[None])
    padded = layer(np.concatenate([wave, np.zeros(1600, "float32")])[None])
    normalized_alone = keras.ops.convert_to_numpy(UtteranceNormalization()(alone))[0]
    normalized_padded = keras.ops.convert_to_numpy(UtteranceNormalization()(padded))[0]
    np.testing.assert_allclose(normalized_alone.mean(axis=0), 0, atol=1e-4)
    # The recording's own frames come out the same with or without padding after them.
    np.testing.assert_allclose(normalized_padded[:10], normalized_alone, atol=1e-4)


def test_the_split_keeps_the_test_voice_out_of_training(clips):
    split = sp.split_speakers(clips, "nicolas")
    tested = clips.speaker_names.index("nicolas")
    assert tested not in split.train.speakers and tested not in split.validation.speakers
    assert set(split.test.speakers) == {tested} and len(split.test) == 500
    assert set(split.validation.takes) == set(range(5)) and split.train.takes.min() == 5
    assert len(split.train) + len(split.validation) + len(split.test) == len(clips) == 2500
    with pytest.raises(ValueError, match="Expected a speaker among"):
        sp.split_speakers(clips, "someone")


def test_the_bundled_clips_are_fsdds_five_voices(clips):
    assert clips.speaker_names == ["george", "jackson", "nicolas", "theo", "yweweler"]
    counts = np.bincount(clips.digits * 5 + clips.speakers)
    assert counts.tolist() == [50] * 50 and clips.sample_rate == 8000


# ---------------------------------------------------------------- strings, CTC and decoding


def test_a_generated_string_holds_its_digits_as_separate_sounds(clips):
    rng = np.random.default_rng(3)
    wave, digits = sp.make_string(clips, rng, 5, snr_db=(60, 60))
    assert len(digits) == 5 and wave.dtype == np.float32
    assert len(sp.segments(wave)) == 5  # here every pause is 80 ms or more: each splits
    noisy, _ = sp.make_string(clips, np.random.default_rng(3), 5, snr_db=(15, 15))
    assert len(sp.segments(noisy)) == 5  # above the background, not only below the peak


def test_padding_labels_with_the_blank_is_right_at_batch_size_above_one():
    """CTC's probability of label [1] over 3 frames, by hand: the paths 1--, -1-, --1, 11-,
    -11, 111, 1-1 is not one (it spells 1 1); padded with 0 beside a longer label."""
    p = np.array([[0.6, 0.4], [0.5, 0.5], [0.7, 0.3]])  # frames x (blank, "1")
    paths = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 1, 1)]
    by_hand = -np.log(sum(np.prod([p[t, s] for t, s in enumerate(path)]) for path in paths))
    logits = np.log(np.stack([p, p]))  # a batch of two, same frames
    labels = np.array([[1, 0], [1, 1]])  # the first padded with the blank
    loss = keras.ops.convert_to_numpy(keras.losses.CTC(reduction=None)(labels, logits))
    assert loss[0] == pytest.approx(by_hand, rel=1e-5)
    only = np.prod([p[0, 1], p[1, 0], p[2, 1]])  # "1 1" needs a blank between: one path
    assert loss[1] == pytest.approx(-np.log(only), rel=1e-5)


def test_decoding_merges_repeats_and_drops_blanks():
    # Frames say: 3 3 blank 3 7 7 blank blank 0 -> "3370" (a blank separates the two 3s).
    frames = [4, 4, 0, 4, 8, 8, 0, 0, 1]
    logits = np.full((1, len(frames), 11), -5.0)
    logits[0, np.arange(len(frames)), frames] = 5.0
    assert sp.decode(logits, [len(frames)]) == ["3370"]
    assert sp.decode(logits, [len(frames)], beam_width=4) == ["3370"]
    assert sp.decode(logits, [3]) == ["3"]  # only the first three frames count


def test_labels_are_digits_plus_one_padded_with_the_blank():
    assert sp.label_batch([[0, 9], [5]]).tolist() == [[1, 10], [6, 0]]
    assert sp.pad_batch([np.ones(3), np.ones(sp.BUCKET + 1)]).shape == (2, 2 * sp.BUCKET)


def test_digit_error_rate_counts_edits_per_reference_digit():
    # one substitution, one deletion, one insertion over 4 + 3 + 2 reference digits
    assert sp.digit_error_rate(["1234", "555", "78"], ["1284", "55", "789"]) == pytest.approx(3 / 9)
    scores = sp.string_scores(["12", "34"], ["12", "3"], 1.0)
    assert scores["strings right"] == 0.5 and scores["digit error rate"] == 0.25


@settings(max_examples=examples(50), deadline=None)
@given(
    loud=st.lists(st.booleans(), min_size=1, max_size=60),
    seed=st.integers(0, 10),
)
def test_segments_are_ordered_disjoint_and_inside_the_wave(loud, seed):
    rng = np.random.default_rng(seed)
    wave = np.concatenate([rng.normal(0, 0.3 if on else 1e-4, 160) for on in loud]).astype(
        "float32"
    )
    found = sp.segments(wave)
    ends = [0] + [edge for pair in found for edge in pair] + [len(wave)]
    assert ends == sorted(ends) and all(s < e for s, e in found)


# ---------------------------------------------------------------- baselines


def test_dtw_equals_a_hand_computation():
    query = np.array([[0.0], [1.0], [2.0]])
    same_shape_slower = np.array([[0.0], [0.0], [1.0], [1.0], [2.0]])
    other = np.array([[2.0], [2.0]])
    distances = sp.dtw_distances(query, [same_shape_slower, other])
    assert distances[0] == pytest.approx(0.0)  # a warped copy costs nothing
    # other: query frames 0, 1, 2 against 2, 2: the cheapest path costs 2 + 1 + 0 = 3 over 3 + 2.
    assert distances[1] == pytest.approx(3 / 5)


@pytest.mark.slow  # DTW over 500 test clips
def test_the_baselines_beat_chance_on_an_unseen_voice(clips):
    split = sp.split_speakers(clips, "jackson")
    regression = sp.fit_logistic(split.train)
    predicted = regression.predict(sp.mfcc_statistics(split.test.waves))
    assert sp.accuracy(split.test.digits, predicted) > 0.4
    sample = split.test.subset(np.arange(0, 500, 10))
    templates, digits = sp.dtw_templates(split.train, per_digit=10)
    assert len(templates) == 100 and np.bincount(digits).tolist() == [10] * 10
    by_dtw = sp.dtw_classify(templates, digits, sample.waves)
    assert sp.accuracy(sample.digits, by_dtw) > 0.4


# ---------------------------------------------------------------- models


def test_both_networks_take_any_length_of_sound_and_reload_identically(clips, tmp_path):
    features = sp.Features.fit(clips.waves[:50])
    digits = sp.build_digit_classifier(features, units=8)
    strings = sp.build_string_recognizer(features, units=8)
    waves = sp.pad_batch([clips.waves[0], clips.waves[1]], multiple=1)
    assert digits.predict(waves, verbose=0).shape == (2, 10)
    logits = strings.predict(waves, verbose=0)
    assert logits.shape == (2, sp.output_frames(waves.shape[1]), 11)
    for model in (digits, strings):
        model.save(tmp_path / f"{model.name}.keras")
        again = keras.models.load_model(tmp_path / f"{model.name}.keras")
        np.testing.assert_array_equal(
            again.predict(waves, verbose=0), model.predict(waves, verbose=0)
        )


def test_an_app_reads_a_saved_recognizer_before_anything_else_imported_speech(clips, tmp_path):
    # An app imports its task module only when it first uses it; loading a run must still
    # know the custom audio layers (load_model_from_dir loads every task first).
    features = sp.Features.fit(clips.waves[:20])
    sp.build_string_recognizer(features, units=4).save(tmp_path / "strings.keras")
    code = (
        "import apps._start, common, sys\n"
        "from common.cli import load_model_from_dir\n"
        "model = load_model_from_dir(sys.argv[1], 'strings.keras')\n"
        "print(' '.join(type(layer).__name__ for layer in model.layers))\n"
    )
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", code, tmp_path], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-500:]
    custom = {"LogMelSpectrogram", "UtteranceNormalization", "Cepstrum"}
    assert custom <= set(result.stdout.split()), result.stdout


def test_the_learning_rate_falls_along_a_cosine_over_time_or_over_rounds():
    by_rounds = sp.cosine_schedule(1e-2, seconds=None, epochs=10).schedule
    assert by_rounds(0) == pytest.approx(1e-2)
    assert by_rounds(5) == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5))  # halfway: 55%
    assert by_rounds(10) == pytest.approx(1e-3)  # a tenth at the end
    assert isinstance(sp.cosine_schedule(1e-2, seconds=60, epochs=10), common.CosineDecayInTime)


@pytest.mark.slow  # trains a network for a few seconds
def test_one_training_step_lowers_the_ctc_loss(clips):
    features = sp.Features.fit(clips.waves[:50])
    model = sp.build_string_recognizer(features, units=16, dropout=0.0, learning_rate=1e-2)
    batch = sp.StringBatches(clips, count=8, batch_size=8, rng=np.random.default_rng(0))
    waves, labels = next(iter(batch))
    before = model.evaluate(waves, labels, verbose=0)
    for _ in range(5):
        model.train_on_batch(waves, labels)
    assert model.evaluate(waves, labels, verbose=0) < before


@pytest.mark.slow  # trains a network for a few seconds
def test_strings_of_every_length_train_through_one_dataset(clips):
    """Batches of 4 s and 8 s, labels of 1 to 10 digits, a short last batch: one dataset, two
    epochs of new strings."""
    features = sp.Features.fit(clips.waves[:50])
    model = sp.build_string_recognizer(features, units=8)
    batches = sp.StringBatches(clips, count=36, batch_size=8, rng=np.random.default_rng(1))
    shapes = {(waves.shape, labels.shape[0]) for waves, labels in batches}
    assert len({shape[0][1] for shape in shapes}) > 1 and len(batches) == 5
    assert sorted(labels for _, labels in shapes)[0] == 4  # the last batch: 36 = 4 * 8 + 4
    history = model.fit(sp.as_dataset(batches, (None,)), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


# ---------------------------------------------------------------- the app


@pytest.fixture
def run(quick_runs):
    """The shared ``--quick --seed 3`` run (conftest.quick_runs): (folder, stdout)."""
    status, stdout, err, out = quick_runs("speech")
    assert status == 0, err
    return out, stdout


@pytest.mark.slow  # a training run
def test_the_quick_run_saves_every_file_and_recognises_a_wav(run, clips, tmp_path):
    out, stdout = run
    names = sorted(path.name for path in out.iterdir() if not path.name.startswith("."))
    expected = ["config.json", "confusion.png", "digits.keras", "example.png", "metrics.json"]
    assert names == sorted(expected + ["strings.keras", "training.png"])
    assert "CTC, greedy" in stdout and "DTW" in stdout and "Strings: " in stdout
    wave, _ = sp.make_string(clips, np.random.default_rng(0), 4)
    wavfile.write(tmp_path / "four.wav", 16000, resample(wave, 8000, 16000))
    status, printed, err = call_app("speech", "--load", out, "--wav", tmp_path / "four.wav")
    assert status == 0 and printed.startswith(f"{tmp_path / 'four.wav'}: "), err


@pytest.mark.slow  # trains both networks for three rounds each: about 100 s
def test_a_trained_run_recognises_strings_of_known_digits_in_a_users_wav(clips, tmp_path):
    """End to end: train (george held out), save, then --load --wav files a user might have:
    16 kHz stereo 16-bit WAVs of digit strings made from takes training never fit (jackson's
    takes 0-4 only stop training early), with pauses, noise and silence around."""
    out = tmp_path / "run"
    argv = ["--epochs", "3", "--minutes", "30", "--strings", "1000", "--seed", "1", "--out", out]
    status, _, err = call_app("speech", *argv)
    assert status == 0, err
    held = clips.subset(
        (clips.speakers == clips.speaker_names.index("jackson")) & (clips.takes < 5)
    )
    rng = np.random.default_rng(7)
    said, paths = [], []
    for index in range(8):
        wave, digits = sp.make_string(held, rng, 4 + index % 4, snr_db=(30, 30))
        stereo = np.stack([wave, 0.5 * wave], axis=1)  # another microphone level on the right
        paths.append(tmp_path / f"number_{index}.wav")
        wavfile.write(
            paths[-1],
            16000,
            np.clip(resample(stereo, 8000, 16000) * 20000, -32768, 32767).astype("int16"),
        )
        said.append("".join(map(str, digits)))
    status, printed, err = call_app("speech", "--load", out, "--wav", *paths)
    assert status == 0, err
    heard = [line.rsplit(": ", 1)[1] for line in printed.splitlines()]
    assert len(heard) == len(said)
    # Three rounds of training (measured: 20% of digits wrong, 4 strings of 8 right); a broken
    # reader, resampler or decoder gets most digits wrong.
    assert sp.digit_error_rate(said, heard) <= 0.3, list(zip(said, heard))
    assert sum(s == h for s, h in zip(said, heard)) >= 3, list(zip(said, heard))


@pytest.mark.slow  # a training run
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--wav", "X/not.wav"], "expected a WAV file"),
        (["--wav", "X/silent.wav"], "the recording is silent"),
        (["--wav", "X/missing.wav"], "no such file"),
        (["--wav", "X/good.wav", "X/silent.wav"], "silent"),
    ],
)
def test_a_bad_recording_is_one_line_and_nothing_is_recognised(run, argv, message, tmp_path):
    out, _ = run
    (tmp_path / "not.wav").write_text("hello")
    wavfile.write(tmp_path / "silent.wav", 8000, np.zeros(8000, "int16"))
    wavfile.write(tmp_path / "good.wav", 8000, tone())
    argv = [arg.replace("X", str(tmp_path)) for arg in argv]
    status, printed, err = call_app("speech", "--load", out, *argv)
    assert status == 2 and err.count("\n") == 1 and message in err, err
    assert printed == ""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--wav", "x.wav"], "--wav needs --load DIR"),
        (["--test-speaker", "alice"], "invalid choice"),
        (["--distribute", "mirrored"], "trains on one device"),
        (["--units", "0"], "--units"),
    ],
)
def test_bad_options_are_one_line_before_anything_runs(argv, message, tmp_path):
    status, _, err = call_app("speech", *argv, "--out", tmp_path / "r")
    assert status == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


def test_another_apps_run_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text('{"app": "translate"}')
    wavfile.write(tmp_path / "a.wav", 8000, tone())
    status, _, err = call_app("speech", "--load", tmp_path / "run", "--wav", tmp_path / "a.wav")
    assert status == 2 and "a run of translate.py, not of speech.py" in err, err


def test_the_bundled_file_is_where_the_app_reads_it():
    assert sp.BUNDLED == REPO / "data" / "fsdd_digits.mulaw.xz" and sp.BUNDLED.is_file()
    with pytest.raises(ValueError, match="expected a mu-law clips file"):
        sp.read_clips(REPO / "data" / "msft.csv")
