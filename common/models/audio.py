"""Audio features as a Keras layer, so a saved model takes a waveform and nothing else.

A recurrent network does not read raw samples well (8,000 a second, each
meaningless alone); it reads *frames*: every 10 ms, the energy in each of a few
dozen frequency bands over the last 25 ms. That is a log-mel spectrogram.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

FLOOR = 1e-6  # added to band energies before the log: silence stays finite


@keras.saving.register_keras_serializable(package="rnn_workshop")
class LogMelSpectrogram(layers.Layer):
    """Waveforms ``(batch, samples)`` -> log-mel spectrograms ``(batch, frames, mels)``.

    Each frame is ``frame_length`` samples long (Hann window), frames start
    every ``frame_step`` samples (the last ones padded with zeros), so
    ``frames = ceil(samples / frame_step)``. The power spectrum of each frame
    (``tf.signal.stft``) is summed into ``mels`` triangular bands spaced evenly
    on the mel scale (close together at low frequencies, as the ear hears),
    then ``log(energy + floor)``: loudness is heard logarithmically, and the
    floor keeps silence finite.

    At 8 kHz the defaults are a 25 ms window, a 10 ms step, 256-point FFTs and
    40 bands up to 4 kHz, the usual choices for speech.
    """

    def __init__(
        self,
        sample_rate=8000,
        frame_length=200,
        frame_step=80,
        fft_length=256,
        mels=40,
        lower_hz=20.0,
        upper_hz=None,
        floor=FLOOR,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if fft_length < frame_length:
            raise ValueError(
                f"Expected fft_length >= frame_length. Received: {fft_length} < {frame_length}"
            )
        upper_hz = upper_hz or sample_rate / 2
        if not 0 <= lower_hz < upper_hz <= sample_rate / 2:
            raise ValueError(
                f"Expected 0 <= lower_hz < upper_hz <= sample_rate / 2 = {sample_rate / 2:g}. "
                f"Received: lower_hz={lower_hz}, upper_hz={upper_hz}"
            )
        self.sample_rate, self.frame_length, self.frame_step = sample_rate, frame_length, frame_step
        self.fft_length, self.mels, self.floor = fft_length, mels, floor
        self.lower_hz, self.upper_hz = float(lower_hz), float(upper_hz)
        # (fft_length // 2 + 1 frequencies, mels): which bands each frequency feeds.
        self.mel_matrix = tf.signal.linear_to_mel_weight_matrix(
            mels, fft_length // 2 + 1, sample_rate, self.lower_hz, self.upper_hz
        )

    def call(self, waves):
        spectra = tf.signal.stft(
            tf.cast(waves, "float32"),
            self.frame_length,
            self.frame_step,
            self.fft_length,
            window_fn=tf.signal.hann_window,
            pad_end=True,
        )
        power = tf.math.square(tf.math.abs(spectra))  # (batch, frames, fft_length // 2 + 1)
        return tf.math.log(tf.tensordot(power, self.mel_matrix, axes=1) + self.floor)

    def frames(self, samples):
        """How many frames ``samples`` samples give (``ceil(samples / frame_step)``)."""
        return -(-samples // self.frame_step)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else self.frames(samples)
        return (*input_shape[:-1], frames, self.mels)

    def get_config(self):
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "frame_length": self.frame_length,
            "frame_step": self.frame_step,
            "fft_length": self.fft_length,
            "mels": self.mels,
            "lower_hz": self.lower_hz,
            "upper_hz": self.upper_hz,
            "floor": self.floor,
        }


@keras.saving.register_keras_serializable(package="rnn_workshop")
class UtteranceNormalization(layers.Layer):
    """Log-mel frames ``(batch, frames, mels)`` minus each recording's own mean frame.

    A voice, a microphone or a room colours every frame of a recording alike:
    in log energies that is the same number added to each band at every frame.
    Taking away the recording's average frame removes it (cepstral mean
    normalisation), so a network trained on a few voices hears a new one
    better. Padding frames (all bands at the floor, exact zeros in the
    waveform) do not count towards the mean.
    """

    def __init__(self, floor=FLOOR, **kwargs):
        super().__init__(**kwargs)
        self.floor = floor

    def call(self, frames):
        threshold = float(np.log(self.floor)) + 1.0
        sounding = tf.cast(tf.reduce_max(frames, axis=-1, keepdims=True) > threshold, frames.dtype)
        count = tf.maximum(tf.reduce_sum(sounding, axis=1, keepdims=True), 1.0)
        mean = tf.reduce_sum(frames * sounding, axis=1, keepdims=True) / count
        return frames - mean

    def get_config(self):
        return {**super().get_config(), "floor": self.floor}


@keras.saving.register_keras_serializable(package="rnn_workshop")
class Cepstrum(layers.Layer):
    """Log-mel frames ``(batch, frames, mels)`` -> their first ``coefficients`` cepstral
    coefficients ``(batch, frames, coefficients)``: MFCCs, with the 0th (loudness) kept.

    The cosine transform (DCT-II, orthonormal) of each frame's log band energies
    describes the spectrum's shape from coarse to fine. The first terms hold its
    broad outline, the resonances of the mouth that tell one vowel from another;
    the later ones hold fine ripple across the bands, much of it the harmonics of
    the speaker's pitch. Keeping only the first terms keeps what is said and drops
    part of who says it.
    """

    def __init__(self, coefficients=13, **kwargs):
        super().__init__(**kwargs)
        if coefficients < 1:
            raise ValueError(f"Expected coefficients >= 1. Received: {coefficients}")
        self.coefficients = coefficients

    def _check(self, mels):
        if mels is not None and self.coefficients > mels:
            raise ValueError(
                f"Expected at most as many coefficients as mel bands ({mels}). "
                f"Received: {self.coefficients}"
            )

    def build(self, input_shape):
        self._check(input_shape[-1])  # when the model is built, not when it first predicts

    def call(self, frames):
        self._check(frames.shape[-1])
        if frames.shape[-1] is None:  # bands known only at run time
            tf.debugging.assert_less_equal(
                self.coefficients,
                tf.shape(frames)[-1],
                message="Expected at most as many coefficients as mel bands",
            )
        cepstra = tf.signal.dct(tf.cast(frames, "float32"), type=2, norm="ortho")
        return cepstra[..., : self.coefficients]

    def compute_output_shape(self, input_shape):
        self._check(input_shape[-1])
        return (*input_shape[:-1], self.coefficients)

    def get_config(self):
        return {**super().get_config(), "coefficients": self.coefficients}
