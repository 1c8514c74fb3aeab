"""common.data.files: the one reader of users' files, and the download cache."""

import gzip
import lzma
import socket

import pytest

from common.data import files


def test_a_gzip_file_is_unpacked_by_its_content_whatever_its_name(tmp_path):
    path = tmp_path / "prices.csv"  # a downloaded .gz, renamed
    path.write_bytes(gzip.compress("a,b\n1,2\n".encode()))
    assert files.read_text(path) == "a,b\n1,2\n"
    assert files.read_table(path).to_dict("list") == {"a": ["1"], "b": ["2"]}


def test_an_xz_file_is_unpacked_too_and_a_cut_one_is_refused(tmp_path):
    path = tmp_path / "pairs.tsv"  # xz by its content, whatever its name
    packed = lzma.compress("Go.\tVe.\n".encode())
    path.write_bytes(packed)
    assert files.read_text(path) == "Go.\tVe.\n"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="expected an xz file; this one is damaged or cut short"):
        files.read_text(path)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"PK\x03\x04rest of an archive", "received a zip archive; unpack it"),
        (
            b"PK\x03\x04\x14\x00xl/workbook.xml",
            "received an Excel workbook (xlsx); export it as CSV",
        ),
        (b"PAR1\x00\x00", "received a Parquet file"),
        ("Date,Close\n".encode("utf-16"), "received UTF-16 text"),
        (b"Date,Close\n2024-01-02,caf\xe9\n", "byte 0xe9 on line 2, which is not UTF-8"),
        (b"\x1f\x8b\x08\x00cut", "expected a gzip file; this one is damaged or cut short"),
    ],
)
def test_what_is_not_utf8_text_is_named_in_one_line(tmp_path, content, expected):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="^--csv data.csv: ") as error:
        files.read_text(path, name="--csv data.csv")
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_a_folder_or_a_missing_path_is_said_as_such(tmp_path):
    with pytest.raises(ValueError, match="expected a file; received a folder"):
        files.read_text(tmp_path)
    with pytest.raises(ValueError, match="no such file"):
        files.read_text(tmp_path / "nowhere.txt")


@pytest.mark.parametrize(
    "text, separator",
    [
        ("Date;Close\n2024-01-02;1,5\n2024-01-03;2,5\n", ";"),
        ("Date\tClose\n2024-01-02\t1.5\n", "\t"),
        ('Date,Close\n2024-01-02,"2,537.00"\n', ","),
        ("Close\n1.5\n2.5\n", ","),
    ],
)
def test_the_separator_is_sniffed(text, separator):
    assert files.sniff_separator(text) == separator


def test_a_device_or_a_symbolic_link_loop_is_not_called_missing(tmp_path):
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    with pytest.raises(
        ValueError, match="loop.csv: expected a file; received a symbolic link loop"
    ):
        files.read_text(loop)
    with pytest.raises(ValueError, match="/dev/zero: expected a file; received something that"):
        files.read_text("/dev/zero")


def test_an_echoed_value_is_cut_to_one_short_line():
    assert files.show("x" * 5_000_000) == f"'{'x' * 39}…' (5000000 characters)"
    assert files.show("21.28") == "'21.28'" and files.show(" ") == "an empty value"


@pytest.mark.parametrize(
    "cells, decimal_comma, expected",
    [
        (["$21.28", "2,537.00", "-1e3", "£5"], False, [21.28, 2537.0, -1000.0, 5.0]),
        (["2.537,00", "100,95", "7 €"], True, [2537.0, 100.95, 7.0]),
        (["1,234.5", "2.5"], True, [1234.5, 2.5]),  # no cell fits a decimal comma: read as usual
        (["50.346 ms", "1,2", "12,34,5"], False, [None, None, None]),  # never guessed at
    ],
)
def test_numbers_as_spreadsheets_write_them(cells, decimal_comma, expected):
    import numpy as np

    found = files.numbers_from_text(cells, decimal_comma)
    assert [None if np.isnan(x) else x for x in found] == expected


def test_an_empty_file_is_not_a_table(tmp_path):
    (tmp_path / "empty.csv").write_text("  \n")
    with pytest.raises(ValueError, match="the file is empty"):
        files.read_table(tmp_path / "empty.csv")


