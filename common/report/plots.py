"""Matplotlib plots saved as PNG, with a headless backend.

Apps, benches and scripts run in terminals and CI with no display and only save
PNG files, so outside a Jupyter kernel we select the non-interactive ``Agg``
backend, whatever ``MPLBACKEND`` says: a backend exported for other work (a GUI
toolkit that is not installed, a ``module://`` that does not import) would
otherwise fail at the first figure, after training. A Jupyter kernel keeps its
own inline backend, so notebooks still show plots.
"""

import sys

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (backend first)
import numpy as np  # noqa: E402


def save_figure(figure, path, dpi=120):
    """Save ``figure`` as PNG at ``path`` and close it, freeing its memory."""
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def _laid_out(figure):
    """A figure shown inline (in a notebook) needs the same layout pass a saved one gets."""
    figure.tight_layout()
    return figure


def plot_history(
    history,
    path=None,
    metrics=("loss",),
    title="Training curves",
    x=None,
    xlabel="epoch",
    ylabel=None,
    labels=("training", "validation"),
    baselines=None,
    run_labels=None,
):
    """Training and validation curves per epoch, from ``History.history`` or a dict.

    ``x`` gives each epoch's position on the horizontal axis (say, wall-clock
    minutes; default: the epoch number), ``baselines`` a dashed horizontal
    line per ``{label: value}``. ``history`` may also be a list of histories,
    one per run, named by ``run_labels`` (say, "seed 3"): each run gets one
    colour, training solid and validation dashed. Returns the figure, or saves
    it and returns ``path`` when ``path`` is given.
    """
    if isinstance(history, list):
        return _plot_runs(history, run_labels, path, metrics, title)
    history = getattr(history, "history", history)
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        epochs = np.arange(1, len(history[metric]) + 1) if x is None else x
        axis.plot(epochs, history[metric], marker="o", label=labels[0])
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], marker="o", label=labels[1])
        for label, value in (baselines or {}).items():
            axis.axhline(value, color="0.5", linestyle="--", label=label)
        axis.set(xlabel=xlabel, ylabel=ylabel or metric, title=f"{title}: {metric}")
        axis.legend()
        axis.grid(alpha=0.3)
    return save_figure(figure, path) if path else _laid_out(figure)


def _plot_runs(histories, run_labels, path, metrics, title):
    """:func:`plot_history` for several runs on the same axes: one colour per run."""
    from matplotlib.ticker import MaxNLocator

    histories = [getattr(history, "history", history) for history in histories]
    run_labels = run_labels or [f"run {number}" for number in range(1, len(histories) + 1)]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for name, history in zip(run_labels, histories):
            epochs = np.arange(1, len(history[metric]) + 1)
            label = f"{name}, training"
            line = axis.plot(epochs, history[metric], marker="o", alpha=0.6, label=label)[0]
            if f"val_{metric}" in history:
                label, color = f"{name}, validation", line.get_color()
                axis.plot(epochs, history[f"val_{metric}"], "s--", color=color, label=label)
        axis.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0, -1].legend(fontsize="small")
    return save_figure(figure, path) if path else _laid_out(figure)


