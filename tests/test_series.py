"""Tests for ``common.data.csv_series``: reading messy monitoring CSVs and label windows.

Every expected value here is worked out by hand from the few rows each test writes.
"""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from common.data import csv_series as series
from conftest import examples

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

START = pd.Timestamp("2024-01-01 00:00")
FIVE_MINUTES = pd.Timedelta(minutes=5)


def write(tmp_path, text, name="sensors.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def csv_text(times, values, header="timestamp,value", labels=None):
    """One line per row; ``labels`` adds a third column."""
    lines = [header]
    for row, (time, value) in enumerate(zip(times, values)):
        line = f"{time},{value}"
        if labels is not None:
            line += f",{labels[row]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def stamps(count, start=START, step=FIVE_MINUTES):
    return [str(start + step * index) for index in range(count)]


# --- a clean file ----------------------------------------------------------------------


def test_clean_file_is_read_unchanged(tmp_path):
    path = write(tmp_path, csv_text(stamps(20), range(20)))
    result = series.read_series_csv(path)
    assert result.name == "sensors.csv"
    assert len(result) == 20
    assert result.values.shape == (20, 1) and result.values.dtype == np.float64
    assert result.values[:, 0].tolist() == list(range(20))
    assert result.columns == ["value"]
    assert isinstance(result.times, pd.DatetimeIndex) and result.times.tz is None
    assert result.times[0] == START
    assert result.step == FIVE_MINUTES
    assert result.is_anomaly is None and result.label_windows is None
    assert result.normal_end is None and result.notes == []


def test_default_channels_skip_time_labels_and_text(tmp_path):
    lines = ["timestamp, host ,cpu,label,memory,is_anomaly"]
    lines += [f"{time},web-1,{index},0,{2 * index},0" for index, time in enumerate(stamps(20))]
    path = write(tmp_path, "\n".join(lines))
    result = series.read_series_csv(path)
    assert result.columns == ["cpu", "memory"]
    assert result.values.shape == (20, 2)
    assert result.is_anomaly.tolist() == [False] * 20 and result.label_windows == []


def test_missing_column_names_the_columns(tmp_path):
    path = write(tmp_path, csv_text(range(20), range(20), header="time,value"))
    with pytest.raises(ValueError) as error:
        series.read_series_csv(path)
    assert (
        str(error.value) == "sensors.csv: expected a column 'timestamp'; columns are: time, value"
    )


def test_constant_channel_is_allowed(tmp_path):
    path = write(tmp_path, csv_text(stamps(20), [3.5] * 20))
    assert series.read_series_csv(path).values[:, 0].tolist() == [3.5] * 20


# --- duplicates --------------------------------------------------------------------------


def duplicated_rows():
    """20 distinct times; the time of row 3 appears three times, with 10, 20 and 60."""
    times = stamps(20)
    values = [float(index) for index in range(20)]
    times[3:4] = [times[3]] * 3
    values[3:4] = [10.0, 20.0, 60.0]
    return times, values


@pytest.mark.parametrize(
    "rule, expected, note",
    [
        ("mean", 30.0, "averaged 2 duplicate timestamps (3 rows at 1 time)"),
        (
            "first",
            10.0,
            "merged 2 duplicate timestamps, keeping the first value (3 rows at 1 time)",
        ),
        ("last", 60.0, "merged 2 duplicate timestamps, keeping the last value (3 rows at 1 time)"),
    ],
)
def test_duplicates_follow_the_rule(tmp_path, rule, expected, note):
    times, values = duplicated_rows()
    path = write(tmp_path, csv_text(times, values))
    result = series.read_series_csv(path, duplicates=rule)
    assert len(result) == 20
    assert result.values[:, 0].tolist() == [0, 1, 2, expected] + list(range(4, 20))
    assert result.notes == [note]


def test_duplicates_error_rule_says_how_many(tmp_path):
    times, values = duplicated_rows()
    path = write(tmp_path, csv_text(times, values))
    with pytest.raises(ValueError) as error:
        series.read_series_csv(path, duplicates="error")
    assert str(error.value) == (
        "sensors.csv: expected each time once; received 2 duplicate timestamps "
        "(3 rows at 1 time; first: 2024-01-01 00:15:00)"
    )


def test_unknown_duplicates_rule():
    frame = pd.DataFrame({"timestamp": range(20), "value": range(20)})
    with pytest.raises(ValueError, match=r"Expected duplicates in .*Received: duplicates='max'"):
        series.series_from_frame(frame, duplicates="max")


def test_rows_out_of_order_are_sorted(tmp_path):
    times, values = stamps(20), list(range(20))
    times[5], times[6] = times[6], times[5]
    values[5], values[6] = values[6], values[5]
    result = series.read_series_csv(write(tmp_path, csv_text(times, values)))
    assert result.values[:, 0].tolist() == list(range(20))
    assert result.notes == ["sorted the rows by time (1 row out of order)"]


# --- irregular sampling ----------------------------------------------------------------


def test_jitter_and_a_gap_are_resampled(tmp_path):
    # Every 5 minutes from 14:30, except: the first stamp is 3 minutes early (14:27), one is
    # 1 minute late (15:01), and 15:15 and 15:20 are missing.
    times = [pd.Timestamp("2024-01-01 14:27")]
    times += [pd.Timestamp("2024-01-01 14:30") + FIVE_MINUTES * index for index in range(25)]
    times[7] += pd.Timedelta(minutes=1)  # 15:00 -> 15:01
    del times[10:12]  # 15:15, 15:20
    values = [100.0] + [float(index) for index in range(len(times) - 1)]
    result = series.read_series_csv(write(tmp_path, csv_text(times, values)))

    # The grid follows most points: 14:25, 14:30, ... 16:30 (26 slots for 24 points).
    assert result.times[0] == pd.Timestamp("2024-01-01 14:25")
    assert result.times[-1] == pd.Timestamp("2024-01-01 16:30")
    assert len(result) == 26 and result.step == FIVE_MINUTES
    assert (np.diff(result.times) == FIVE_MINUTES).all()
    assert result.notes == [
        (
            "resampled to the typical step of 5 min: 2 missing steps filled, "
            "2 points moved to the grid by up to 2 min"
        )
    ]
    # 15:15 and 15:20 lie a third and two thirds of the way from 15:10 (value 8) to 15:25 (9).
    expected = [100.0] + list(range(9)) + [8 + 1 / 3, 8 + 2 / 3] + list(range(9, 23))
    np.testing.assert_allclose(result.values[:, 0], expected)


def test_points_sharing_a_slot_are_averaged(tmp_path):
    times = stamps(20)
    times.insert(5, str(START + pd.Timedelta(minutes=24)))  # next to 00:25
    values = list(range(5)) + [6.0] + list(range(5, 20))  # 00:24 holds 6, 00:25 holds 5
    result = series.read_series_csv(write(tmp_path, csv_text(times, values)))
    assert len(result) == 20
    assert result.values[5, 0] == 5.5
    assert result.notes == [
        (
            "resampled to the typical step of 5 min: 1 point moved to the grid by up to 1 min, "
            "1 point averaged into an occupied slot"
        )
    ]


def test_millisecond_rounded_stamps_keep_every_point(tmp_path):
    # A 64 Hz sensor stamped to the millisecond: gaps of 15 and 16 ms, true step 15.625 ms.
    times = [
        pd.Timestamp(0) + pd.Timedelta(milliseconds=round(index * 15.625)) for index in range(64)
    ]
    result = series.read_series_csv(write(tmp_path, csv_text(times, range(64))))
    assert len(result) == 64
    assert abs(result.step - pd.Timedelta(microseconds=15625)) < pd.Timedelta(microseconds=10)
    assert result.values[:, 0].tolist() == list(range(64))
    assert result.notes[0].startswith("resampled to the typical step of 15.625 ms: ")


def test_integer_steps_with_a_gap(tmp_path):
    steps = [2 * index for index in range(20) if index != 7]  # 14 is missing
    values = [float(step) for step in steps]
    result = series.read_series_csv(write(tmp_path, csv_text(steps, values)))
    assert result.times.dtype == np.int64
    assert result.times.tolist() == list(range(0, 40, 2))
    assert result.step == 2
    assert result.values[7, 0] == 14.0  # halfway between 12 and 16
    assert result.notes == ["resampled to the typical step of 2: 1 missing step filled"]


def test_one_huge_gap_is_refused(tmp_path):
    times = stamps(10) + stamps(10, start=START + pd.Timedelta(days=30))
    with pytest.raises(ValueError) as error:
        series.read_series_csv(write(tmp_path, csv_text(times, range(20))))
    message = str(error.value)
    assert message.startswith("sensors.csv: expected roughly regular times; 20 points from ")
    assert "typical step of 5 min would need a grid of 8650 points" in message


# --- time zones --------------------------------------------------------------------------


def test_mixed_offsets_are_converted_to_utc(tmp_path):
    # 00:00 UTC onwards every 5 minutes; the first 10 written at +01:00, the rest with Z.
    utc = [START + FIVE_MINUTES * index for index in range(20)]
    times = [
        (time + pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+01:00") for time in utc[:10]
    ]
    times += [time.strftime("%Y-%m-%dT%H:%M:%SZ") for time in utc[10:]]
    result = series.read_series_csv(write(tmp_path, csv_text(times, range(20))))
    assert times[0] == "2024-01-01T01:00:00+01:00"
    assert result.times.tz is None
    assert list(result.times) == utc
    assert result.notes == ["converted mixed UTC offsets to UTC"]


def test_naive_and_offset_times_are_both_utc(tmp_path):
    utc = [START + FIVE_MINUTES * index for index in range(20)]
    times = [str(time) for time in utc[:10]]
    times += [
        (time + pd.Timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S+02:00") for time in utc[10:]
    ]
    result = series.read_series_csv(write(tmp_path, csv_text(times, range(20))))
    assert list(result.times) == utc
    assert result.notes == [
        "converted times at UTC offset +02:00 to UTC",
        "treated 10 times without a UTC offset as UTC",
    ]


def test_day_first_dates_are_recognised(tmp_path):
    # Readings every 3 hours from 2 to 4 December, written day first: "13/12" never occurs, so
    # both readings parse every stamp and the regular one (day first) must win.
    utc = [pd.Timestamp("2013-12-02") + pd.Timedelta(hours=3) * index for index in range(20)]
    times = [time.strftime("%d/%m/%Y %H:%M") for time in utc]
    result = series.read_series_csv(write(tmp_path, csv_text(times, range(20))))
    assert list(result.times) == utc
    assert result.notes == [
        "read dates with the day first ('02/12/2013 00:00' is 2013-12-02 00:00:00)"
    ]


def test_unparseable_times_name_the_first(tmp_path):
    times = stamps(20)
    times[4], times[9] = "yesterday", ""
    with pytest.raises(ValueError) as error:
        series.read_series_csv(write(tmp_path, csv_text(times, range(20))))
    assert str(error.value) == (
        "sensors.csv: expected datetimes or integer steps in 'timestamp'; "
        "received 2 other values (first: 'yesterday' in row 5)"
    )


# --- values ------------------------------------------------------------------------------


def test_empty_and_nan_values_are_interpolated(tmp_path):
    values = [str(index**2) for index in range(20)]
    values[0], values[5], values[6], values[19] = "", "NaN", "", "nan"
    result = series.read_series_csv(write(tmp_path, csv_text(stamps(20), values)))
    column = result.values[:, 0]
    assert column[0] == 1.0  # the nearest value, row 1
    np.testing.assert_allclose(column[5:7], [16 + 33 / 3, 16 + 66 / 3])  # between 4² and 7²
    assert column[19] == 324.0  # the nearest value, 18²
    assert result.notes == ["interpolated 4 empty or NaN values"]


@pytest.mark.parametrize("bad", ["inf", "-inf", "1e400"])
def test_infinite_values_are_refused(tmp_path, bad):
    values = [str(index) for index in range(20)]
    values[3] = bad
    with pytest.raises(ValueError) as error:
        series.read_series_csv(write(tmp_path, csv_text(stamps(20), values)))
    assert str(error.value) == (
        "sensors.csv: expected finite numbers in column 'value'; received 1 row with infinite "
        f"or overflowing values (first: '{bad}' in row 4)"
    )


def test_text_values_are_refused(tmp_path):
    values = [str(index) for index in range(20)]
    values[2], values[8] = "12,5 kB", "high"
    path = write(tmp_path, csv_text(stamps(20), [f'"{value}"' for value in values]))
    with pytest.raises(ValueError) as error:
        series.read_series_csv(path)
    assert str(error.value) == (
        "sensors.csv: expected numbers in column 'value'; "
        "received 2 other values (first: '12,5 kB' in row 3)"
    )


def test_huge_values_are_averaged_and_interpolated_without_overflow(tmp_path):
    times, values = stamps(20), [1e308] * 20
    times[3] = times[2]  # two readings of 1e308 at 00:10; 00:15 is missing
    result = series.read_series_csv(write(tmp_path, csv_text(times, values)))
    assert result.values[:, 0].tolist() == [1e308] * 20


def test_an_empty_channel_is_refused(tmp_path):
    text = "timestamp,value,spare\n" + "".join(f"{time},1,\n" for time in stamps(20))
    with pytest.raises(ValueError, match="expected numbers in column 'spare'; it is empty"):
        series.read_series_csv(write(tmp_path, text), value_cols=["value", "spare"])


# --- files that cannot be read -----------------------------------------------------------


def test_gzip_is_read_by_suffix_or_content(tmp_path):
    data = csv_text(stamps(20), range(20)).encode()
    (tmp_path / "sensors.csv.gz").write_bytes(gzip.compress(data))
    (tmp_path / "renamed.csv").write_bytes(gzip.compress(data))
    for name in ("sensors.csv.gz", "renamed.csv"):
        assert series.read_series_csv(tmp_path / name).values[:, 0].tolist() == list(range(20))


def test_truncated_or_fake_gzip(tmp_path):
    data = gzip.compress(csv_text(stamps(200), range(200)).encode())
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "fake.csv.gz").write_bytes(b"timestamp,value\n0,1\n")
    for name in ("cut.csv.gz", "fake.csv.gz"):
        with pytest.raises(
            ValueError, match=rf"^{name}: expected a gzip file; this one is damaged"
        ):
            series.read_series_csv(tmp_path / name)


def test_non_utf8_bytes(tmp_path):
    text = csv_text(stamps(20), range(20), header="timestamp,température")
    (tmp_path / "latin.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError) as error:
        series.read_series_csv(tmp_path / "latin.csv")
    assert str(error.value) == (
        "latin.csv: expected UTF-8 text; received byte 0xe9 on line 1, which is not UTF-8 "
        "(re-save the file as UTF-8)"
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "expected a header line and data rows; the file is empty"),
        ("timestamp,value\n", "expected data rows after the header; received none"),
        ("timestamp,value\n,\n , \n", "expected data rows after the header; received none"),
    ],
)
def test_empty_files(tmp_path, text, expected):
    with pytest.raises(ValueError) as error:
        series.read_series_csv(write(tmp_path, text))
    assert str(error.value) == f"sensors.csv: {expected}"


def test_no_such_file(tmp_path):
    with pytest.raises(ValueError, match="^missing.csv: no such file$"):
        series.read_series_csv(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"PK\x03\x04\x14\x00[Content_Types].xml xl/workbook.xml", "an Excel workbook (xlsx)"),
        (b"PAR1\x00\x00", "a Parquet file"),
    ],
)
def test_a_workbook_or_parquet_file_is_named(tmp_path, content, expected):
    (tmp_path / "sensors.csv").write_bytes(content)
    with pytest.raises(ValueError) as error:
        series.read_series_csv(tmp_path / "sensors.csv")
    assert str(error.value).startswith(f"sensors.csv: expected a text file; received {expected}")


