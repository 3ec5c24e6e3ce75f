"""Tests of the WVS Wave 7 loader on small hand-made files in the official layout (CSV, .sav, .dta).

The fixtures are written by the tests into tmp_path: 13 respondents in Sweden, Japan and Morocco
(MAR, as in the data), with the release's extra columns, negative missing codes, W_WEIGHT, a
Q254 code 5, Q182 not asked in Morocco, and no Y003 column (it is computed from Q8/Q14/Q15/Q17).
"""
from __future__ import annotations

import hashlib
import warnings
import zipfile

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from vpersona.data import wvs
from vpersona.data.survey import Survey
from vpersona.data.wvs import WVSFileError, describe, load_bundled_sample, load_wvs

# One row per respondent. Y003 is absent on purpose; Y002 is the file's own value.
COLUMNS = ["B_COUNTRY_ALPHA", "D_INTERVIEW", "W_WEIGHT", "Q1", "Q8", "Q14", "Q15", "Q17", "Q57",
           "Q154", "Q155", "Y002", "Q164", "Q182", "Q254", "Q262", "H_URBRURAL"]
ROWS = [
    ("SWE", 752070001, 0.8, 1, 1, 1, 2, 2, 1, 2, 4, 3, 2, 10, 1, 34, 1),   # Y003 = 2
    ("SWE", 752070002, 1.2, 1, 1, 2, 2, 2, -1, 1, 2, 2, 5, 9, 2, 51, 1),   # Y003 = 1, Q57 don't know
    ("SWE", 752070003, 1.0, 2, -1, 1, 2, 2, 1, 1, 3, 1, 1, 8, 5, 62, 2),   # Q8 DK -> Y003 -5; Q254=5
    ("SWE", 752070004, 0.9, -5, 2, 2, 1, 1, 2, 4, 2, 3, 7, 7, 1, 28, 1),   # Y003 = -2, Q1 missing
    ("SWE", 752070005, 1.1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 3, -2, 1, -2, 2),   # Y003 = 1, Q182/Q262 NA
    ("JPN", 392070001, 1.5, 1, 1, 2, 2, 1, 2, 1, 3, 1, 4, 6, 2, 45, 1),    # Y003 = 0
    ("JPN", 392070002, 0.5, 2, 2, 1, 2, 2, -2, 3, 1, 1, 2, 5, 3, 39, 1),   # Y003 = 1, Q57 no answer
    ("JPN", 392070003, 1.0, 1, 1, 1, 2, 2, 1, 2, 1, 2, 1, 4, 1, 70, 2),    # Y003 = 2
    ("JPN", 392070004, 1.0, 3, 2, 2, 2, 2, 2, 4, 3, 2, 1, 3, 2, 22, 1),    # Y003 = 0
    ("MAR", 504070001, 1.3, 1, 2, 1, 1, 1, 2, 1, 3, 1, 10, -4, 1, 30, 2),  # Y003 = -1
    ("MAR", 504070002, 0.7, 1, 1, 2, 1, -4, 2, 1, 1, 1, 10, -4, 1, 41, 1),  # Q17 not asked -> Y003 -4
    ("MAR", 504070003, 1.0, 2, 2, 2, 1, 1, 1, 3, 4, 2, 9, -4, -1, 55, 2),  # Y003 = -2
    ("MAR", 504070004, 1.0, 1, 1, 1, 1, 1, 2, 2, 2, 3, 10, -4, 2, 60, 1),  # Y003 = 0
]
EXPECTED_Y003 = [2, 1, np.nan, -2, 1, 0, 1, 2, 0, -1, np.nan, -2, 0]
EXPECTED_Y003_CODES = [0, 0, -5, 0, 0, 0, 0, 0, 0, 0, -4, 0, 0]
# Columns of the release that the loader must not need (a few of the ~600).
EXTRA = {"version": "6-0-0 (2024-04-30)", "doi": "doi.org/10.14281/18241.24", "A_WAVE": 7,
         "A_YEAR": 2018, "B_COUNTRY": 0, "S018": 0.9, "Q2": 2, "E_RESPINT": 1}
