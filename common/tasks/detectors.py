"""Anomaly detectors: each turns a scaled series into one score per point, higher is stranger.

Every detector reads a series (timesteps, channels), already scaled, and never
sees a label. Each has ``fit(values)`` and ``score(values) -> (timesteps,)``,
``state()``/``set_state()`` for what a saved run needs besides a Keras
model, and ``looks_ahead``: how many points after a point its score reads, so
how many must arrive before that score is final (a monitor's delay).
:data:`DETECTORS` names them and :func:`make_detector` builds one by name;
:mod:`common.tasks.anomaly` runs them on a series.

| name              | class                    | a point's score                                        | looks ahead    |
|-------------------|--------------------------|--------------------------------------------------------|----------------|
| ``hybrid``        | ``LSTMHoltWinters``      | the two below mixed, each in robust z-units            | ``window + 1`` |
| ``bidirectional`` | ``BidirectionalLSTM``    | its error when predicted from both sides (AER-style)   | ``window + 1`` |
| ``forecaster``    | ``LSTMForecaster``       | its error when predicted from the ``window`` before it | 0              |
| ``autoencoder``   | ``LSTMAutoencoder``      | its reconstruction error, mean over covering windows   | ``window - 1`` |
| ``zscore``        | ``RollingZScore``        | distance from the median of the last ``window``, MADs  | 0              |
| ``discord``       | ``MatrixProfileDiscord`` | distance from its windows to their nearest others      | ``window - 1`` |
| ``holt-winters``  | ``HoltWinters``          | the error of exponential smoothing's one-step forecast | 0              |

Every score but the bidirectional LSTM's and the hybrid's is an error of at least 0;
:func:`nonnegative_errors` gives those two's uncentred errors too, which is what
Hundman et al.'s threshold (:func:`common.tasks.alarms.hundman_alarms`) reads.

>>> make_detector("zscore", window=16).window
16
"""

import hashlib
import warnings

import keras
import numpy as np

from common.data.windows import make_windows, sliding_windows
from common.models.recurrent import build_many_to_one
from common.models.seq2seq import build_encoder_decoder
from common.models.training import fit
from common.scale.distribute import setup
from common.tasks.alarms import robust_center_and_scale


def as_2d(series, dtype="float32"):
    """``series`` as a (timesteps, channels) array of ``dtype``; one channel when 1-D."""
    series = np.asarray(series, dtype=dtype)
    return series[:, None] if series.ndim == 1 else series


def robust_units(scores):
    """``(median, robust std)`` of the finite ``scores``, as floats: the unit of a robust z-score.

    Where more than half the scores are equal (a MAD of 0), the standard deviation instead.

    >>> robust_units(np.array([1.0, 1.0, 1.0, 4.0, np.nan]))
    (1.0, 1.299038105676658)
    """
    scores = scores[np.isfinite(scores)]
    center, scale = robust_center_and_scale(scores)
    return float(center), float(scale if scale > 1e-12 else scores.std())


def point_scores_from_window_errors(errors, starts, length):
    """Per-point score: the mean, over every window covering a point, of that window's error at it.

    >>> errors = np.array([[1.0, 3.0], [5.0, 7.0]])   # windows starting at 0 and 1, length 2
    >>> point_scores_from_window_errors(errors, np.array([0, 1]), length=4)
    array([ 1.,  4.,  7., nan])

    Args:
        errors: (num_windows, window) error of each window at each of its positions.
            A detector with one score per window repeats it along the window.
        starts: (num_windows,) start index of each window in the series.
        length: number of points in the series.

    Returns:
        (length,) scores; NaN where no window covers the point.
    """
    errors = np.asarray(errors, dtype="float64")
    window = errors.shape[1]
    positions = (np.asarray(starts)[:, None] + np.arange(window)).ravel()
    totals = np.bincount(positions, weights=errors.ravel(), minlength=length)
    counts = np.bincount(positions, minlength=length)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


