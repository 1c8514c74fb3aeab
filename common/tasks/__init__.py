"""Layer 3, the tasks: one module per application, each the single definition that its app,
notebook, benchmark and tests import.

- :mod:`forecast`: log-return windows, the quantile model, scores beside persistence and
  drift (apps/forecast.py, notebook 08)
- :mod:`sentiment`: text classification, wide & deep (apps/sentiment.py, notebook 09)
- :mod:`charlm`: the character language model and its sampler (apps/textgen.py, notebook 10)
- :mod:`anomaly` (the audit and monitor pipelines), :mod:`detectors` (seven of them) and
  :mod:`alarms` (scores turned into alarm intervals, and how those are scored)
  (apps/anomaly.py, notebook 11)
- :mod:`translate`: sentence pairs, a split by source sentence, word vocabularies, the GRU
  translator with Bahdanau attention, greedy and beam-search decoding, BLEU and chrF;
  :mod:`translate_baselines`: IBM Model 1 word for word and TF-IDF retrieval
  (apps/translate.py, notebook 15, bench/translate.py)
- :mod:`speech`: spoken digits and digit strings, CTC (apps/speech.py, notebook 16)
- :mod:`dna`: splice-junction windows, one-hot nucleotides, a split by near-duplicate group,
  occlusion maps (notebook 19)

Imports the layers below (models, data, report, scale), never :mod:`common.cli`.
"""

from common.tasks import alarms, anomaly, charlm, detectors, forecast, sentiment  # noqa: F401
from common.tasks import dna, speech, translate, translate_baselines  # noqa: F401
