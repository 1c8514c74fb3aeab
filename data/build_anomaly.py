"""Labelled series for anomaly detection (`apps/anomaly.py`, `bench/anomaly.py`), from aeon.

Every file has the TimeEval layout aeon ships: a `timestamp` column, one or
more value columns, and `is_anomaly` (1 inside a labelled anomaly, else 0).
Each file's first rows are its own anomaly-free training part; the apps read
its length from `TRAINING_STEPS` below (the files themselves carry no split
column, so any CSV reader sees plain values).

- `anomaly_internal_bleeding16.csv.gz`: UCR anomaly archive series 135,
  "InternalBleeding16" (KDD Cup 2021 multi-dataset anomaly competition): one
  patient's vital-sign trace, 7,501 steps, integer timestamps. Steps 0-1199 are
  the archive's anomaly-free training part; one labelled anomaly, steps
  4187-4198 (12 steps of erratic jumps in a smooth decline).
- `anomaly_daphnet_s06r02e0.csv.gz`: Daphnet freezing-of-gait recording
  S06R02E0 (TimeEval collection): nine accelerometer channels (ankle, upper leg,
  trunk; three axes each), 7,040 steps at 64 Hz with datetime timestamps.
  **This excerpt contains no freezing episode: every label is 0** (aeon 1.6
  says so when deprecating it). It measures false alarms on normal walking,
  not recall. No training part of its own; the patient stands still for the
  first 1,500 steps, so `apps/anomaly.py` takes the first half (3,520 steps)
  as its normal prefix.
- `anomaly_ecg_diff_count_3.csv.gz`: TimeEval's synthetic "ecg-diff-count-3"
  (made with GutenTAG): its 10,000-step anomaly-free training series followed
  by its 10,000-step test series (timestamps renumbered 0-19,999); three
  labelled anomalies of 100 steps each. Both halves drift the same way (beat
  amplitude falls from about 9 to 8 units), so at the join, step 10,000, the
  amplitude steps back up: normal beats on both sides, but an unusual pair.
"""

import gzip
import importlib.util
import io
from pathlib import Path

import pandas as pd

PACKAGES = ["aeon==1.6.0"]
SOURCE = (
    "CSV files in `aeon/datasets/data/` of the aeon package: `KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv` "
    "(UCR time-series anomaly archive; Keogh, Dutta Roy, Naik and Agrawal, 'Multi-dataset Time-Series Anomaly "
    "Detection Competition', SIGKDD 2021), `Daphnet_S06R02E0/S06R02E0.csv` (Daphnet Freezing of Gait, Roggen, "
    "Plotnik and Hausdorff, UCI Machine Learning Repository, doi:10.24432/C56K78, in TimeEval's layout) and "
    "`UnitTest/ecg-diff-count-3_{TRAIN_NA,TEST}.csv` (TimeEval/GutenTAG synthetic series; Wenig, Schmidl and "
    "Papenbrock, PVLDB 15(12), 2022)."
)
LICENCE = (
    "aeon: BSD 3-Clause. Daphnet: CC BY 4.0 (UCI repository). The UCR anomaly archive and the GutenTAG/TimeEval "
    "series are published by their authors for research use; cite the papers above."
)
FILES = {
    "anomaly_internal_bleeding16.csv.gz": "UCR anomaly archive InternalBleeding16: 7,501 steps, training part 0-1199, one labelled anomaly (aeon)",
    "anomaly_daphnet_s06r02e0.csv.gz": "Daphnet S06R02E0: 9 accelerometer channels, 7,040 steps at 64 Hz, no labelled episode in this excerpt (aeon)",
    "anomaly_ecg_diff_count_3.csv.gz": "TimeEval synthetic ECG: 20,000 steps, training part 0-9999, three labelled anomalies (aeon)",
}
# Length of each file's anomaly-free training prefix; None: the file has none of its own.
TRAINING_STEPS = {
    "anomaly_internal_bleeding16.csv.gz": 1200,
    "anomaly_daphnet_s06r02e0.csv.gz": None,
    "anomaly_ecg_diff_count_3.csv.gz": 10000,
}


def aeon_data_dir():
    # Read the CSVs directly rather than through aeon's loaders, which drop the timestamps.
    package_dir = Path(importlib.util.find_spec("aeon").submodule_search_locations[0])
    return package_dir / "datasets" / "data"


def write_gzipped_csv(frame, path):
    # mtime=0: the same data gives the same bytes, hence the same checksum in README.md.
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as handle:
        handle.write(frame.to_csv(index=False).encode("utf-8"))
    Path(path).write_bytes(buffer.getvalue())


def build(data_dir):
    source = aeon_data_dir()
    bleeding = pd.read_csv(source / "KDD-TSAD_135" / "135_UCR_Anomaly_InternalBleeding16_TEST.csv")
    training = pd.read_csv(source / "KDD-TSAD_135" / "135_UCR_Anomaly_InternalBleeding16_TRAIN.csv")
    # The archive's TRAIN file is the first 1,200 rows of its TEST file; bundle the TEST file once.
    assert bleeding.iloc[: len(training), 1].equals(training.iloc[:, 1]), (
        "TRAIN is no longer a prefix of TEST"
    )
    assert len(training) == TRAINING_STEPS["anomaly_internal_bleeding16.csv.gz"]
    write_gzipped_csv(bleeding, data_dir / "anomaly_internal_bleeding16.csv.gz")

    daphnet = pd.read_csv(source / "Daphnet_S06R02E0" / "S06R02E0.csv")
    daphnet["is_anomaly"] = daphnet["is_anomaly"].astype(int)
    write_gzipped_csv(daphnet, data_dir / "anomaly_daphnet_s06r02e0.csv.gz")

    normal = pd.read_csv(source / "UnitTest" / "ecg-diff-count-3_TRAIN_NA.csv")
    test = pd.read_csv(source / "UnitTest" / "ecg-diff-count-3_TEST.csv")
    ecg = pd.concat([normal, test], ignore_index=True).rename(columns={"value-0": "value"})
    ecg["timestamp"] = range(len(ecg))
    ecg["is_anomaly"] = ecg["is_anomaly"].astype(int)
    ecg["value"] = ecg["value"].round(6)
    write_gzipped_csv(ecg, data_dir / "anomaly_ecg_diff_count_3.csv.gz")
    for name, frame in (
        ("InternalBleeding16", bleeding),
        ("Daphnet S06R02E0", daphnet),
        ("ecg-diff-count-3", ecg),
    ):
        print(f"{name}: {len(frame)} rows, {int(frame['is_anomaly'].sum())} labelled anomalous")