# ---------------------------------------------------------------- baselines


class RollingZScore:
    """How far each point lies from the median of the ``window`` points before it, in robust standard deviations.

    The median and the median absolute deviation (MAD, times 1.4826 so it
    matches the standard deviation for Gaussian data) ignore a few outliers, so
    one spike does not hide the next. With several channels a point scores its
    largest channel. Nothing is learned; ``fit`` does nothing.
    """

    name = "rolling z-score"
    quiet_below = 3.0  # robust standard deviations: this close to the recent median is never news
    looks_ahead = 0  # the window before the point

    def __init__(self, window=64):
        self.window = int(window)

    def fit(self, normal_series, **unused):
        return self

    def state(self):
        return {}

    def set_state(self, state):
        return self

    def score(self, series):
        series = as_2d(series)
        past, _ = make_windows(series, self.window)  # past[i]: the window before point i + window
        median, spread = robust_center_and_scale(past, axis=1)
        spread = np.maximum(spread, 1e-3)  # a flat stretch: series are scaled to unit variance
        current = series[self.window :].astype("float64")
        scores = np.full(len(series), np.nan)
        scores[self.window :] = (np.abs(current - median) / spread).max(axis=1)
        return scores

    def config(self):
        return {"window": self.window}


class MatrixProfileDiscord:
    """Distance from each window to its nearest neighbour among the normal training windows.

    The matrix profile (Yeh et al., 2016) gives every subsequence the distance
    to its most similar other subsequence, after z-normalising both (so only
    shape counts, not level or scale); a subsequence far from everything is a
    *discord*. Here the neighbours are searched in the normal training part
    only (an AB-join), so a strange shape that repeats in the test part is
    still strange. Channels are scored separately and averaged. A point's score
    is the mean over the windows covering it.

    Exact, in NumPy: windows become z-normalised rows, and one matrix product
    per block gives all their correlations; distance = sqrt(2 * window * (1 - correlation)).
    """

    name = "MP discord"
    quiet_below = 1.0  # about a correlation of 0.99 with the nearest window at window 64: a repeat

    def __init__(self, window=64, block_size=2048):
        self.window = int(window)
        self.block_size = block_size
        self.reference = None

    @property
    def looks_ahead(self):
        return self.window - 1  # the last window covering a point starts at it

    def fit(self, normal_series, **unused):
        self.reference = as_2d(normal_series)
        if len(self.reference) < self.window + 1:
            raise ValueError(
                f"Expected a normal part longer than window = {self.window}. Received: {len(self.reference)} points"
            )
        return self

    @staticmethod
    def _znormalise(windows):
        centred = windows - windows.mean(axis=1, keepdims=True)
        spread = centred.std(axis=1, keepdims=True)
        return np.where(spread > 1e-8, centred / np.maximum(spread, 1e-8), 0.0)

    def state(self):
        return {"reference": self.reference.tolist()}

    def set_state(self, state):
        self.reference = as_2d(state["reference"])
        return self

    def window_scores(self, series, exclude_offset=None):
        """Nearest-neighbour distance of every window of ``series`` to the reference windows.

        ``exclude_offset``: when ``series`` starts at that index of the series the
        reference was cut from (e.g. 0: it *is* the reference), windows overlapping
        a reference window by more than half are not its neighbours (a trivial match).
        """
        # float64: near a repeat, 1 - correlation is below float32's resolution, and the square
        # root turns its round-off (which differs with the number of rows) into visible scores.
        series = as_2d(series, "float64")
        reference = self.reference.astype("float64")
        distances = np.zeros(len(series) - self.window + 1)
        for channel in range(series.shape[1]):
            references = self._znormalise(
                sliding_windows(reference[:, channel], self.window)[..., 0]
            )
            queries = self._znormalise(sliding_windows(series[:, channel], self.window)[..., 0])
            nearest = np.empty(len(queries))
            for block_start in range(0, len(queries), self.block_size):
                block = queries[block_start : block_start + self.block_size]
                correlation = block @ references.T / self.window
                if exclude_offset is not None:
                    query_index = exclude_offset + block_start + np.arange(len(block))[:, None]
                    trivial = (
                        np.abs(query_index - np.arange(len(references))[None, :]) < self.window // 2
                    )
                    correlation = np.where(trivial, -np.inf, correlation)
                nearest[block_start : block_start + len(block)] = correlation.max(axis=1)
            distances += np.sqrt(np.maximum(2 * self.window * (1 - nearest), 0.0))
        return distances / series.shape[1]

    def score(self, series, exclude_offset=None):
        if exclude_offset is None and np.array_equal(as_2d(series), self.reference):
            exclude_offset = 0  # an audit: the series is its own reference, so skip self-matches
        window_scores = self.window_scores(series, exclude_offset)
        errors = np.repeat(window_scores[:, None], self.window, axis=1)
        return point_scores_from_window_errors(
            errors, np.arange(len(window_scores)), len(as_2d(series))
        )

    def config(self):
        return {"window": self.window}


