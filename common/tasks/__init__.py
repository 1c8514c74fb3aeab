"""Layer 3, the tasks: one module per application, each the single definition that its app,
notebook, benchmark and tests import.

- :mod:`forecast`: log-return windows, the quantile model, scores beside persistence and
  drift (apps/forecast.py, notebook 08)
- :mod:`sentiment`: text classification, wide & deep (apps/sentiment.py, notebook 09)
- :mod:`charlm`: the character language model and its sampler (apps/textgen.py, notebook 10)
- :mod:`anomaly` (the audit and monitor pipelines), :mod:`detectors` (six of them) and
  :mod:`alarms` (scores turned into alarm intervals, and how those are scored)
  (apps/anomaly.py, notebook 11)

Imports the layers below (models, data, report, scale), never :mod:`common.cli`.
"""

from common.tasks import alarms, anomaly, charlm, detectors, forecast, sentiment  # noqa: F401
