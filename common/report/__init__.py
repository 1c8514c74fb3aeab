"""Layer 2, reporting: metrics and the small table printer (:mod:`metrics`), and PNG plots
(:mod:`plots`). Imports only :mod:`common.data`."""

from common.report import metrics, plots  # noqa: F401