class HoltWinters:
    """Baseline: the error of a Holt-Winters forecast of each point from the points before it.

    Classical exponential smoothing (statsmodels' ``ExponentialSmoothing``)
    with an additive trend, and an additive season when the fitted series has
    one (:func:`dominant_period`). Its smoothing weights are fitted once; new
    data is then run through the same weights, so scores of a monitored series
    use nothing learned from it. A series that starts where the fitted one did
    (an audit, a monitor's continuation) starts from the fitted level, trend and
    season; one that starts elsewhere (a new file, which may begin anywhere in the
    cycle) has its starting state estimated from itself, the weights held fixed:
    started from the fitted state, its season would be out of phase for good.
    """

    # The fitted series' first points, kept to recognise a series that starts there.
    start_points = 16

    name = "Holt-Winters"
    quiet_below = 0.1  # standard deviations of the scaled series, as for the LSTM forecaster
    looks_ahead = 0  # a forecast from the past

    def __init__(self, window=48):
        self.window = int(window)  # unused: exponential smoothing looks at the whole past
        self.period, self.params, self.start = None, None, None

    def _model(self, values, params=None):
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        seasonal = "add" if self.period else None
        if params is None:
            return ExponentialSmoothing(
                values,
                trend="add",
                seasonal=seasonal,
                seasonal_periods=self.period,
                initialization_method="estimated",
            )
        return ExponentialSmoothing(
            values,
            trend="add",
            seasonal=seasonal,
            seasonal_periods=self.period,
            initialization_method="known",
            initial_level=params["initial_level"],
            initial_trend=params["initial_trend"],
            initial_seasonal=params["initial_seasons"] if self.period else None,
        )

    def fit(self, normal_series, **unused):
        import statsmodels.tsa.holtwinters  # noqa: F401  before silencing: its import sets a filter

        series = as_2d(normal_series).astype("float64")
        self.period = dominant_period(series, max_lag=len(series) // 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels warns about its optimiser's convergence
            fitted = [
                self._model(series[:, channel]).fit().params for channel in range(series.shape[1])
            ]
        keys = ["smoothing_level", "smoothing_trend", "initial_level", "initial_trend"]
        if self.period:  # without a season statsmodels reports NaN for its weight: no JSON for it
            keys += ["smoothing_seasonal", "initial_seasons"]
        self.params = [{key: np.asarray(p[key]).tolist() for key in keys} for p in fitted]
        self.start = series[: self.start_points].tolist()
        return self

    def starts_like_fitted(self, series):
        """Whether ``series`` begins with the fitted series' first points (saved runs without them: yes)."""
        if self.start is None:
            return True
        start = np.asarray(self.start)
        return len(series) >= len(start) and np.allclose(series[: len(start)], start)

    def score(self, series):
        series = as_2d(series).astype("float64")
        known_start = self.starts_like_fitted(series)
        errors = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for channel, params in enumerate(self.params):
                weights = {key: params[key] for key in params if key.startswith("smoothing")}
                fitted = None if known_start else self._from_own_start(series[:, channel], weights)
                if fitted is None:
                    model = self._model(series[:, channel], params)
                    fitted = model.fit(optimized=False, **weights).fittedvalues
                errors.append(np.abs(series[:, channel] - fitted))
        return np.mean(errors, axis=0)

    def _from_own_start(self, values, weights):
        """One-step forecasts of ``values`` from a starting state estimated on them, ``weights``
        held fixed; None when they are too short to estimate a season from."""
        model = self._model(values)
        try:
            with model.fix_params(weights):
                return model.fit().fittedvalues
        except ValueError:
            return None

    def state(self):
        return {"period": self.period, "params": self.params, "start": self.start}

    def set_state(self, state):
        self.period, self.params = state["period"], state["params"]
        self.start = state.get("start")  # runs saved before it was kept: None
        return self


# ---------------------------------------------------------------- recurrent detectors


def build_lstm_autoencoder(window, channels, units=32, cell="lstm"):
    """An encoder-decoder that must squeeze a whole window through its final state, then rebuild it.

    Built by :func:`common.build_encoder_decoder`. The decoder reads zeros
    (an "unconditioned" decoder, Srivastava et al., 2015), not the shifted
    window that teacher forcing would give it: with the true previous value at
    every step it could simply copy, and would rebuild anomalies as well as
    normal data. Everything it knows about the window passes through the
    encoder's ``units``-wide state, which is fitted to normal shapes only.

    >>> model = build_lstm_autoencoder(window=16, channels=2, units=8)
    >>> [tuple(spec.shape) for spec in model.inputs], tuple(model.output.shape)
    ([(None, 16, 2), (None, 16, 1)], (None, 16, 2))
    """
    return build_encoder_decoder(
        (window, channels), (window, 1), channels, cell=cell, units=units, name="lstm_autoencoder"
    )


def build_lstm_forecaster(window, channels, units=32, cell="lstm"):
    """Many-to-one network predicting the next point of every channel from the ``window`` points before it."""
    return build_many_to_one(
        (window, channels), channels, cell=cell, units=units, name="lstm_forecaster"
    )


def _select(examples, keep):
    """Rows ``keep`` (a boolean mask or indices) of ``(inputs, targets)``; either may be a list."""

    def pick(arrays):
        return [array[keep] for array in arrays] if isinstance(arrays, list) else arrays[keep]

    return pick(examples[0]), pick(examples[1])


def _first(arrays):
    return arrays[0] if isinstance(arrays, list) else arrays


def evenly_spaced(examples, max_count):
    """At most ``max_count`` examples, evenly spaced in time, from ``(inputs, targets)`` arrays or lists of arrays."""
    targets = examples[1]
    count = len(targets[0] if isinstance(targets, list) else targets)
    if count <= max_count:
        return examples
    return _select(examples, np.linspace(0, count - 1, max_count).round().astype(int))


class _RecurrentDetector:
    """Shared training loop: fit on windows of the normal part, early-stop on a held-out normal tail.

    Neighbouring windows overlap almost entirely, so a long normal part is
    thinned to ``max_windows`` evenly spaced windows: the training time stays
    bounded and little is lost.

    Training is short on purpose (10 epochs, stopping after 2 without
    improvement): an audit fits on data that holds the anomalies, and a network
    trained longer learns them too (the README gives the NAB figures).
    """

    max_windows = 2000
    patience = 2
    quiet_below = 0.1  # standard deviations of the scaled series: an error this small is not news
    looks_ahead = 0  # a forecast from the past; the autoencoder and the bidirectional LSTM differ

    def __init__(
        self,
        window=48,
        units=32,
        epochs=10,
        batch_size=64,
        model=None,
        verbose=0,
        patience=None,
        distribution=None,
    ):
        self.window, self.units, self.epochs, self.batch_size = (
            int(window),
            units,
            epochs,
            batch_size,
        )
        self.model, self.verbose, self.distribution = model, verbose, distribution
        if patience is not None:  # e.g. longer training on data known to be normal
            self.patience = patience
        self.epochs_run = 0

    def fit(self, normal_series, validation_series=None, max_seconds=None):
        """Fit on windows of ``normal_series`` (timesteps, channels).

        Early stopping watches ``validation_series`` when given (a monitor's
        held-out normal tail); otherwise every tenth window is held out (an audit).
        """
        normal_series = as_2d(normal_series)
        distribution = self.distribution or setup("none")
        if self.model is None:
            with distribution.scope():  # the weights are mirrored on every replica
                self.model = self.build(normal_series.shape[1])
                self.compile(self.model)
        examples = evenly_spaced(self.examples(normal_series), self.max_windows)
        if validation_series is not None:
            train = examples
            validation = evenly_spaced(
                self.examples(as_2d(validation_series)), self.max_windows // 2
            )
        else:
            every_tenth = np.arange(len(_first(examples[1]))) % 10 == 9
            train, validation = _select(examples, ~every_tenth), _select(examples, every_tenth)
        history = fit(
            self.model,
            train,
            validation,
            epochs=self.epochs,
            batch_size=distribution.global_batch(self.batch_size),
            patience=self.patience,
            max_seconds=max_seconds,
            verbose=self.verbose,
            distribution=distribution,
            # one name per series, the same on every worker and after a restart
            name=hashlib.sha1(normal_series.tobytes()).hexdigest()[:16],
        )
        self.model = distribution.local_copy(self.model)  # scores are computed on one device
        self.epochs_run = len(history.history["loss"])
        self.history = history
        return self

    def compile(self, model):
        model.compile(optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0), loss="mse")

    def state(self):
        """What besides the model a saved run needs to score like this one (JSON-ready)."""
        return {}

    def set_state(self, state):
        return self