def test_a_folder_named_like_a_csv_is_searched_not_read(tmp_path):
    (tmp_path / "data.csv").mkdir()
    write(tmp_path / "data.csv", csv_text(stamps(20), range(20)), name="inner.csv")
    assert series.find_csv_files([tmp_path]) == [
        (tmp_path / "data.csv" / "inner.csv", "data.csv/inner.csv")
    ]
    with pytest.raises(ValueError, match="^data.csv: expected a file; received a folder$"):
        series.read_series_csv(tmp_path / "data.csv")


def test_a_file_given_directly_is_keyed_by_the_path_as_typed(tmp_path):
    path = write(tmp_path, csv_text(stamps(20), range(20)))
    assert series.find_csv_files([path]) == [(path, str(path))]


def test_a_device_or_a_symlink_loop_is_said_as_such(tmp_path):
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    with pytest.raises(ValueError, match="expected a file; received a symbolic link loop"):
        series.find_csv_files([loop])
    with pytest.raises(
        ValueError, match="expected a file; received something that is not a regular"
    ):
        series.read_series_csv("/dev/zero")


@pytest.mark.parametrize(
    "option, expected",
    [
        (
            "--value-col",
            "expected a column 'nosuch'; columns are: timestamp, value (choose with --value-col)",
        ),
        (
            "--time-col",
            "expected a column 'nosuch'; columns are: timestamp, value (choose with --time-col)",
        ),
    ],
)
def test_the_anomaly_app_names_the_option_of_a_missing_column(tmp_path, option, expected):
    from conftest import call_app

    path = write(tmp_path, csv_text(stamps(20), range(20)))
    status, _, err = call_app("anomaly", "--csv", path, option, "nosuch", "--out", tmp_path / "run")
    assert status == 2 and err == f"anomaly: error: {path}: {expected}\n"