LABELS = {"Q254": {1: "Very proud", 2: "Quite proud", 3: "Not very proud", 4: "Not at all proud",
                   5: "I am not [nationality]", -1: "Don't know", -2: "No answer", -4: "Not asked",
                   -5: "Missing; Not available"},
          "Q57": {1: "Most people can be trusted", 2: "Need to be very careful", -1: "Don't know",
                  -2: "No answer", -4: "Not asked", -5: "Missing; Unknown"},
          "H_URBRURAL": {1: "Urban", 2: "Rural", -5: "No answer; Missing", -4: "Not asked"}}


def official_frame(drop=()) -> pd.DataFrame:
    """The fixture respondents with the release's column order (metadata first, then items)."""
    df = pd.DataFrame(ROWS, columns=COLUMNS)
    for name, value in EXTRA.items():
        df[name] = value
    df["B_COUNTRY"] = df["B_COUNTRY_ALPHA"].map({"SWE": 752, "JPN": 392, "MAR": 504})
    order = ["version", "doi", "A_WAVE", "A_YEAR", "B_COUNTRY", "B_COUNTRY_ALPHA", "D_INTERVIEW",
             "E_RESPINT", "W_WEIGHT", "S018"] + [c for c in COLUMNS if c not in ("B_COUNTRY_ALPHA",
                                                                                  "D_INTERVIEW", "W_WEIGHT")] + ["Q2"]
    return df[order].drop(columns=list(drop))


def write_fixture(tmp_path, fmt: str, frame: pd.DataFrame | None = None, name: str = "wvs7"):
    """Write ``frame`` (default: the official fixture) as the release would ship it."""
    df = official_frame() if frame is None else frame
    if fmt == "csv":
        path = tmp_path / f"{name}.csv"
        df.to_csv(path, index=False)
    elif fmt == "csv_semicolon":
        path = tmp_path / f"{name}_semicolon.csv"
        df.to_csv(path, index=False, sep=";")
    elif fmt == "csv.gz":
        path = tmp_path / f"{name}.csv.gz"
        df.to_csv(path, index=False)
    elif fmt == "zip":
        path = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(f"{name}.csv", df.to_csv(index=False))
    elif fmt == "sav":
        path = tmp_path / f"{name}.sav"
        labels = {k: v for k, v in LABELS.items() if k in df}
        missing = {c: [{"lo": -5, "hi": -1}] for c in df.columns if c.startswith("Q")}
        pyreadstat.write_sav(df, str(path), variable_value_labels=labels, missing_ranges=missing)
    elif fmt == "dta":
        path = tmp_path / f"{name}.dta"
        labels = {k: v for k, v in LABELS.items() if k in df}
        pyreadstat.write_dta(df, str(path), variable_value_labels=labels)
    else:
        raise ValueError(fmt)
    return path


def quiet_load(*args, **kwargs) -> Survey:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_wvs(*args, **kwargs)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def csv_path(tmp_path):
    return write_fixture(tmp_path, "csv")


# --------------------------------------------------------------------------- formats

@pytest.mark.parametrize("fmt", ["csv_semicolon", "csv.gz", "zip", "sav", "dta"])
def test_every_format_loads_to_the_same_survey(tmp_path, csv_path, fmt):
    reference = quiet_load(csv_path)
    path = write_fixture(tmp_path, fmt)
    before = sha256(path)
    survey = quiet_load(path)
    assert sha256(path) == before, f"{fmt} file was modified by loading"
    pd.testing.assert_frame_equal(survey.responses, reference.responses)
    pd.testing.assert_frame_equal(survey.missing, reference.missing)
    assert survey.synthetic is False and path.name in survey.source


def test_csv_header_after_a_preamble(tmp_path, csv_path):
    path = tmp_path / "preamble.csv"
    path.write_text("World Values Survey Wave 7\nexported 2024-04-30\n" + csv_path.read_text())
    pd.testing.assert_frame_equal(quiet_load(path).responses, quiet_load(csv_path).responses)


def test_text_in_an_answer_column_is_an_error(tmp_path):
    frame = official_frame()
    frame["Q57"] = frame["Q57"].astype(object)
    frame.loc[3, "Q57"] = "Most people"
    with pytest.raises(WVSFileError, match="should hold numeric answer codes holds text"):
        quiet_load(write_fixture(tmp_path, "csv", frame), items=["Q57"])