class LSTMAutoencoder(_RecurrentDetector):
    """Scores each point by how badly the autoencoder rebuilds it, averaged over the windows covering it."""

    name = "LSTM autoencoder"

    @property
    def looks_ahead(self):
        return self.window - 1  # the last window covering a point starts at it

    def build(self, channels):
        return build_lstm_autoencoder(self.window, channels, self.units)

    def _inputs(self, windows):
        return [windows, np.zeros(windows.shape[:2] + (1,), dtype="float32")]

    def examples(self, series):
        windows = np.ascontiguousarray(sliding_windows(series, self.window))
        return self._inputs(windows), windows

    def score(self, series, batch_size=1024):
        series = as_2d(series)
        windows = np.ascontiguousarray(sliding_windows(series, self.window))
        rebuilt = self.model.predict(self._inputs(windows), batch_size=batch_size, verbose=0)
        errors = ((rebuilt - windows) ** 2).mean(
            axis=2
        )  # (num_windows, window): squared error, mean over channels
        return point_scores_from_window_errors(errors, np.arange(len(windows)), len(series))


class LSTMForecaster(_RecurrentDetector):
    """Scores each point by the absolute error of predicting it from the ``window`` points before it.

    With several channels, the error is averaged over channels. The first
    ``window`` points have no prediction and score NaN.
    """

    name = "LSTM forecaster"

    def build(self, channels):
        return build_lstm_forecaster(self.window, channels, self.units)

    def examples(self, series):
        inputs, next_points = make_windows(series, self.window)
        return inputs, next_points[:, 0]

    def score(self, series, batch_size=1024):
        series = as_2d(series)
        inputs, targets = self.examples(series)
        predicted = self.model.predict(inputs, batch_size=batch_size, verbose=0)
        scores = np.full(len(series), np.nan)
        scores[self.window :] = np.abs(predicted - targets).mean(axis=1)
        return scores