def test_a_semicolon_separated_file_is_read(tmp_path):
    text = csv_text(stamps(20), range(20)).replace(",", ";")
    assert series.read_series_csv(write(tmp_path, text)).values[:, 0].tolist() == list(range(20))


def test_a_huge_bad_value_is_cut_in_the_message(tmp_path):
    values = list(range(20))
    values[3] = "x" * 5_000_000
    with pytest.raises(ValueError) as error:
        series.read_series_csv(write(tmp_path, csv_text(stamps(20), values)))
    assert len(str(error.value)) < 200
    assert f"(first: '{'x' * 39}…' (5000000 characters) in row 4)" in str(error.value)


def test_dates_that_read_as_well_both_ways_are_refused(tmp_path):
    # 1 Feb, 2 Mar, 3 Apr or 2 Jan, 3 Feb, 4 Mar ...: neither reading is more regular.
    times = [f"{day:02d}/{day + 1:02d}/2016" for day in range(1, 11)] * 2
    with pytest.raises(ValueError) as error:
        series.read_series_csv(write(tmp_path, csv_text(times, range(20))))
    assert str(error.value) == (
        "sensors.csv: expected dates whose order can be told in 'timestamp'; '01/02/2016' "
        "reads as well day first as month first and no date decides (write them as YYYY-MM-DD)"
    )