def test_survey_contract(csv_path):
    survey = quiet_load(csv_path)
    r, m = survey.responses, survey.missing
    assert list(r.columns[:2]) == ["country", "weight"]
    assert r.index.name == "respondent" and r.index[0] == "752070001"
    assert survey.countries == ["JPN", "MAR", "SWE"]
    # default items: every catalog item in the file, plus Y003 derived from its components
    assert set(survey.items) == {"Q1", "Q8", "Q14", "Q15", "Q17", "Q57", "Q154", "Q155", "Y002", "Y003",
                                 "Q164", "Q182", "Q254", "Q262", "H_URBRURAL"}
    assert "Q2" not in r  # not a catalog item
    assert list(m.columns) == survey.items and (m.index == r.index).all()
    assert all(r[c].dtype == "float64" for c in survey.items)
    assert np.allclose(r["weight"], [row[2] for row in ROWS])


def test_negative_codes_are_missing_and_countable(csv_path):
    survey = quiet_load(csv_path)
    r, m = survey.responses, survey.missing
    assert np.isnan(r.loc["752070002", "Q57"]) and m.loc["752070002", "Q57"] == -1
    assert np.isnan(r.loc["392070002", "Q57"]) and m.loc["392070002", "Q57"] == -2
    assert np.isnan(r.loc["752070004", "Q1"]) and m.loc["752070004", "Q1"] == -5
    assert r.loc["752070001", "Q57"] == 1 and m.loc["752070001", "Q57"] == 0
    counts = survey.missing_counts().set_index(["country", "item", "kind"])["n"]
    assert counts[("SWE", "Q57", "dont_know")] == 1
    assert counts[("JPN", "Q57", "no_answer")] == 1
    assert counts[("MAR", "Q182", "not_asked")] == 4
    assert counts[("SWE", "Q254", "missing")] == 1  # the code 5
    assert counts[("MAR", "Q254", "dont_know")] == 1
    assert counts[("SWE", "Q262", "no_answer")] == 1


def test_numeric_age_keeps_its_values(csv_path):
    r = quiet_load(csv_path).responses
    assert r.loc["392070003", "Q262"] == 70 and r.loc["392070004", "Q262"] == 22


def test_q254_code_5_is_missing_with_a_warning(csv_path):
    with pytest.warns(UserWarning, match=r"Q254 code 5 \(n=1\)"):
        survey = load_wvs(csv_path, items=["Q254"], countries=["SWE"])
    assert np.isnan(survey.responses.loc["752070003", "Q254"])
    assert survey.missing.loc["752070003", "Q254"] == -5


# --------------------------------------------------------------------------- derived indices

def test_y003_is_computed_from_its_components_when_absent(csv_path):
    survey = quiet_load(csv_path, items=["Y003"], not_asked="exclude")
    assert survey.items == ["Y003"]
    np.testing.assert_array_equal(survey.responses["Y003"].to_numpy(), EXPECTED_Y003)
    assert survey.missing["Y003"].tolist() == EXPECTED_Y003_CODES


def test_y003_in_the_file_is_kept_and_negative_values_are_valid(tmp_path):
    frame = official_frame()
    file_y003 = [-2, -1, 0, 1, 2, -5, -4, 2, 2, 2, 2, 2, 2]  # deliberately not the computed values
    frame["Y003"] = file_y003
    survey = quiet_load(write_fixture(tmp_path, "csv", frame), items=["Y003"])
    assert survey.responses["Y003"].tolist()[:5] == [-2, -1, 0, 1, 2]
    assert survey.missing["Y003"].tolist()[:7] == [0, 0, 0, 0, 0, -5, -4]
    assert survey.responses["Y003"].tolist()[7:] == [2] * 6


def test_y002_file_values_kept_and_computed_when_absent(tmp_path, csv_path):
    frame = official_frame()
    frame["Y002"] = [2] * 12 + [-5]  # not what the components give: the file's values win
    kept = quiet_load(write_fixture(tmp_path, "csv", frame, "owny002"), items=["Y002"])
    assert kept.responses["Y002"].tolist()[:12] == [2] * 12 and kept.missing["Y002"].iloc[12] == -5
    computed = quiet_load(write_fixture(tmp_path, "csv", official_frame(drop=["Y002"]), "noy002"),
                          items=["Y002"])
    # (Q154, Q155): (2,4) post-materialist, (1,2) mixed, (1,3) materialist, (4,2) post-materialist, ...
    assert computed.responses["Y002"].tolist() == [3, 2, 1, 3, 2, 1, 1, 2, 2, 1, 1, 2, 3]


