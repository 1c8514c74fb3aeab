"""Layer 3, the tasks: one module per application, each the single definition that its app,
notebook, benchmark and tests import.

- :mod:`sentiment`: text classification, wide & deep (apps/sentiment.py, notebook 09)
- :mod:`charlm`: the character language model and its sampler (apps/textgen.py, notebook 10)
- :mod:`anomaly` and :mod:`alarms`: detectors, and scores turned into alarm intervals
  (apps/anomaly.py, notebook 11)

Imports the layers below (models, data, report, scale), never :mod:`common.cli`.
"""

from common.tasks import alarms, anomaly, charlm, sentiment  # noqa: F401