def plot_forecast(
    history_dates,
    history_values,
    test_dates,
    test_actual,
    test_median,
    test_lower,
    test_upper,
    future_dates=None,
    future_median=None,
    future_lower=None,
    future_upper=None,
    path=None,
    title="Forecast",
    ylabel="value",
    history_to_show=250,
    zoom_last=90,
):
    """History, test-period predictions against actuals with an interval band, and the future.

    Top panel: the last ``history_to_show`` points before the test period, then
    the whole test period. Bottom panel: the last ``zoom_last`` test points and
    the forecast past the last date, where the band is wide enough to see.
    """
    figure, axes = plt.subplots(2, 1, figsize=(11, 7.5), height_ratios=(1, 1))
    zoom = slice(-zoom_last, None)
    panels = (
        (axes[0], slice(None), title, True),
        (axes[1], zoom, f"Last {zoom_last} test days and the forecast past the last date", False),
    )
    for axis, part, panel_title, show_history in panels:
        if show_history:
            axis.plot(
                history_dates[-history_to_show:],
                history_values[-history_to_show:],
                color="0.55",
                lw=1,
                label="history",
            )
        axis.plot(test_dates[part], test_actual[part], color="black", lw=1, label="actual (test)")
        axis.plot(
            test_dates[part], test_median[part], color="tab:blue", lw=1, label="forecast, median"
        )
        axis.fill_between(
            test_dates[part],
            test_lower[part],
            test_upper[part],
            color="tab:blue",
            alpha=0.2,
            label="10-90% interval",
        )
        if future_dates is not None and len(future_dates):
            axis.plot(
                future_dates,
                future_median,
                color="tab:red",
                marker=".",
                lw=1.5,
                label="forecast past last date",
            )
            axis.fill_between(future_dates, future_lower, future_upper, color="tab:red", alpha=0.2)
        axis.set(title=panel_title, xlabel="date", ylabel=ylabel)
        axis.legend(loc="upper left", fontsize="small")
        axis.grid(alpha=0.3)
        axis.tick_params(axis="x", labelrotation=20)
    return save_figure(figure, path) if path else _laid_out(figure)


def plot_alarms(path, series, detection, title):
    """Two panels: the series with alarm intervals (red) and labelled windows (green) shaded,
    then the smoothed score and its threshold. Saved as PNG at ``path``.

    Args:
        series: a :class:`common.data.csv_series.Series`.
        detection: a :class:`common.tasks.anomaly.Detection` of that series.
    """
    from common.data.windows import runs_of_true

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True, height_ratios=(2, 1))
    times = series.times
    values = series.values
    if values.shape[1] > 1:  # several channels share one axis once standardised
        spread = values.std(axis=0)
        values = (values - values.mean(axis=0)) / np.where(spread > 0, spread, 1)
    for channel in range(values.shape[1]):
        top.plot(
            times,
            values[:, channel],
            lw=0.6,
            label=series.columns[channel],
            color="black" if values.shape[1] == 1 else None,
        )
    if detection.scored_from:
        for axis in (top, bottom):
            axis.axvspan(times[0], times[detection.scored_from - 1], color="0.88", lw=0)
        top.plot([], [], color="0.88", lw=8, label="normal prefix (fitted, not alarmed)")
    windows = runs_of_true(series.is_anomaly) if series.is_anomaly is not None else []
    for number, (start, end) in enumerate(windows):
        top.axvspan(
            times[start],
            times[end],
            color="tab:green",
            alpha=0.25,
            lw=0,
            label="labelled window" if number == 0 else None,
        )
    for number, (start, end) in enumerate(detection.alarms):
        for axis in (top, bottom):
            axis.axvspan(
                times[start],
                times[end],
                color="tab:red",
                alpha=0.35,
                lw=0,
                label="alarm" if number == 0 and axis is top else None,
            )
    top.set_title(title)
    top.set_ylabel(series.columns[0] if values.shape[1] == 1 else "standardised channels")
    top.legend(loc="upper left", fontsize="small")
    bottom.plot(times, detection.smoothed, color="tab:blue", lw=0.7, label="smoothed score")
    bottom.axhline(
        detection.threshold,
        color="tab:red",
        ls="--",
        lw=1,
        label=f"threshold {detection.threshold:.3g}",
    )
    bottom.set_ylabel("anomaly score")
    bottom.legend(loc="upper left", fontsize="small")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    return save_figure(figure, path)


