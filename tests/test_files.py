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
        (b"PK\x03\x04rest of a workbook", "received a zip archive (an Excel .xlsx"),
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


def test_an_empty_file_is_not_a_table(tmp_path):
    (tmp_path / "empty.csv").write_text("  \n")
    with pytest.raises(ValueError, match="the file is empty"):
        files.read_table(tmp_path / "empty.csv")


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
