"""Truncated and mislabelled WVS files are refused with what they look like (vpersona.data.wvs_read)."""
from __future__ import annotations

import gzip
import zipfile

import pytest

from tests.data.test_wvs import official_frame, write_fixture
from vpersona.data.wvs import WVSFileError, load_wvs
from vpersona.data.wvs_read import sniff


def _cut(path, keep_lines: int, keep_fields: int):
    """Keep ``keep_lines`` whole lines and then ``keep_fields`` fields of the next, no newline."""
    lines = path.read_text().splitlines(keepends=True)
    partial = ",".join(lines[keep_lines].split(",")[:keep_fields])
    path.write_text("".join(lines[:keep_lines]) + partial)


def test_csv_cut_off_mid_line_is_refused(tmp_path):
    path = write_fixture(tmp_path, "csv")
    n = len(official_frame().columns)
    _cut(path, 10, 7)  # header + 9 rows, then 7 fields of row 10
    with pytest.raises(WVSFileError, match=rf"^wvs7\.csv looks truncated: line 11 has 7 of {n} fields "
                                          r"\(an interrupted download\?\); expected a complete WVS-7 file$"):
        load_wvs(path, not_asked="exclude")


def test_short_row_in_the_middle_is_refused(tmp_path):
    path = write_fixture(tmp_path, "csv")
    lines = path.read_text().splitlines(keepends=True)
    lines[4] = ",".join(lines[4].split(",")[:5]) + "\n"
    path.write_text("".join(lines))
    with pytest.raises(WVSFileError, match=r"wvs7\.csv is damaged: line 5 has 5 of \d+ fields \(corrupted or hand-edited\?\)"):
        load_wvs(path, not_asked="exclude")


def test_row_with_extra_fields_is_refused(tmp_path):
    path = write_fixture(tmp_path, "csv")
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = lines[3].rstrip("\n") + ",9\n"
    path.write_text("".join(lines))
    with pytest.raises(WVSFileError, match=r"line 4 has \d+ fields, the header \d+"):
        load_wvs(path, not_asked="exclude")


def test_truncated_gzip_is_refused(tmp_path):
    path = write_fixture(tmp_path, "csv.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WVSFileError, match=r"wvs7\.csv\.gz looks truncated: the gzip stream ends"):
        load_wvs(path, not_asked="exclude")


def test_a_gzip_failing_its_crc_is_called_corrupted_not_truncated(tmp_path):
    path = write_fixture(tmp_path, "csv.gz")
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # the CRC-32 in the gzip trailer: every byte is there, but it does not check
    path.write_bytes(bytes(data))
    with pytest.raises(WVSFileError, match=r"^wvs7\.csv\.gz is corrupted: its gzip data fail their check .*CRC check "
                                           r"failed.*download it again"):
        load_wvs(path, not_asked="exclude")


def test_a_directory_is_called_a_directory(tmp_path):
    from vpersona.report.config import ConfigError
    from vpersona.report.parameters import resolve_paths
    (tmp_path / "wvs7.csv").mkdir()
    with pytest.raises(WVSFileError, match=r"is a directory; expected the release file itself"):
        load_wvs(tmp_path / "wvs7.csv", not_asked="exclude")
    with pytest.raises(ConfigError, match=rf"^parameter DATA = 'wvs7.csv': {tmp_path / 'wvs7.csv'} is a directory; "
                                          "expected a file$"):
        resolve_paths({"DATA": "wvs7.csv"}, tmp_path)


def test_complete_file_without_final_newline_loads(tmp_path):
    path = write_fixture(tmp_path, "csv")
    path.write_text(path.read_text().rstrip("\n"))
    assert len(load_wvs(path, not_asked="exclude").responses) == len(official_frame())


def test_quoted_separators_are_not_miscounted(tmp_path):
    frame = official_frame()
    frame["version"] = "6-0-0, (2024-04-30)"
    path = write_fixture(tmp_path, "csv", frame)
    assert len(load_wvs(path, not_asked="exclude").responses) == len(frame)


@pytest.mark.parametrize("real, what, fix", [
    ("sav", "an SPSS .sav file", "rename it to .sav"),
    ("dta", "a Stata .dta file", "rename it to .dta"),
    ("zip", "a zip archive", "rename it to .zip"),
    ("csv.gz", "a gzip file", "rename it to .csv.gz"),
])
def test_binary_file_named_csv_is_refused_with_its_real_kind(tmp_path, real, what, fix):
    written = write_fixture(tmp_path, real)
    renamed = tmp_path / "WVS.csv"
    written.rename(renamed)
    with pytest.raises(WVSFileError, match=rf"^WVS\.csv: this is {what} named \.csv: {fix}$"):
        load_wvs(renamed)


def test_old_stata_format_is_recognised(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(bytes([0x72, 0x02, 0x01, 0x00]) + b"\0" * 60)  # Stata 114, little-endian
    assert sniff(path) == "dta"
    header = tmp_path / "y.csv"  # the release's CSV starts with "version" (0x76): still text
    header.write_text('"version","doi","B_COUNTRY_ALPHA","Q1"\n')
    assert sniff(header) == "text"


def test_html_page_named_csv_is_refused(tmp_path):
    path = tmp_path / "WVS.csv"
    path.write_text("<!DOCTYPE html><html><body>Please log in</body></html>\n")
    with pytest.raises(WVSFileError, match=r"this is an HTML page .* named \.csv; expected the WVS-7 release"):
        load_wvs(path)


def test_csv_gz_that_is_plain_text_is_refused(tmp_path):
    path = tmp_path / "WVS.csv.gz"
    official_frame().to_csv(path, index=False, compression=None)
    with pytest.raises(WVSFileError, match=r"this is a text file named \.csv\.gz: rename it to \.csv"):
        load_wvs(path)


def test_sav_inside_a_zip_named_csv_is_refused(tmp_path):
    sav = write_fixture(tmp_path, "sav")
    path = tmp_path / "release.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(sav, "WVS.csv")
    with pytest.raises(WVSFileError, match=r"release\.zip:WVS\.csv: this is an SPSS \.sav file named \.csv"):
        load_wvs(path)


def test_gzip_member_is_read(tmp_path):
    path = tmp_path / "w.csv.gz"
    with gzip.open(path, "wt") as fh:
        official_frame().to_csv(fh, index=False)
    assert len(load_wvs(path, not_asked="exclude").responses) == len(official_frame())