def test_index_functions():
    assert wvs.autonomy_index([1, 2, 1, -1], [1, 2, 2, 1], [2, 1, 2, 2], [2, 1, 1, 2]).tolist()[:3] == [2, -2, 0]
    assert np.isnan(wvs.autonomy_index([-1], [1], [2], [2])[0])
    assert wvs.postmaterialism_index([1, 2, 1, 3], [3, 4, 2, 1]).tolist() == [1, 3, 2, 1]
    assert np.isnan(wvs.postmaterialism_index([5], [1])[0])


# --------------------------------------------------------------------------- selection

def test_select_countries_and_items(csv_path):
    survey = quiet_load(csv_path, countries="jpn", items=["Q57", "Q164"])
    assert survey.countries == ["JPN"] and survey.items == ["Q57", "Q164"]
    assert len(survey.responses) == 4


def test_respondent_ids_fall_back_to_row_numbers(tmp_path):
    path = write_fixture(tmp_path, "csv", official_frame(drop=["D_INTERVIEW"]))
    survey = quiet_load(path, countries=["MAR"])
    assert survey.responses.index.tolist() == ["9", "10", "11", "12"]


def test_reads_only_the_needed_columns(tmp_path, csv_path, monkeypatch):
    seen = []
    real_csv, real_sav, real_dta = pd.read_csv, pyreadstat.read_sav, pyreadstat.read_dta

    def spy(real):
        def wrapper(*args, **kwargs):
            if not kwargs.get("metadataonly"):
                seen.append(sorted(kwargs.get("usecols") or ["(all columns)"]))
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(pd, "read_csv", spy(real_csv))
    monkeypatch.setattr(pyreadstat, "read_sav", spy(real_sav))
    monkeypatch.setattr(pyreadstat, "read_dta", spy(real_dta))
    for path in (csv_path, write_fixture(tmp_path, "sav"), write_fixture(tmp_path, "dta")):
        quiet_load(path, items=["Q57", "Y003"])
    expected = sorted(["B_COUNTRY_ALPHA", "D_INTERVIEW", "W_WEIGHT", "Q57", "Q8", "Q14", "Q15", "Q17"])
    assert seen == [expected] * 3


def test_describe(csv_path):
    survey = quiet_load(csv_path, items=["Q57", "Q182"], not_asked="exclude")
    table = describe(survey)
    assert table.loc["SWE", "n"] == 5 and table.loc["SWE", "n_weighted"] == pytest.approx(5.0)
    assert table.loc["MAR", "not_asked"] == pytest.approx(0.5)  # Q182 all -4: 4 of 8 cells
    assert table.loc["SWE", "dont_know"] == pytest.approx(0.1)
    shares = table.drop(columns=["n", "n_weighted"]).sum(axis=1)
    assert np.allclose(shares, 1.0)


# --------------------------------------------------------------------------- weights

def test_weight_defaults_to_one_with_a_warning(tmp_path):
    path = write_fixture(tmp_path, "csv", official_frame(drop=["W_WEIGHT"]))
    with pytest.warns(UserWarning, match="no W_WEIGHT column.*weight 1.0"):
        survey = load_wvs(path, countries=["SWE"], items=["Q57"])
    assert (survey.responses["weight"] == 1.0).all()