def build_lstm_aer(window, channels, units=32):
    """A bidirectional LSTM that predicts both neighbours of a window and rebuilds the window.

    After AER (Wong et al., IEEE BigData 2022), the best of the published
    pipelines on NAB: a bidirectional encoder reads ``window`` points; from its
    state one head predicts the point just after them (forward), one the point
    just before them (backward), and a decoder rebuilds the window itself. The
    reconstruction task regularises the encoder; the anomaly score uses the
    two predictions.

    >>> model = build_lstm_aer(window=16, channels=2, units=8)
    >>> [tuple(output.shape) for output in model.outputs]
    [(None, 2), (None, 2), (None, 16, 2)]
    """
    inputs = keras.Input((window, channels), name="window")
    state = keras.layers.Bidirectional(keras.layers.LSTM(units), name="encoder")(inputs)
    forward = keras.layers.Dense(channels, name="next_point")(state)
    backward = keras.layers.Dense(channels, name="previous_point")(state)
    repeated = keras.layers.RepeatVector(window)(state)
    decoded = keras.layers.LSTM(units, return_sequences=True, name="decoder")(repeated)
    rebuilt = keras.layers.TimeDistributed(keras.layers.Dense(channels), name="rebuilt")(decoded)
    return keras.Model(inputs, [forward, backward, rebuilt], name="lstm_aer")


