"""DNA sequences: the primate splice-junction windows, one-hot nucleotides, a split that keeps
near-duplicate sequences on one side, and occlusion maps of what a trained network reads.

The task (UCI "Molecular Biology (Splice-junction Gene Sequences)", Towell, Noordewier and
Shavlik, 1992): a window of 60 nucleotides is centred on a point of a primate gene; is that
point an exon-intron boundary (``"EI"``, a donor site), an intron-exon boundary (``"IE"``, an
acceptor site) or neither (``"N"``)? Biologists' rule of thumb: an intron starts with GT and
ends with AG, so a donor window has GT just after its middle and an acceptor window AG just
before it; most GTs and AGs are neither, which is why it takes a learned model::

    import common.tasks.dna as dna
    splice = dna.read_splice()                     # 3,190 windows, labels 0/1/2 = EI/IE/N
    x = dna.one_hot(splice.sequences)              # (3190, 60, 4)
    groups = dna.near_duplicate_groups(splice.sequences, max_mismatches=12, max_shift=10)
    train, test = dna.grouped_split(groups, splice.labels, test_fraction=0.2, seed=0)

Used by ``notebooks/19_dna.ipynb``.
"""

import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLICE_FILE = Path(__file__).resolve().parents[2] / "data" / "splice.csv.gz"
CLASSES = ("EI", "IE", "N")  # donor (exon -> intron), acceptor (intron -> exon), neither
NUCLEOTIDES = "ACGT"
# IUPAC ambiguity codes in the data: what each may stand for, spread evenly over those.
AMBIGUOUS = {"N": "ACGT", "D": "AGT", "S": "CG", "R": "AG"}
WINDOW = 60  # nucleotides per sequence; the boundary lies between positions 30 and 31 (1-based)


@dataclass(frozen=True)
class Splice:
    """The splice-junction windows: ``sequences`` (strings), ``labels`` (indices into
    :data:`CLASSES`) and ``names`` (GenBank-derived instance names)."""

    sequences: list
    labels: np.ndarray
    names: list

    def __len__(self):
        return len(self.sequences)


def read_splice(path=SPLICE_FILE):
    """Read the bundled ``class,instance,dna`` file (gzip or plain CSV) into a :class:`Splice`.

    Raises ``ValueError`` naming the line for an unknown class, a window that is not
    :data:`WINDOW` long, or a letter that is neither a nucleotide nor an ambiguity code.
    """
    path = Path(path)
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()
    sequences, labels, names = [], [], []
    lines = io.StringIO(text).read().splitlines()
    if not lines or [part.strip() for part in lines[0].split(",")] != ["class", "instance", "dna"]:
        raise ValueError(f"Expected a header 'class,instance,dna' in {path}. Received: {lines[:1]}")
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 3:
            raise ValueError(f"Expected 3 fields on line {number} of {path}. Received: {line!r}")
        label, name, sequence = parts
        if label not in CLASSES:
            raise ValueError(
                f"Expected a class in {CLASSES} on line {number} of {path}. Received: {label!r}"
            )
        unknown = set(sequence) - set(NUCLEOTIDES) - set(AMBIGUOUS)
        if len(sequence) != WINDOW or unknown:
            raise ValueError(
                f"Expected {WINDOW} nucleotides ({NUCLEOTIDES} or {''.join(AMBIGUOUS)}) on line "
                f"{number} of {path}. Received {len(sequence)} letters"
                + (f", unknown: {sorted(unknown)}" if unknown else "")
            )
        sequences.append(sequence)
        labels.append(CLASSES.index(label))
        names.append(name)
    return Splice(sequences, np.array(labels), names)


def one_hot(sequences):
    """Nucleotides as vectors over A, C, G, T: shape ``(batch, timesteps, 4)``, float32.

    An ambiguity code is spread evenly over what it may stand for (``N`` is a
    quarter each), so every position sums to 1.

    >>> one_hot(["ACGTN"])[0].tolist()
    [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.25, 0.25, 0.25, 0.25]]
    """
    table = {base: np.eye(4, dtype="float32")[i] for i, base in enumerate(NUCLEOTIDES)}
    for code, bases in AMBIGUOUS.items():
        table[code] = sum(table[base] for base in bases) / len(bases)
    lengths = {len(sequence) for sequence in sequences}
    if len(lengths) != 1:
        raise ValueError(f"Expected sequences of one length. Received lengths {sorted(lengths)}")
    try:
        return np.array([[table[base] for base in sequence] for sequence in sequences])
    except KeyError as error:
        raise ValueError(
            f"Expected letters from {NUCLEOTIDES}{''.join(AMBIGUOUS)}. Received: {error.args[0]!r}"
        ) from None