def test_too_few_points(tmp_path):
    with pytest.raises(ValueError) as error:
        series.read_series_csv(write(tmp_path, csv_text(stamps(10), range(10))))
    assert str(error.value) == "sensors.csv: expected at least 16 points to score; received 10"

    times = stamps(15) + stamps(5)  # 20 rows, 15 times
    with pytest.raises(ValueError) as error:
        series.read_series_csv(write(tmp_path, csv_text(times, range(20))))
    assert str(error.value).endswith("at least 16 points to score; received 15 (from 20 rows)")
    assert series.MIN_POINTS == 16


# --- a label column ----------------------------------------------------------------------


def test_label_column_follows_duplicates_and_resampling(tmp_path):
    times, values = stamps(22), list(range(22))
    labels = [0] * 22
    times[4] = times[3]  # rows 3 and 4 share 00:15; only row 4 is labelled
    labels[4] = 1
    labels[10] = labels[11] = 1  # 00:50 and 00:55, then 01:00 and 01:05 are missing
    del times[12:14], values[12:14], labels[12:14]
    text = csv_text(times, values, header="timestamp,value,is_anomaly", labels=labels)
    result = series.read_series_csv(write(tmp_path, text))
    assert result.columns == ["value"]
    assert len(result) == 22  # 00:00 .. 01:45
    assert result.values[3, 0] == 3.5
    expected = [0] * 22
    expected[3] = 1  # 00:15 takes the maximum of its two rows
    expected[4] = 1  # 00:20 was not read: an empty slot takes the label before it
    expected[10:14] = [1, 1, 1, 1]  # 00:50, 00:55 and the two empty slots after them
    assert result.is_anomaly.astype(int).tolist() == expected
    assert result.label_windows == [(3, 4), (10, 13)]
    assert result.notes == [
        "averaged 1 duplicate timestamp (2 rows at 1 time)",
        "resampled to the typical step of 5 min: 3 missing steps filled",
    ]