class BidirectionalLSTM(_RecurrentDetector):
    """Scores each point by how badly it is predicted from the window after it and the window before it.

    The forward head predicts a point from the ``window`` points before it, the
    backward head from the ``window`` points after it. Each head's absolute
    error becomes a robust z-score (median and MAD of that head's errors on the
    fitted data, so one head's scale does not drown the other's) and a point
    scores the mean of its two. The first and last points have one side only:
    the newest ``window + 1`` points of a series are judged from the past alone,
    and their scores change as later points arrive.

    :meth:`errors` is the same without the centring: each head's error in units
    of its MAD, at least 0, for rules that need errors measured from 0.
    """

    name = "bidirectional LSTM"
    quiet_below = 0.0  # robust z-scores: their typical size is known, so no floor is needed

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.centers, self.scales = None, None

    @property
    def looks_ahead(self):
        # The backward head reads the window after the point, and the segment it reads is cut
        # with the point after that window too (the forward head's target).
        return self.window + 1

    def build(self, channels):
        return build_lstm_aer(self.window, channels, self.units)

    def compile(self, model):
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3, clipnorm=1.0),
            loss=["mse", "mse", "mse"],
            loss_weights=[0.25, 0.25, 0.5],
        )

    def examples(self, series):
        """Segments of ``window + 2`` points: the middle ``window`` is read, the two ends predicted."""
        segments = np.ascontiguousarray(sliding_windows(series, self.window + 2))
        middle = segments[:, 1:-1]
        return middle, [segments[:, -1], segments[:, 0], middle]

    def fit(self, normal_series, validation_series=None, max_seconds=None):
        super().fit(normal_series, validation_series, max_seconds)
        centers, scales = [], []
        for errors in self._errors(as_2d(normal_series)):  # forward, then backward
            center, scale = robust_units(errors)
            centers.append(center)
            scales.append(scale or 1.0)  # every error equal: any unit will do
        self.centers, self.scales = tuple(centers), tuple(scales)
        return self

    def _errors(self, series):
        """(forward, backward) absolute errors per point, NaN where a head cannot reach."""
        inputs, (after, before, _) = self.examples(series)
        forward, backward, _ = self.model.predict(inputs, batch_size=1024, verbose=0)
        count = len(inputs)
        forward_errors = np.full(len(series), np.nan)
        forward_errors[self.window + 1 :] = np.abs(forward - after).mean(axis=1)
        backward_errors = np.full(len(series), np.nan)
        backward_errors[:count] = np.abs(backward - before).mean(axis=1)
        return forward_errors, backward_errors

    def score(self, series):
        """Per point, the mean of the two heads' robust z-scores (below 0 for a typical point)."""
        return self._mean_of_heads(series, self.centers)

    def errors(self, series):
        """Per point, the mean of the two heads' absolute errors, each in units of its MAD (>= 0)."""
        return self._mean_of_heads(series, (0.0, 0.0))

    def _mean_of_heads(self, series, centers):
        errors = self._errors(as_2d(series))
        standardised = [(e - c) / s for e, c, s in zip(errors, centers, self.scales)]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a point no head reaches stays NaN
            return np.nanmean(np.stack(standardised), axis=0)

    def state(self):
        return {"centers": list(self.centers), "scales": list(self.scales)}

    def set_state(self, state):
        self.centers, self.scales = tuple(state["centers"]), tuple(state["scales"])
        return self