def mismatches(sequences, shift=0):
    """Pairwise mismatch counts: ``[i, j]`` compares ``sequences[i][shift:]`` with
    ``sequences[j][:len - shift]`` (``j`` moved ``shift`` places along), over the overlap.

    >>> mismatches(["ACGT", "ACGA", "CGTA"]).tolist()
    [[0, 1, 4], [1, 0, 3], [4, 3, 0]]
    >>> int(mismatches(["ACGT", "CGTA"], shift=1)[0, 1])  # ACGT moved one place reads CGT
    0
    """
    codes = np.array([np.frombuffer(sequence.encode(), np.uint8) for sequence in sequences])
    left, right = codes[:, shift:], codes[:, : codes.shape[1] - shift]
    # Per letter, a matrix product counts the positions where both hold it (float32: exact
    # for counts this small, and a BLAS product, fast).
    agree = np.zeros((len(codes), len(codes)), dtype=np.float32)
    for value in np.unique(codes):
        agree += (left == value).astype(np.float32) @ (right == value).astype(np.float32).T
    return left.shape[1] - agree.astype(np.int64)


def near_duplicate_groups(sequences, max_mismatches=12, max_shift=10):
    """A group id per sequence: sequences within ``max_mismatches`` of each other, also after
    moving one of them up to ``max_shift`` places, share a group (and so do chains of them).

    Unrelated windows of 60 nucleotides differ in about 45 places (3 in 4 by
    chance), so 12 or fewer (80% identity) means the same stretch of DNA, or a
    copy of it in a related gene. Splitting by group keeps a test sequence's
    near-twin out of training.

    >>> near_duplicate_groups(["AAAACCCC", "AAAACCCG", "GTGTGTGT", "AAACCCCG"], 1, 1).tolist()
    [0, 0, 1, 0]
    """
    parent = list(range(len(sequences)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for shift in range(max_shift + 1):
        close = mismatches(sequences, shift) <= max_mismatches * (WINDOW - shift) / WINDOW
        for i, j in zip(*np.nonzero(close)):
            parent[root(i)] = root(j)
    roots = [root(i) for i in range(len(sequences))]
    numbering = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    return np.array([numbering[r] for r in roots])


def grouped_split(groups, labels, test_fraction=0.2, seed=0):
    """Training and test indices with every group on one side, classes in about equal shares.

    scikit-learn's ``StratifiedGroupKFold`` with ``round(1 / test_fraction)``
    folds; the first fold is the test set.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < test_fraction < 1:
        raise ValueError(f"Expected 0 < test_fraction < 1. Received: test_fraction={test_fraction}")
    folds = StratifiedGroupKFold(n_splits=round(1 / test_fraction), shuffle=True, random_state=seed)
    train, test = next(folds.split(np.zeros(len(labels)), labels, groups))
    return train, test


def occlusion(predict, x, labels, baseline=0.25):
    """How much the true class's probability falls when each position is hidden.

    Each position in turn is replaced by ``baseline`` (a quarter each: "any
    nucleotide"); the result, shape ``(batch, timesteps)``, is the drop in the
    probability ``predict`` gives ``labels``. Large where the network looks.

    Args:
        predict: ``(batch, timesteps, 4)`` -> ``(batch, classes)`` probabilities.
        x: one-hot sequences ``(batch, timesteps, 4)``.
        labels: ``(batch,)`` class indices.
    """
    rows, timesteps = np.arange(len(x)), x.shape[1]
    reference = predict(x)[rows, labels]
    # Every hidden position of every sequence in one call: (timesteps, batch, timesteps, 4).
    hidden = np.repeat(np.asarray(x)[None], timesteps, axis=0)
    positions = np.arange(timesteps)
    hidden[positions, :, positions, :] = baseline  # copy t has position t hidden
    found = predict(hidden.reshape(-1, *x.shape[1:])).reshape(timesteps, len(x), -1)
    return (reference[None, :] - found[:, rows, labels]).T.astype("float32")
