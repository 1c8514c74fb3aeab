"""English-Spanish sentence pairs from the Tatoeba Project, the translation app's default.

`spa_eng.tsv.xz` keeps every pair of the project's copy of the manythings.org
`spa-eng` file (release 2018-05-13) whose English and Spanish sides are both at
most 10 words (split on spaces): 103,596 of its 113,704 pairs, in the file's own
order and format, one pair a line, `English<TAB>Spanish`, UTF-8, with accents,
`¿` and `¡` as the contributors wrote them. xz keeps it under 1.5 MB (gzip
would need 2.2 MB); `common.data.files` unpacks it by its content.
The translation app splits it into train / validation / test by source sentence.
"""

import lzma
from pathlib import Path

PACKAGES = []  # read from the Tatoeba copy the project keeps beside the repository
REBUILD = "python data/rebuild.py translate  # reads ../shared/tatoeba-spa-eng/"
SOURCE = (
    "Tatoeba Project (tatoeba.org) sentences, paired by manythings.org/anki (`spa-eng.zip`, "
    "release 2018-05-13), from the copy in `../shared/tatoeba-spa-eng/`. "
    "Attribution: www.manythings.org/anki and tatoeba.org."
)
LICENCE = "Creative Commons Attribution 2.0 (CC BY 2.0), as the Tatoeba sentences it comes from"
FILES = {
    "spa_eng.tsv.xz": "103,596 English-Spanish sentence pairs of at most 10 words a side (Tatoeba, CC BY 2.0)",
}
TATOEBA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "tatoeba-spa-eng"
MAX_WORDS = 10


def build(data_dir, tatoeba_dir=TATOEBA_DIR):
    lines = (tatoeba_dir / "spa-eng.txt").read_text(encoding="utf-8").splitlines()
    pairs = [line.split("\t") for line in lines if line.strip()]
    kept = [pair for pair in pairs if max(len(side.split()) for side in pair) <= MAX_WORDS]
    text = "".join(f"{english}\t{spanish}\n" for english, spanish in kept)
    # Fixed preset and no timestamps in xz: the same pairs give the same bytes (and checksum).
    packed = lzma.compress(text.encode("utf-8"), preset=9 | lzma.PRESET_EXTREME)
    (Path(data_dir) / "spa_eng.tsv.xz").write_bytes(packed)
    print(
        f"Tatoeba spa-eng: kept {len(kept)} of {len(pairs)} pairs (both sides <= {MAX_WORDS} words)"
    )