class LSTMHoltWinters:
    """The bidirectional LSTM's score and the Holt-Winters residual, each robustly scaled, then weighted.

    Two views of one point: the LSTM judges it from the windows on both sides
    (it learns shapes, such as a changed daily pattern), Holt-Winters from its
    smoothed level, trend and season (it catches a jump at once and has no
    seed). Each part's scores on the fitted data give that part's median and
    robust standard deviation, so both speak in robust z-units; a point scores
    ``(1 - weight) * lstm + weight * holt_winters``. The weight was chosen on
    NAB's development folders; scored by leaving one folder out
    (``bench/anomaly.py --lofo``), the mix averaged above each part alone over
    three seeds and varied far less from seed to seed than the LSTM alone, since
    its Holt-Winters half has no seed. ``weight=0`` is the LSTM alone, 1 Holt-Winters alone.
    """

    name = "LSTM + Holt-Winters"
    quiet_below = 0.0  # robust z-scores, as the bidirectional LSTM's
    weight = 0.6  # the Holt-Winters share, chosen on NAB's development folders (README)
    # A part's scale is at least this: on a noise-free series Holt-Winters' errors are
    # round-off (1e-17), and in units of their own spread round-off would look like news.
    min_scale = 0.01

    def __init__(self, window=48, *training, weight=None, **options):
        """``training``, ``options``: :class:`BidirectionalLSTM`'s (units, epochs, model, ...)."""
        self.lstm = BidirectionalLSTM(window, *training, **options)
        self.holt_winters = HoltWinters(window)
        if weight is not None:
            self.weight = self._checked(weight)
        self.centers, self.scales = None, None

    @staticmethod
    def _checked(weight):
        if not isinstance(weight, (int, float)) or not 0 <= weight <= 1:  # NaN fails too
            raise ValueError(f"Expected a weight between 0 and 1. Received: weight={weight!r}")
        return float(weight)

    # What the app and a saved run read from a recurrent detector: the LSTM's.
    window = property(lambda self: self.lstm.window)
    units = property(lambda self: self.lstm.units)
    model = property(lambda self: self.lstm.model)
    epochs_run = property(lambda self: self.lstm.epochs_run)
    looks_ahead = property(lambda self: self.lstm.looks_ahead)

    def fit(self, normal_series, validation_series=None, max_seconds=None):
        self.lstm.fit(normal_series, validation_series, max_seconds)
        self.holt_winters.fit(normal_series)
        centers, scales = [], []
        for scores in self.parts(normal_series):
            center, scale = robust_units(scores)
            centers.append(center)
            scales.append(max(scale, self.min_scale))
        self.centers, self.scales = tuple(centers), tuple(scales)
        return self

    def parts(self, series):
        """``(lstm, holt_winters)`` scores, each (timesteps,) in its own units."""
        return self.lstm.score(series), self.holt_winters.score(series)

    def score(self, series, weight=None):
        """Per point, the weighted mix of both parts' robust z-scores (``weight``: another mix)."""
        return self.mix(self.parts(series), weight)

    def mix(self, parts, weight=None):
        """The score from :meth:`parts`' output: each part robustly scaled, then weighted."""
        weight = self.weight if weight is None else weight
        lstm, holt_winters = [(p - c) / s for p, c, s in zip(parts, self.centers, self.scales)]
        return (1 - weight) * lstm + weight * holt_winters

    def errors(self, series):
        """The same mix without centring, each part at least 0: what Hundman et al.'s rule reads."""
        lstm = self.lstm.errors(series) / self.scales[0]
        holt_winters = self.holt_winters.score(series) / self.scales[1]
        return (1 - self.weight) * lstm + self.weight * holt_winters

    def state(self):
        return {
            "lstm": self.lstm.state(),
            "holt_winters": self.holt_winters.state(),
            "centers": list(self.centers),
            "scales": list(self.scales),
            "weight": self.weight,
        }

    def set_state(self, state):
        self.lstm.set_state(state["lstm"])
        self.holt_winters.set_state(state["holt_winters"])
        self.centers, self.scales = tuple(state["centers"]), tuple(state["scales"])
        self.weight = self._checked(state["weight"])
        return self


