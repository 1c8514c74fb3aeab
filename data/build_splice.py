"""Primate splice-junction DNA windows (UCI), for notebook 19.

`splice.csv.gz` is the UCI file as `class,instance,dna` rows, 3,190 windows of 60
nucleotides (EI 767, IE 768, N 1,655), with the padding spaces of the copy in
`../shared/splice/` removed; `splice.names.txt` is the dataset's original
description, with the error rates published at the time (KBANN, backpropagation,
ID3, nearest neighbour ...), kept whole. `common.tasks.dna.read_splice` reads the CSV.
"""

import gzip
from pathlib import Path

PACKAGES = []  # read from the copy the project keeps beside the repository
REBUILD = "python data/rebuild.py splice  # reads ../shared/splice/"
SOURCE = (
    "UCI Machine Learning Repository, 'Molecular Biology (Splice-junction Gene Sequences)', "
    "donated by G. Towell, M. Noordewier and J. Shavlik (1992), doi:10.24432/C5M888; copy from "
    "scikit-learn-contrib/category_encoders (examples/source_data/splice), in `../shared/splice/`."
)
LICENCE = "Creative Commons Attribution 4.0 (CC BY 4.0), as published by the UCI repository"
FILES = {
    "splice.csv.gz": "3,190 primate DNA windows of 60 nucleotides: exon-intron (EI), intron-exon (IE) or neither (N) (UCI, CC BY 4.0)",
    "splice.names.txt": "the splice data's original description, with the error rates published in 1991-92 (UCI, CC BY 4.0)",
}
SPLICE_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "splice"


def build(data_dir, splice_dir=SPLICE_DIR):
    lines = (splice_dir / "splice.csv").read_text().splitlines()
    rows = [",".join(part.strip() for part in line.split(",")) for line in lines if line.strip()]
    if rows[0] != "class,instance,dna" or len(rows) != 3191:
        raise SystemExit(f"{splice_dir / 'splice.csv'}: expected a header and 3,190 rows")
    # mtime=0: the same rows give the same bytes.
    packed = gzip.compress(("\n".join(rows) + "\n").encode(), compresslevel=9, mtime=0)
    (Path(data_dir) / "splice.csv.gz").write_bytes(packed)
    names = (splice_dir / "splice.names.txt").read_bytes()
    (Path(data_dir) / "splice.names.txt").write_bytes(names)
    print(f"splice: {len(rows) - 1} windows, {len(packed) / 1e3:.0f} KB")