def test_unweighted_on_request_without_warning(csv_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        survey = load_wvs(csv_path, countries=["JPN"], items=["Q57"], weight_column=None)
    assert (survey.responses["weight"] == 1.0).all()


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_bad_weights_are_an_error(tmp_path, bad):
    frame = official_frame()
    frame.loc[6, "W_WEIGHT"] = bad
    with pytest.raises(WVSFileError, match=r"W_WEIGHT must be a finite number > 0.*1 are not.*JPN"):
        quiet_load(write_fixture(tmp_path, "csv", frame))


def test_other_weight_column(csv_path):
    survey = quiet_load(csv_path, items=["Q57"], weight_column="S018")
    assert (survey.responses["weight"] == 0.9).all()
    with pytest.raises(WVSFileError, match="no weight column 'PWEIGHT'"):
        quiet_load(csv_path, items=["Q57"], weight_column="PWEIGHT")


# --------------------------------------------------------------------------- bad input

def test_path_does_not_exist(tmp_path):
    with pytest.raises(WVSFileError, match=r"does not exist.*worldvaluessurvey.org"):
        load_wvs(tmp_path / "nope.csv")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "wvs7.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(WVSFileError, match=r"unsupported WVS file type 'wvs7.xlsx'.*\.csv.*\.sav.*\.dta"):
        load_wvs(path)


def test_not_a_wvs_file(tmp_path):
    path = tmp_path / "other.csv"
    pd.DataFrame({"name": ["a", "b"], "value": [1, 2]}).to_csv(path, index=False)
    with pytest.raises(WVSFileError, match=r"other.csv is not a WVS Wave 7 file.*B_COUNTRY_ALPHA.*\['name', 'value'\]"):
        load_wvs(path)


@pytest.mark.parametrize("fmt", ["csv", "sav", "dta"])
def test_missing_required_columns_are_all_listed(tmp_path, fmt):
    frame = official_frame(drop=["B_COUNTRY_ALPHA", "Q57", "Q14"])
    path = write_fixture(tmp_path, fmt, frame)
    with pytest.raises(WVSFileError) as err:
        load_wvs(path, items=["Q57", "Y003", "Q46", "Q1"])
    message = str(err.value)
    assert "lacks required columns" in message
    for expected in ("B_COUNTRY_ALPHA", "Q57", "Q46", "Y003 (or all its components Q8, Q14, Q15, Q17; missing Q14)"):
        assert expected in message
    assert "Q1 " not in message


@pytest.mark.parametrize("code, hint", [("SWD", "did you mean SWE"), ("MOR", "Morocco is MAR"),
                                        ("Sweden", "did you mean SWE"), ("XYZ", "'XYZ'")])
def test_unknown_country_code(csv_path, code, hint):
    with pytest.raises(WVSFileError, match="unknown country codes.*ISO alpha-3") as err:
        load_wvs(csv_path, countries=["SWE", code])
    assert hint in str(err.value)


def test_country_without_respondents(csv_path):
    with pytest.raises(WVSFileError, match=r"no respondents in wvs7.csv for DEU, NGA; countries present: JPN, MAR, SWE"):
        load_wvs(csv_path, countries=["SWE", "DEU", "NGA"])


def test_item_not_in_catalog(csv_path):
    with pytest.raises(WVSFileError, match=r"items not in the vpersona catalog: 'Q2'.*'q57' \(did you mean Q57") as err:
        load_wvs(csv_path, items=["Q2", "q57"])
    assert "Catalog items: Q164" in str(err.value)


def test_requested_item_absent_from_file(csv_path):
    with pytest.raises(WVSFileError, match=r"lacks required columns: Q46 \(requested item\)"):
        load_wvs(csv_path, items=["Q57", "Q46"])


def test_item_not_asked_in_a_country_is_an_error(csv_path):
    with pytest.raises(WVSFileError, match=r"not asked in requested countries.*MAR/Q182.*not_asked='exclude'"):
        load_wvs(csv_path, countries=["SWE", "MAR"], items=["Q57", "Q182"])


def test_not_asked_lists_every_pair(tmp_path):
    frame = official_frame()
    frame.loc[frame["B_COUNTRY_ALPHA"] == "JPN", ["Q57", "Q182"]] = -4
    with pytest.raises(WVSFileError) as err:
        load_wvs(write_fixture(tmp_path, "csv", frame), items=["Q57", "Q182"])
    assert "JPN/Q57, JPN/Q182, MAR/Q182" in str(err.value)


def test_item_not_asked_excluded_with_a_warning(csv_path):
    with pytest.warns(UserWarning, match=r"not asked \(all -4\) in: MAR/Q182"):
        survey = load_wvs(csv_path, items=["Q182"], not_asked="exclude")
    assert "Q182" in survey.items and not survey.asked("MAR", "Q182") and survey.asked("SWE", "Q182")


def test_not_asked_only_warns_for_default_items(csv_path):
    with pytest.warns(UserWarning) as record:
        survey = load_wvs(csv_path)
    assert any("not asked (all -4) in: MAR/Q182" in str(w.message) for w in record)
    assert not survey.asked("MAR", "Q182")


def test_bad_not_asked_option(csv_path):
    with pytest.raises(ValueError, match="not_asked='drop'; expected 'error' or 'exclude'"):
        load_wvs(csv_path, not_asked="drop")


def test_zip_with_several_data_files(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "B_COUNTRY_ALPHA,Q1\n")
        archive.writestr("b.csv", "B_COUNTRY_ALPHA,Q1\n")
    with pytest.raises(WVSFileError, match=r"must hold exactly one .csv, .sav or .dta file.*a.csv.*b.csv"):
        load_wvs(path)


# --------------------------------------------------------------------------- bundled SYNTHETIC sample

def test_bundled_sample_loads_as_synthetic():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # items not asked in some countries, as in the real data
        survey = load_bundled_sample()
    assert survey.synthetic is True and survey.source == "vpersona bundled SYNTHETIC sample"
    assert "SYNTHETIC" in survey.label
    assert len(survey.countries) >= 12
    assert {"Y002", "Y003", "Q57", "Q262"} <= set(survey.items)
    assert (survey.responses["weight"] > 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = load_bundled_sample(countries=[survey.countries[0]], items=["Q57", "Y003"])
    assert one.countries == survey.countries[:1] and one.items == ["Q57", "Y003"]


def test_missing_bundled_sample_says_how_to_regenerate(monkeypatch):
    monkeypatch.setattr(wvs, "BUNDLED_SAMPLE", "data/no_such_SYNTHETIC_sample.csv.gz")
    with pytest.raises(FileNotFoundError, match="python -m vpersona.data.synthetic"):
        load_bundled_sample()


def test_save_survey_round_trips_through_load_wvs(tmp_path):
    import warnings as _w
    with _w.catch_warnings():
        _w.simplefilter("ignore")
        original = wvs.load_bundled_sample(["DEU", "EGY"])
        path = wvs.save_survey(original, tmp_path / "respondents.csv.gz")
        again = wvs.load_wvs(path, not_asked="exclude")
    assert again.responses.equals(original.responses)
    assert again.missing.equals(original.missing)
    first = path.read_bytes()
    wvs.save_survey(again, path)
    assert path.read_bytes() == first, "save_survey is not byte-reproducible"


# --------------------------------------------------------------------------- nothing dropped or altered silently

def _warnings_of(*args, **kwargs) -> tuple[Survey, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        survey = load_wvs(*args, **kwargs)
    return survey, [str(w.message) for w in caught]


def test_rows_without_a_known_country_are_counted_under_a_country_selection(tmp_path):
    df = official_frame()
    df.loc[[0, 1], "B_COUNTRY_ALPHA"] = ["", "S?E"]
    path = write_fixture(tmp_path, "csv", df)
    survey, said = _warnings_of(path, countries=["SWE", "JPN"], items=["Q1"])
    assert any("2 rows have a blank or unknown B_COUNTRY_ALPHA ('', 'S?E') and were not loaded" in w for w in said)
    assert len(survey.responses) == int(df.B_COUNTRY_ALPHA.isin(["SWE", "JPN"]).sum())


def test_blank_and_text_answers_are_counted_not_silently_missing(tmp_path):
    df = official_frame()
    df["Q1"] = df["Q1"].astype(object)
    df.loc[[0, 1], "Q1"] = [None, "n/a"]
    path = write_fixture(tmp_path, "dta", df.astype({"Q1": str}).replace({"Q1": {"None": ""}}))
    survey, said = _warnings_of(path, items=["Q1"], countries=["SWE", "JPN", "MAR"])
    (line,) = [w for w in said if "not answer options" in w]
    assert "Q1 blank (n=1)" in line and "Q1 text 'n/a' (n=1)" in line and "treated as missing (-5)" in line
    assert (survey.missing["Q1"] == -5).sum() >= 2


def test_bytes_that_are_not_utf8_are_counted(tmp_path):
    path = write_fixture(tmp_path, "csv")
    raw = path.read_bytes().replace(b",752070003,", b",75207000\xe9,", 1)
    path.write_bytes(raw)
    _, said = _warnings_of(path, items=["Q1"], countries=["SWE"])
    assert any("1 rows have bytes that are not UTF-8 in D_INTERVIEW" in w for w in said)