def test_label_column_must_be_zero_or_one(tmp_path):
    text = csv_text(stamps(20), range(20), header="timestamp,value,flag", labels=[0, 2] * 10)
    with pytest.raises(ValueError) as error:
        series.read_series_csv(write(tmp_path, text), label_col="flag")
    assert str(error.value) == (
        "sensors.csv: expected only 0 and 1 in label column 'flag'; "
        "received 10 other values (first: '2' in row 2)"
    )


def test_series_from_a_typed_frame():
    times = pd.date_range("2024-01-01 01:00", periods=20, freq="5min", tz="Europe/Paris")
    frame = pd.DataFrame({"timestamp": times, "value": np.arange(20.0)})
    result = series.series_from_frame(frame, name="notebook")
    assert result.times[0] == START and result.times.tz is None
    assert result.notes == ["converted times from Europe/Paris to UTC"]


# --- label windows -----------------------------------------------------------------------


def five_minute_times():
    return pd.date_range("2014-04-01", periods=20, freq="5min")


def test_nab_windows_by_key_and_by_file_name(tmp_path):
    windows = {
        "realKnownCause/nyc_taxi.csv": [
            ["2014-04-01 00:20:00.000000", "2014-04-01 00:35:00.000000"],
            ["2014-04-01 01:10:00.000000", "2014-04-01 01:20:00.000000"],
        ],
        "realKnownCause/other.csv": [],
    }
    path = tmp_path / "combined_windows.json"
    path.write_text(json.dumps(windows))
    times = five_minute_times()
    expected = [(4, 7), (14, 16)]
    assert series.read_label_windows(path, "realKnownCause/nyc_taxi.csv", times) == expected
    assert series.read_label_windows(path, "nyc_taxi.csv", times) == expected
    assert series.read_label_windows(path, "realKnownCause/other.csv", times) == []
    # A series the file does not name: no windows at all (None), not an empty list.
    assert series.read_label_windows(path, "realKnownCause/missing.csv", times) is None


