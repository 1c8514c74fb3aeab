"""Reading the files users bring: one place that turns a path (or a URL) into text or a table.

Every app reads files a user names, and each used to decode them its own way.
Here a file is recognised by its content, not its name: a gzip file renamed
``.csv`` is still unpacked, and an Excel workbook or a Parquet file given as
text is named as such instead of failing as "bytes that are not UTF-8".
Errors are ``ValueError`` whose message starts with ``name`` (the caller's
words for the file, for example ``"--csv prices.csv"``) and says what was
expected and what was found.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "prices.csv"
>>> _ = path.write_bytes(b"\\xef\\xbb\\xbfDate;Close\\r\\n2024-01-02;1,5\\r\\n")
>>> read_text(path)
'Date;Close\\n2024-01-02;1,5\\n'
>>> read_table(path).to_dict("list")
{'Date': ['2024-01-02'], 'Close': ['1,5']}
"""

import csv
import errno
import gzip
import hashlib
import http.client
import io
import lzma
import os
import re
import socket
import stat
import urllib.error
import urllib.request
import zlib
from pathlib import Path

# What a file is, by its first bytes, for the kinds users most often give where text is expected.
MAGIC = (
    (b"PK\x03\x04", "a zip archive; unpack it (or export it as CSV, if it is a workbook)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls (or other Office) file; export it as CSV"),
    (b"PAR1", "a Parquet file; write it with DataFrame.to_csv"),
    (b"%PDF", "a PDF document"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x93NUMPY", "a NumPy .npy array"),
)
# An xlsx workbook is a zip whose first entries live under xl/ or name [Content_Types].xml.
XLSX = "an Excel workbook (xlsx); export it as CSV"

SHOWN_LENGTH = 40  # an echoed value longer than this is cut: one line, never megabytes


def show(value, limit=SHOWN_LENGTH):
    """A value from a user's file as an error message quotes it: in quotes, cut to ``limit``.

    >>> show("2.537,00")
    "'2.537,00'"
    >>> show("x" * 100)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…' (100 characters)"
    >>> show("  "), show("Close\\x00")
    ('an empty value', "'Close\\\\x00'")
    """
    # Control and invisible characters are shown escaped: raw, they would act on the terminal.
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    if not text.strip():
        return "an empty value"
    if len(text) > limit:
        return f"'{text[: limit - 1]}…' ({len(text)} characters)"
    return f"'{text}'"


def what_it_is(raw):
    """What ``raw`` bytes are, by their first bytes, when that says they are not text; or None."""
    if raw.startswith(b"PK\x03\x04") and (b"xl/" in raw[:4096] or b"[Content_Types]" in raw[:4096]):
        return XLSX
    for magic, what in MAGIC:
        if raw.startswith(magic):
            return what
    return None


class MissingColumnError(ValueError):
    """A column asked for is not in the table; ``column`` says which, so a caller can say
    which of its settings names it."""

    def __init__(self, message, column):
        super().__init__(message)
        self.column = column


def check_file(path, name=None):
    """Refuse, in words, a path that is not a file to read: missing, a folder, a device, a loop.

    A pipe is a file to read (``--csv <(zcat prices.csv.gz)``).

    Raises:
        ValueError: the path is missing, a folder, a symbolic link loop, or not a regular file.
    """
    name = name or str(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ValueError(f"{name}: expected a file; received a symbolic link loop") from None
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise ValueError(f"{name}: no such file") from None
        raise ValueError(f"{name}: cannot be read ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"{name}: expected a file; received a folder")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise ValueError(f"{name}: expected a file; received something that is not a regular file")


def read_bytes(path, name=None):
    """The bytes of the file at ``path``, unpacked if it is gzip or xz (by content, whatever its
    name).

    Raises:
        ValueError: as :func:`check_file`, or a damaged gzip or xz file.
    """
    path = Path(path)
    name = name or str(path)
    check_file(path, name)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b" or path.suffix.lower() == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):  # truncated, not gzip, or a damaged body
            raise ValueError(f"{name}: expected a gzip file; this one is damaged or cut short")
    elif raw[:6] == b"\xfd7zXZ\x00" or path.suffix.lower() == ".xz":
        try:
            raw = lzma.decompress(raw)
        except lzma.LZMAError:  # truncated, not xz, or a damaged body
            raise ValueError(f"{name}: expected an xz file; this one is damaged or cut short")
    return raw


def read_text(path, name=None):
    """The file at ``path`` as UTF-8 text with ``\\n`` line ends; a byte-order mark is dropped.

    Raises:
        ValueError: as :func:`read_bytes`, or a file that is not UTF-8 text (the message
            names what it is, when its first bytes tell, or the line of the first bad byte).
    """
    name = name or str(path)
    raw = read_bytes(path, name)
    if what := what_it_is(raw):
        raise ValueError(f"{name}: expected a text file; received {what}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            found = "UTF-16 text"
        else:
            found = f"byte 0x{raw[error.start]:02x} on line {line}, which is not UTF-8"
        raise ValueError(
            f"{name}: expected UTF-8 text; received {found} (re-save the file as UTF-8)"
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def sniff_separator(text):
    """The column separator of CSV-like ``text``: comma, semicolon, tab or bar.

    The separator is the one that splits the first lines into the same number of
    fields, more than one; a comma when nothing does (a one-column file). Excel's
    "sep=;" first line is obeyed.

    >>> sniff_separator("Date;Close\\n2024-01-02;1,5\\n2024-01-03;1,6\\n")
    ';'
    >>> sniff_separator("a\\tb\\n1\\t2\\n")
    '\\t'
    >>> sniff_separator("sep=|\\nDate|Close\\n"), sniff_separator("sep=\\t\\nDate\\tClose\\n")
    ('|', '\\t')
    """
    if named := _excel_separator(text):
        return named
    sample = "\n".join(text.split("\n", 20)[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        counts = {sep: sample.split("\n", 1)[0].count(sep) for sep in ",;\t|"}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def read_table(path, name=None, separator=None, header=0):
    """A CSV-like file as a ``DataFrame`` of strings (nothing converted, so a bad value can be
    shown as it was written); the separator is sniffed unless given.

    Raises:
        ValueError: as :func:`read_text`, or text that is not a table.
    """
    name = name or str(path)
    return table_from_text(read_text(path, name), name, separator, header)


def table_from_text(text, name, separator=None, header=0):
    """:func:`read_table` for text already read; ``header=None`` keeps the first line as a row."""
    import pandas as pd

    if not text.strip():
        raise ValueError(f"{name}: expected a header line and data rows; the file is empty")
    if "\x00" in text:
        raise ValueError(
            f"{name}: expected a text table; received NUL bytes (UTF-16 text saved without its "
            "byte-order mark, or a binary file: re-save it as UTF-8)"
        )
    text = text.replace("\ufeff", "")  # byte-order marks left inside by joined exports
    separator = separator or sniff_separator(text)
    skipped = 0  # lines before the table
    if _excel_separator(text):  # "sep=;": Excel's note of the separator, not a row
        text, skipped = (text.split("\n", 1)[1] if "\n" in text else ""), 1
    text = _without_trailing_separators(text, separator)
    try:
        table = pd.read_csv(
            io.StringIO(text), sep=separator, dtype=str, keep_default_na=False, header=header
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "no columns"
        if fields := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", reason):
            expected, line, seen = fields.groups()
            reason = (
                f"line {int(line) + skipped} holds {seen} fields where the first holds {expected} (a "
                f"{separator!r} inside a value must be within double quotes)"
            )
        raise ValueError(f"{name}: expected a table of {separator!r}-separated columns; {reason}")
    # pandas renames a repeated heading ("text", "text.1"): a reader that uses one says so.
    table.attrs["repeated"] = _repeated_headings(text, separator) if header == 0 else []
    table.attrs["separator"] = separator  # ";" and tabs go with decimal commas
    return table


def repeated_heading(table, used):
    """The first of ``used`` (column names) that ``table``'s header line repeats, or None."""
    repeated = table.attrs.get("repeated", [])
    return next((column for column in used if column in repeated), None)


def _repeated_headings(text, separator):
    header = text.lstrip().split("\n", 1)[0]  # pandas skips blank lines before the header
    try:
        names = [cell.strip() for cell in next(csv.reader([header], delimiter=separator), [])]
    except csv.Error:  # a field past the csv module's limit: the table itself was read
        return []
    return sorted({cell for cell in names if cell and names.count(cell) > 1})


def _excel_separator(text):
    """The separator named by Excel's "sep=;" first line, or None."""
    first = text[:12].split("\n", 1)[0].strip(' "')  # not .strip(): "sep=\t" names a tab
    return first[4] if len(first) == 5 and first.lower().startswith("sep=") else None


def _without_trailing_separators(text, separator):
    """``text`` without the separator that some exports put at the end of every data row.

    Read as it is, such a file has one field more in each row than its header names: pandas
    then takes the first column for row labels and shifts every heading one column left.
    """
    header, _, rows = text.partition("\n")
    sample = [line for line in rows[:65536].split("\n")[:-1] if line.strip()]
    if header.endswith(separator) or not sample:
        return text
    if not all(line.endswith(separator) for line in sample):
        return text
    return header + "\n" + re.sub(f"{re.escape(separator)}$", "", rows, flags=re.MULTILINE)


# How numbers are written in spreadsheet exports: an optional currency sign before or after,
# thousands grouped by "," (or by "." where the decimal mark is ","). Grouping must be exact
# (1,234,567.5) so that a list such as "1,2" is never read as a thousands-separated number.
CURRENCY = "$€£¥"
_SIGNED = r"^(?P<sign>[+-]?)\s*[{c}]?\s*(?P<number>.*?)\s*[{c}]?$".format(c=CURRENCY)
_GROUPED_POINT = r"^\d{1,3}(,\d{3})+(\.\d*)?$"  # 2,537.00
_COMMA_DECIMAL = r"^(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$"  # 2.537,00 or 100,95


def numbers_from_text(cells, decimal_comma=False):
    """Floats from text cells as spreadsheets write them; NaN where a cell is not a number.

    A currency sign and thousands separators are dropped. With ``decimal_comma``
    (files separated by ";", as European Excel writes them) "2.537,00" is 2537.0;
    a comma is then only read as a decimal mark if every number of the column fits
    that reading, so a column written "1,234.5" is still read the usual way.

    >>> import pandas as pd
    >>> numbers_from_text(pd.Series(["$21.28", "2,537.00", "-1e3", "50 ms"])).tolist()
    [21.28, 2537.0, -1000.0, nan]
    >>> numbers_from_text(pd.Series(["2.537,00", "100,95 €"]), decimal_comma=True).tolist()
    [2537.0, 100.95]
    """
    import pandas as pd

    text = pd.Series(cells, dtype="string").fillna("").str.strip()
    parts = text.str.extract(_SIGNED)
    sign, number = parts["sign"].fillna(""), parts["number"].fillna("")
    if decimal_comma:
        comma = number.str.match(_COMMA_DECIMAL)
        filled = number != ""
        if comma[filled].all() and number.str.contains(",").any():
            number = number.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    grouped = number.str.match(_GROUPED_POINT)
    number = number.where(~grouped, number.str.replace(",", "", regex=False))
    return pd.to_numeric(sign + number, errors="coerce").to_numpy("float64")


def cache_name(url):
    """A file name for ``url`` in a download cache: readable, and different for every URL.

    >>> cache_name("https://example.org/books/pg100.txt?x=1")
    'pg100.txt_x_1-b4ac202c3d7f'
    """
    tail = url.rstrip("/").rsplit("/", 1)[-1] or "index"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in tail)[:60]
    return f"{safe}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


def download(url, cache_dir, name=None, timeout=60.0):
    """The path of ``url``'s content in ``cache_dir``, downloaded the first time only.

    The content is written to a hidden file beside the cache entry and renamed into
    place once whole, so a download that fails or is interrupted leaves nothing behind.
    A server that sends nothing for ``timeout`` seconds counts as failed.

    Raises:
        ValueError: the URL could not be fetched (no network, an unknown host, a server
            that closed early, sent a body shorter than it announced, does not speak
            HTTP or stopped answering); the message says why, in one line. A cache
            that cannot be written is an ``OSError`` naming the file.
    """
    import tempfile

    name = name or url
    cache_dir = Path(cache_dir).expanduser()
    target = cache_dir / cache_name(url)
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{target.name[:40]}.partial-", dir=cache_dir)
    try:
        with open(handle, "wb") as file:
            print(f"Downloading {url}", flush=True)
            for chunk in _fetch(url, name, timeout):
                file.write(chunk)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target


# What a failed download raises: urllib's errors (HTTPError for a 404), http.client's (a
# server closing early, bad chunked encoding, a status line that is not HTTP, too many
# headers), OSError (refused, reset, timed out) and ValueError (a URL urllib cannot open).
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, ValueError)


def _fetch(url, name, timeout):
    """Yield ``url``'s content in pieces; a network failure is a one-line ``ValueError``."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except _NETWORK_ERRORS as error:
        raise ValueError(f"{name}: could not download ({_why(error, timeout)})") from None
    with response:
        while True:
            try:
                chunk = response.read(1 << 16)
            except _NETWORK_ERRORS as error:
                raise ValueError(f"{name}: could not download ({_why(error, timeout)})") from None
            if not chunk:
                break
            yield chunk
        missing = getattr(response, "length", None)  # http.client counts down what is announced
        if missing:  # http.client's read returns b"" when the server closes early, no error
            raise ValueError(
                f"{name}: could not download (the server closed the connection {missing:,} "
                "bytes short of the length it announced)"
            )


def _why(error, timeout):
    """A failed download's reason, in words, on one line."""
    text = _reason(error, timeout).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _reason(error, timeout):
    if isinstance(error, urllib.error.HTTPError):  # its reason may run over lines (a redirect loop)
        return f"the server answered HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):  # the socket's error, or urllib's words
        error = error.reason
    if isinstance(error, TimeoutError):
        return f"no answer from the server for {timeout:g} s"
    if isinstance(error, socket.gaierror):
        return f"unknown host, or no network ({error.strerror or error})"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, http.client.BadStatusLine):
        return f"the server does not answer in HTTP; it said {str(error)[:80]!r}"
    if isinstance(error, http.client.IncompleteRead):  # also a malformed chunked answer
        return "the server's answer broke off or is malformed"
    return getattr(error, "strerror", None) or str(error)


def pair_columns(direction):
    """The (source, target) columns of a manythings.org sentence-pair file (English first)
    for ``direction``, such as "spa-eng".

    >>> pair_columns("spa-eng"), pair_columns("eng-fra")
    ((1, 0), (0, 1))
    """
    match = re.fullmatch(r"([a-z]{2,3})-([a-z]{2,3})", str(direction))
    if not match or (match[1] == "eng") == (match[2] == "eng"):
        raise ValueError(
            "Expected a direction from or to English, as language codes: 'spa-eng', 'eng-spa', "
            f"'fra-eng' ... (the files hold English in the first column). Received: {direction!r}"
        )
    return (1, 0) if match[2] == "eng" else (0, 1)


def read_lines(stream):
    """The lines of a text stream such as ``sys.stdin``, which must hold UTF-8.

    Raises:
        ValueError: bytes that are not UTF-8 (the first one and where it is).
    """
    if not hasattr(stream, "buffer"):  # already text (a test's StringIO)
        return _lines(stream.read())
    data = stream.buffer.read()
    try:
        return _lines(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(
            f"standard input is not UTF-8 text (byte {data[error.start]:#x} "
            f"at position {error.start})"
        ) from None


def _lines(text):
    """Lines split at \\n (and \\r\\n) only: str.splitlines would also split at form feeds,
    U+2028 and other characters a sentence may hold."""
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines
