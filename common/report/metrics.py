"""Forecast and classification metrics in NumPy, and a small table printer.

Each metric takes ``actual`` and ``predicted`` arrays of the same shape and
returns a float, so a reader can check any of them by hand.
"""

import math

import numpy as np


def mae(actual, predicted):
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(predicted))))


def rmse(actual, predicted):
    """Root mean squared error: like MAE, but large misses weigh more.

    >>> round(rmse([0.0, 0.0], [3.0, 4.0]), 4), f"{rmse([0.0, 0.0], [3e300, 4e300]):.4g}"
    (3.5355, '3.536e+300')
    """
    errors = np.abs(np.asarray(actual, dtype="float64") - np.asarray(predicted, dtype="float64"))
    scale = errors.max(initial=0.0)
    if not np.isfinite(scale) or scale == 0:
        return float(np.sqrt(np.mean(errors**2)))
    return float(scale * np.sqrt(np.mean((errors / scale) ** 2)))


def mape(actual, predicted):
    """Mean absolute percentage error, in percent. Undefined where ``actual`` is 0."""
    actual = np.asarray(actual, dtype="float64")
    if np.any(actual == 0):
        return math.nan
    return float(100.0 * np.mean(np.abs((actual - np.asarray(predicted)) / actual)))


def mase(actual, predicted, training_series, lag=1):
    """Mean absolute scaled error (Hyndman and Koehler, 2006).

    MAE divided by the in-sample MAE of the naive forecast ``y[t] = y[t - lag]``
    on the *training* series.  Below 1: better than naive was in training.
    """
    training_series = np.asarray(training_series, dtype="float64")
    naive_error = np.mean(np.abs(training_series[lag:] - training_series[:-lag]))
    if naive_error == 0:
        return math.nan
    return mae(actual, predicted) / float(naive_error)


def directional_accuracy(actual_change, predicted_change):
    """Share of forecasts that got the sign of the change right.

    A forecast of exactly no change (persistence) calls no direction, so it
    scores NaN rather than a misleading 0% or 50%.  Actual changes of exactly
    zero are left out.
    """
    actual_change = np.asarray(actual_change).ravel()
    predicted_change = np.asarray(predicted_change).ravel()
    if np.all(predicted_change == 0):
        return math.nan
    moved = actual_change != 0
    if not np.any(moved):
        return math.nan
    return float(np.mean(np.sign(actual_change[moved]) == np.sign(predicted_change[moved])))


def pinball_loss(actual, predicted_quantile, quantile):
    """Mean pinball (quantile) loss of one quantile forecast; lower is better."""
    error = np.asarray(actual) - np.asarray(predicted_quantile)
    return float(np.mean(np.maximum(quantile * error, (quantile - 1) * error)))


def coverage(actual, lower, upper):
    """Share of ``actual`` values inside ``[lower, upper]``; 0.8 is the goal for a 10-90% band."""
    actual = np.asarray(actual)
    return float(np.mean((actual >= np.asarray(lower)) & (actual <= np.asarray(upper))))


def format_value(value, digits=4):
    """A table cell: ``digits`` significant figures, "n/a" for a missing value.

    >>> format_value(0.012345), format_value(43210.0), format_value(2.77e303)
    ('0.01235', '43,210.0', '2.77e+303')
    """
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (float, np.floating)):
        # Significant figures suit both 0.0123 and 43.5; large values keep one decimal, up
        # to a trillion; beyond that, a power of ten is read more easily than 40 digits.
        if abs(value) >= 1e12:
            return f"{value:.{digits}g}"
        return f"{value:,.1f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"
    return str(value)


def format_table(rows, columns=None, title=None, digits=4):
    """Render ``{row name: {column: value}}`` as an aligned plain-text table.

    >>> print(format_table({"model": {"MAE": 1.25}, "naive": {"MAE": 1.5}}))
    |       | MAE  |
    |-------|------|
    | model | 1.25 |
    | naive | 1.5  |
    """
    columns = list(columns or dict.fromkeys(key for row in rows.values() for key in row))
    header = [""] + columns
    body = [
        [name] + [format_value(row.get(column), digits) for column in columns]
        for name, row in rows.items()
    ]
    widths = [max(len(str(line[i])) for line in [header] + body) for i in range(len(header))]

    def line(cells):
        return (
            "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)) + " |"
        )

    lines = [line(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    lines += [line(cells) for cells in body]
    if title:
        lines.insert(0, title)
    return "\n".join(lines)


def print_table(rows, columns=None, title=None, digits=4):
    """Print :func:`format_table`'s table."""
    print(format_table(rows, columns, title, digits))