def test_exports_as_spreadsheets_write_them_read_as_tables():
    # Excel's "sep=;" first line names the separator; it is not a row.
    table = files.table_from_text("sep=;\nDate;Close\n2024-01-02;1,5\n", "x")
    assert list(table.columns) == ["Date", "Close"] and table.iloc[0].tolist() == [
        "2024-01-02",
        "1,5",
    ]
    assert list(files.table_from_text("sep=\t\na\tb\n1\t2\n", "x").columns) == ["a", "b"]
    with pytest.raises(ValueError, match=r"; line 4 holds 3 fields"):  # the file's own line 4
        files.table_from_text("sep=,\na,b\n1,2\n3,4,5\n", "x")
    # A separator at the end of every data row, not of the header: the columns keep their names.
    table = files.table_from_text("Date,Close\n2024-01-02,1.5,\n2024-01-03,1.6,\n", "x")
    assert table.to_dict("list") == {"Date": ["2024-01-02", "2024-01-03"], "Close": ["1.5", "1.6"]}
    # A row with one field too many says which line and why, not pandas' "C error".
    with pytest.raises(ValueError, match=r"^x: .*; line 3 holds 3 fields where the first holds 2 "):
        files.table_from_text("Date,Close\n2024-01-02,1.5\n2024-01-03,1,600.5\n", "x")


def test_download_caches_the_file_and_fails_in_one_line_offline(tmp_path):
    source = tmp_path / "book.txt"
    source.write_text("To be, or not to be")
    url = source.as_uri()
    cached = files.download(url, tmp_path / "cache")
    assert cached.read_text() == "To be, or not to be"
    source.unlink()  # the second call reads the cache, not the URL
    assert files.download(url, tmp_path / "cache") == cached
    with socket.socket() as server:  # a port that nothing answers on once closed
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
    with pytest.raises(ValueError, match="^--url x: could not download") as error:
        files.download(f"http://127.0.0.1:{port}/book.txt", tmp_path / "cache", name="--url x")
    assert "\n" not in str(error.value)
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [cached.name]  # no debris


def test_lines_of_standard_input_split_at_newlines_only():
    import io

    stream = io.TextIOWrapper(io.BytesIO("Hola.\u2028Adiós.\x0cVe.\r\nSí.\n".encode()))
    assert files.read_lines(stream) == ["Hola.\u2028Adiós.\x0cVe.", "Sí."]


# What a broken or hostile server on this machine answers to GET /<name> (raw bytes, then it
# hangs up; None: it never answers), and what the download error then says.
BROKEN_SERVERS = {
    "cut-short": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nTo be, or not",
        "closed the connection 987 bytes short of the length it announced",
    ),
    "not-http": (b"SSH-2.0-OpenSSH_9.6\r\n", "does not answer in HTTP; it said 'SSH-2.0"),
    "hangs-up": (b"", "closed the connection without answering"),
    "bad-chunks": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nTo be\r\n",
        "broke off or is malformed",
    ),
    "cut-chunks": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nTo be",
        "broke off or is malformed",
    ),
    "many-headers": (
        b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"\r\nTo be",
        "more than 100 headers",
    ),
    "not-found": (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "HTTP 404 Not Found"),
    "redirect-loop": (  # urllib's reason runs over three lines
        b"HTTP/1.1 302 Found\r\nLocation: /redirect-loop\r\nContent-Length: 0\r\n\r\n",
        "HTTP 302 The HTTP server returned a redirect error that would lead to an infinite loop",
    ),
    "silent": (None, "no answer from the server for 0.5 s"),
}


@pytest.fixture
def broken_server():
    """An HTTP server on 127.0.0.1, in a thread, that answers as ``BROKEN_SERVERS`` says."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop, silent = threading.Event(), []

    def serve():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            request = connection.recv(65536).decode("latin-1")
            answer = BROKEN_SERVERS[request.split(" ")[1].strip("/")][0]
            if answer is None:
                silent.append(connection)  # held open, never answered
                continue
            connection.sendall(answer)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    listener.close()
    for connection in silent:
        connection.close()


@pytest.mark.parametrize("answer", sorted(BROKEN_SERVERS))
def test_a_broken_server_is_one_line_and_leaves_nothing_in_the_cache(
    broken_server, answer, tmp_path
):
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="^--url x: could not download") as error:
        files.download(f"{broken_server}/{answer}", cache, name="--url x", timeout=0.5)
    assert BROKEN_SERVERS[answer][1] in str(error.value) and "\n" not in str(error.value)
    assert list(cache.iterdir()) == []  # no half-written file