def test_a_series_the_labels_file_does_not_name_gets_no_other_series_windows(tmp_path):
    path = tmp_path / "windows.json"
    path.write_text(json.dumps({"a.csv": [["2014-04-01 00:05", "2014-04-01 00:10"]]}))
    assert series.read_label_windows(path, "/data/a.csv", five_minute_times()) == [(1, 2)]
    assert series.read_label_windows(path, "b.csv", five_minute_times()) is None


def test_windows_that_all_miss_the_series_are_refused(tmp_path):
    path = tmp_path / "windows.json"
    path.write_text(json.dumps([["2013-01-01", "2013-01-02"], ["2015-01-01", "2015-01-02"]]))
    with pytest.raises(ValueError) as error:
        series.read_label_windows(path, None, five_minute_times())
    assert str(error.value) == (
        "windows.json: expected windows within the series' times (2014-04-01 00:00:00 to "
        "2014-04-01 01:35:00); received 2 windows, none inside (first: [2013-01-01, 2013-01-02])"
    )


@pytest.mark.parametrize("header", ["start,end\n", ""])
def test_csv_windows_with_or_without_header(tmp_path, header):
    path = tmp_path / "windows.csv"
    path.write_text(header + "2014-04-01 00:10:00,2014-04-01 00:15:00\n\n")
    assert series.read_label_windows(path, None, five_minute_times()) == [(2, 3)]

    path.write_text(header + "3,5\n10,10.5\n")
    assert series.read_label_windows(path, None, pd.Index(range(20))) == [(3, 5), (10, 10)]


def test_windows_are_clipped_merged_and_sorted(tmp_path):
    path = tmp_path / "windows.json"
    windows = [
        ["2014-04-01 01:00", "2014-04-01 03:00"],  # runs past the end: clipped to 19
        ["2014-03-31 23:00", "2014-04-01 00:05"],  # starts before the series: clipped to 0
        ["2014-04-01 00:30", "2014-04-01 00:40"],
        ["2014-04-01 00:35", "2014-04-01 00:50"],  # overlaps the one before: merged
        ["2014-05-01 00:00", "2014-05-02 00:00"],  # entirely after: left out
        ["2014-04-01 00:31", "2014-04-01 00:34"],  # between two times: holds none
    ]
    path.write_text(json.dumps(windows))
    assert series.read_label_windows(path, None, five_minute_times()) == [(0, 1), (6, 10), (12, 19)]


def test_window_ending_before_it_starts(tmp_path):
    path = tmp_path / "windows.json"
    path.write_text(json.dumps([["2014-04-01 00:30", "2014-04-01 00:10"]]))
    with pytest.raises(ValueError, match="expected each window to start before it ends"):
        series.read_label_windows(path, None, five_minute_times())


def test_bad_window_bounds(tmp_path):
    path = tmp_path / "windows.json"
    path.write_text(json.dumps([["soon", "later"]]))
    with pytest.raises(ValueError, match="expected window bounds that are datetimes"):
        series.read_label_windows(path, None, five_minute_times())
    path.write_text(json.dumps([[1, 2, 3]]))
    with pytest.raises(ValueError, match=r"pairs; received 3 items at position 0"):
        series.read_label_windows(path, None, five_minute_times())


