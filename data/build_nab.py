"""One real monitoring series from the Numenta Anomaly Benchmark (NAB), the anomaly app's default.

`anomaly_nab_machine_temperature.csv.gz` is NAB's
`realKnownCause/machine_temperature_system_failure.csv`: the temperature of an
internal component of a large industrial machine, every 5 minutes from
2013-12-02 to 2014-02-19 (22,695 readings). NAB labels four windows: a planned
shutdown, a hard-to-see early sign of the failure, and the catastrophic failure
itself. The file keeps NAB's `timestamp,value` columns and adds `is_anomaly`
(1 for readings inside one of NAB's labelled windows from
`combined_windows.json`), so it reads on its own with no labels file.
"""

import gzip
import io
import json
from pathlib import Path

import pandas as pd

PACKAGES = []  # read from the NAB copy the project keeps beside the repository
REBUILD = "python data/rebuild.py nab  # reads ../shared/nab-dev/"
SOURCE = (
    "numenta/NAB (commit ea702d7), `data/realKnownCause/machine_temperature_system_failure.csv` and "
    "its windows in `labels/combined_windows.json`, from the copy in `../shared/nab-dev/`. "
    "Lavin and Ahmad, 'Evaluating Real-time Anomaly Detection Algorithms: the Numenta Anomaly "
    "Benchmark', IEEE ICMLA 2015."
)
LICENCE = "MIT (NAB, Copyright (c) Numenta, Inc.)"
FILES = {
    "anomaly_nab_machine_temperature.csv.gz": "NAB machine temperature: 22,695 readings every 5 minutes, four labelled windows (NAB realKnownCause)",
}
NAB_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "nab-dev"
KEY = "realKnownCause/machine_temperature_system_failure.csv"


def build(data_dir, nab_dir=NAB_DIR):
    frame = pd.read_csv(nab_dir / "data" / KEY)
    times = pd.to_datetime(frame["timestamp"])
    inside = pd.Series(False, index=frame.index)
    for start, end in json.loads((nab_dir / "combined_windows.json").read_text())[KEY]:
        inside |= (times >= pd.Timestamp(start)) & (times <= pd.Timestamp(end))
    frame["is_anomaly"] = inside.astype(int)
    # mtime=0: the same data gives the same bytes, hence the same checksum in README.md.
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as handle:
        handle.write(frame.to_csv(index=False).encode("utf-8"))
    (Path(data_dir) / "anomaly_nab_machine_temperature.csv.gz").write_bytes(buffer.getvalue())
    print(f"machine temperature: {len(frame)} rows, {int(inside.sum())} inside labelled windows")
