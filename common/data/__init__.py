"""Layer 1, data: windows, chronological splits and the scaler (:mod:`windows`), and the
reader that turns a messy time-series CSV into a regular series (:mod:`csv_series`), the
price reader (:mod:`prices`) and the reader of any file a user brings (:mod:`files`).

Imports nothing else from ``common``.
"""

from common.data.windows import (
    StandardScaler,
    assign_windows,
    chronological_split,
    make_windows,
    runs_of_true,
    window_starts,
    windows_dataset,
)
from common.data import csv_series, files, prices  # noqa: E402, F401