def test_deeply_nested_json(tmp_path):
    path = tmp_path / "windows.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        series.read_label_windows(path, None, five_minute_times())


def test_malformed_json(tmp_path):
    path = tmp_path / "windows.json"
    path.write_text('[\n  ["2014-04-01 00:10", "2014-04-01 00:20"],\n]\n')
    with pytest.raises(ValueError) as error:
        series.read_label_windows(path, None, five_minute_times())
    assert str(error.value).startswith("windows.json: expected valid JSON; ")
    assert " at line 3, column 1" in str(error.value)


# --- a property: messy files give a clean series or a ValueError, nothing else -----------


@st.composite
def messy_rows(draw):
    """Rows of a 5-minute series, shuffled, with duplicates, gaps and empty values."""
    count = draw(st.integers(min_value=1, max_value=60))
    kept = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    offsets = [index for index, keep in enumerate(kept) if keep or index == 0]
    offsets += draw(st.lists(st.sampled_from(offsets), max_size=10))  # duplicated stamps
    jitter = draw(st.sampled_from([0, 0, 60, 90]))  # seconds of clock jitter
    rows = []
    for offset in offsets:
        shift = draw(st.integers(-jitter, jitter)) if jitter else 0
        time = START + FIVE_MINUTES * offset + pd.Timedelta(seconds=shift)
        value = draw(st.one_of(st.floats(-1e6, 1e6), st.just(""), st.just("nan")))
        rows.append((str(time), value))
    return draw(st.permutations(rows))


@settings(
    max_examples=examples(50),
    deadline=None,
    derandomize=True,  # the same examples on every run: CI never flakes
    database=None,  # and no .hypothesis folder in the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=messy_rows(), rule=st.sampled_from(series.DUPLICATE_RULES))
def test_messy_files_read_cleanly_or_raise_value_error(tmp_path, rows, rule):
    path = write(tmp_path, csv_text(*zip(*rows)) if rows else "timestamp,value\n")
    try:
        result = series.read_series_csv(path, duplicates=rule)
    except ValueError:
        return
    gaps = np.diff(result.times.asi8)
    assert len(result) >= series.MIN_POINTS
    assert result.values.shape == (len(result.times), 1)
    assert (gaps > 0).all() and (gaps == gaps[0]).all()
    assert np.isfinite(result.values).all()


def test_spreadsheet_numbers_are_read_as_written(tmp_path):
    # European Excel: ";" between columns, "1.234,5" is 1234.5; elsewhere "$21.28", "2,537.00".
    times = [f"2024-01-01 {hour:02d}:00" for hour in range(20)]
    european = ["1.234,5", "2,5"] + [f"{hour},25" for hour in range(2, 20)]
    path = tmp_path / "eu.csv"
    path.write_text("timestamp;value\n" + "".join(f"{t};{v}\n" for t, v in zip(times, european)))
    assert series.read_series_csv(path).values[:3, 0].tolist() == [1234.5, 2.5, 2.25]
    dollars = ['"$21.28"', '"2,537.00"'] + [str(hour) for hour in range(2, 20)]
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in zip(times, dollars)))
    assert series.read_series_csv(path).values[:3, 0].tolist() == [21.28, 2537.0, 2.0]
    path.write_text(path.read_text().replace('"2,537.00"', "50 ms"))
    with pytest.raises(ValueError, match=r"received 1 other value \(first: '50 ms' in row 2\)"):
        series.read_series_csv(path)


def test_a_repeated_heading_is_refused_only_where_it_is_used(tmp_path):
    rows = "".join(f"2024-01-01 {h:02d}:00,{h},a,b\n" for h in range(20))
    path = tmp_path / "notes.csv"
    path.write_text("timestamp,value,note,note\n" + rows)  # two notes, never read: fine
    assert series.read_series_csv(path, value_cols=["value"]).columns == ["value"]
    path.write_text("\ntimestamp,value,value,note\n" + rows)  # a blank line first, as pandas skips
    with pytest.raises(ValueError, match="expected one column named 'value'; the file has several"):
        series.read_series_csv(path)
    path.write_text("a" * 140_000 + ",value\n1,2\n")  # past the csv module's field limit
    with pytest.raises(ValueError, match="expected a column 'timestamp'"):
        series.read_series_csv(path)