def draw_recurrence(steps=4, path=None):
    """The RNN drawn two ways: rolled (one cell with its feedback loop) and unrolled in time.

    Left: one cell reads ``x(t)``, writes ``h(t)``, and feeds ``h(t)`` back to
    itself for the next step. Right: the same cell copied ``steps`` times, each
    copy passing its state to the next; every copy shares ``W``, ``U`` and ``b``.
    Returns the figure, or saves it and returns ``path``.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if not (isinstance(steps, int) and steps >= 2):
        raise ValueError(f"Expected steps to be an int of at least 2. Received: {steps!r}")
    figure, (rolled, unrolled) = plt.subplots(
        1, 2, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1.6, steps + 0.6]}
    )

    def cell(axis, x, label="cell"):
        axis.add_patch(
            FancyBboxPatch(
                (x - 0.35, 0.75),
                0.7,
                0.5,
                boxstyle="round,pad=0.05",
                facecolor="#dbe9f6",
                edgecolor="#1f4e79",
            )
        )
        axis.text(x, 1.0, label, ha="center", va="center", fontsize=11)
        arrow(axis, (x, 0.05), (x, 0.7))  # input up into the cell
        arrow(axis, (x, 1.3), (x, 1.95))  # state up out of the cell

    def arrow(axis, start, end, **style):
        axis.add_patch(
            FancyArrowPatch(
                start, end, arrowstyle="-|>", mutation_scale=14, color="#333333", **style
            )
        )

    cell(rolled, 0.5)
    rolled.text(0.5, -0.1, "x(t)", ha="center", va="top", fontsize=11)
    rolled.text(0.5, 2.05, "h(t)", ha="center", va="bottom", fontsize=11)
    # The feedback loop: h(t) goes round, delayed one step, into the cell as h(t-1).
    loop = "arc,angleA=0,angleB=0,armA=40,armB=40,rad=8"
    arrow(rolled, (0.9, 1.15), (0.9, 0.85), connectionstyle=loop)
    rolled.text(1.2, 1.0, "h(t-1)", ha="left", va="center", fontsize=9, color="#555555")
    rolled.set(xlim=(-0.3, 2.1), title="rolled: one cell and a loop")

    names = [f"{t}" for t in range(1, steps)] + ["T"]
    for position, name in enumerate(names):
        cell(unrolled, position * 1.6 + 0.5, label=f"cell {name}" if name != "T" else "cell T")
        unrolled.text(position * 1.6 + 0.5, -0.1, f"x({name})", ha="center", va="top")
        unrolled.text(position * 1.6 + 0.5, 2.05, f"h({name})", ha="center", va="bottom")
        if position:
            start = (position - 1) * 1.6 + 0.9
            arrow(unrolled, (start, 1.0), (start + 0.8, 1.0))
            unrolled.text(
                start + 0.4,
                1.08,
                f"h({names[position - 1]})",
                ha="center",
                va="bottom",
                fontsize=8,
                color="#555555",
            )
    unrolled.set(
        xlim=(-0.2, steps * 1.6),
        title=f"unrolled over {steps} steps: the same W, U, b in every copy",
    )
    for axis in (rolled, unrolled):
        axis.set(ylim=(-0.45, 2.4))
        axis.axis("off")
    return save_figure(figure, path) if path else _laid_out(figure)


def plot_attention(weights, source_tokens, output_tokens, path=None, title=None, axis=None):
    """A heat map of attention weights: source tokens across, output tokens down.

    ``weights`` is (output steps, source tokens); row ``t`` says how much output
    word ``t`` drew on each source word (each row sums to 1). The last row may be
    the ``[END]`` step. Draws on ``axis`` if given; else makes a figure and
    saves it at ``path`` (returning ``path``) or returns it.
    """
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != len(source_tokens):
        raise ValueError(
            f"Expected weights of shape (output steps, {len(source_tokens)} source tokens). "
            f"Received: {weights.shape}"
        )
    rows = list(output_tokens) + ["[END]"] * (weights.shape[0] - len(output_tokens))
    figure = None
    if axis is None:
        size = (1.0 + 0.45 * len(source_tokens), 1.0 + 0.4 * len(rows))
        figure, axis = plt.subplots(figsize=(max(size[0], 3.5), max(size[1], 2.5)))
    axis.imshow(weights[: len(rows)], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(source_tokens)), source_tokens, rotation=60, ha="right")
    axis.set_yticks(range(len(rows)), rows)
    axis.set_xlabel("source")
    axis.set_ylabel("output")
    if title:
        axis.set_title(title, fontsize=9)
    if figure is None:
        return axis
    return save_figure(figure, path) if path else _laid_out(figure)