# ---------------------------------------------------------------- one registry

DETECTORS = {
    "hybrid": LSTMHoltWinters,
    "bidirectional": BidirectionalLSTM,
    "forecaster": LSTMForecaster,
    "autoencoder": LSTMAutoencoder,
    "zscore": RollingZScore,
    "discord": MatrixProfileDiscord,
    "holt-winters": HoltWinters,
}
RECURRENT = ("hybrid", "bidirectional", "forecaster", "autoencoder")
NAMES = {key: detector.name for key, detector in DETECTORS.items()}  # what tables call them


def nonnegative_errors(detector, series):
    """Per-point errors of at least 0 from a fitted detector: what Hundman et al.'s rule reads.

    Every detector's score is already such an error but the bidirectional
    LSTM's and the hybrid's, robust z-scores centred on 0; their ``errors``
    methods drop the centring.
    """
    if hasattr(detector, "errors"):
        return detector.errors(series)
    return detector.score(series)


def make_detector(
    name, window=48, units=32, epochs=10, batch_size=64, model=None, verbose=0, distribution=None
):
    """A detector from :data:`DETECTORS` by name; the recurrent ones also take training settings.

    ``verbose`` is Keras' training progress: 0 silent, 1 a progress bar, 2 one line per epoch.
    ``distribution`` (a :class:`common.scale.distribute.Distribution`) trains data-parallel;
    ``batch_size`` is then per replica.

    >>> make_detector("zscore", window=16).window
    16
    """
    if name not in DETECTORS:
        raise ValueError(f"Expected a detector in {sorted(DETECTORS)}. Received: {name!r}")
    if name in RECURRENT:
        return DETECTORS[name](
            window,
            units,
            epochs,
            batch_size,
            model=model,
            verbose=verbose,
            distribution=distribution,
        )
    return DETECTORS[name](window)


def dominant_period(values, max_lag=None, min_correlation=0.3):
    """The lag of the strongest repeating pattern (autocorrelation peak), or None.

    Args:
        values: (timesteps,) or (timesteps, channels); the first channel is used.
        max_lag: longest period considered (default: a third of the series).
        min_correlation: a peak weaker than this is no season.

    >>> day = np.sin(2 * np.pi * np.arange(960) / 48)
    >>> dominant_period(day)
    48
    """
    values = as_2d(values, "float64")[:, 0]
    values = values - values.mean()
    if not values.any():
        return None
    max_lag = int(max_lag or len(values) // 3)
    spectrum = np.fft.rfft(values, 2 * len(values))
    correlation = np.fft.irfft(spectrum * np.conj(spectrum))[: max_lag + 1]
    correlation /= correlation[0]
    peaks = [
        lag
        for lag in range(2, max_lag)
        if correlation[lag] >= correlation[lag - 1] and correlation[lag] > correlation[lag + 1]
    ]
    peaks = [lag for lag in peaks if correlation[lag] >= min_correlation]
    return max(peaks, key=lambda lag: correlation[lag]) if peaks else None
