"""Value descriptors, persona texts, weighted sampling, the persona plan and leakage control."""
from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from vpersona import load_catalog
from vpersona.personas.descriptors import load_descriptors
from vpersona.personas.build import build_personas, persona_id
from vpersona.personas.sampling import sample_respondents, usable_profiles
from vpersona.personas.templates import load_persona_templates
from vpersona.personas.texts import persona_text
from vpersona.data.survey import Survey

CATALOG = load_catalog()
IW = CATALOG.codes("value")
DESCRIPTORS = load_descriptors()
PREAMBLE = load_persona_templates().preamble
GOD = {b.text for b in DESCRIPTORS.items["Q164"]}
HOMOSEXUALITY = {b.text for b in DESCRIPTORS.items["Q182"]}
DEMOGRAPHICS = dict(Q260=2, Q262=34, Q275=6, Q288=4, H_URBRURAL=1, Q289=0, Q279=1, Q273=6)


def make_survey(rows: list[dict]) -> Survey:
    """A hand-made Survey: each row has id, country, weight and item answers (NaN = no answer)."""
    frame = pd.DataFrame(rows).set_index("id")
    frame.index = frame.index.astype(str)
    frame.index.name = "respondent"
    items = [c for c in frame.columns if c not in ("country", "weight")]
    frame[items] = frame[items].astype(float)
    missing = frame[items].isna().astype(int) * -1
    return Survey(frame, missing, "hand-made test survey", synthetic=True)


def profile_row(rid, country, weight=1.0, seed=0, **answers):
    """A respondent with every IW value item answered (random but seeded) plus ``answers``."""
    rng = np.random.default_rng(seed)
    row = {"id": rid, "country": country, "weight": weight, **DEMOGRAPHICS}
    row.update({item: rng.choice(CATALOG[item].codes) for item in IW})
    row.update(answers)
    return row


@pytest.fixture(scope="module")
def survey() -> Survey:
    rows = []
    for c, country in enumerate(("SWE", "NGA", "JPN")):
        for i in range(12):
            rows.append(profile_row(f"{country}{i}", country, weight=1.0 + i % 3, seed=100 * c + i, Q6=1 + i % 4))
    return make_survey(rows)


# --- descriptors -----------------------------------------------------------------------------------

def test_every_level_of_every_iw_item_has_a_distinct_descriptor():
    DESCRIPTORS.check(IW, CATALOG)  # raises unless every catalog code is covered exactly once
    for item in IW:
        texts = [DESCRIPTORS.sentence(item, code) for code in CATALOG[item].codes]
        bands = DESCRIPTORS.items[item]
        assert len({b.text for b in bands}) == len(bands), item
        assert all(t.startswith(("You", "Your", "God", "For", "Taking")) and t.endswith(".") for t in texts)
        if CATALOG[item].n_options == 10:
            assert len(bands) == 5 and len(set(texts)) == 5, item
        else:
            assert len(set(texts)) == CATALOG[item].n_options, item


def test_descriptors_are_graded_by_intensity():
    assert DESCRIPTORS.sentence("Q164", 10) == "God is very important in your life."
    assert DESCRIPTORS.sentence("Q164", 1) == "God is not at all important in your life."
    assert DESCRIPTORS.sentence("Q184", 1) == "You think abortion is never justifiable."
    assert DESCRIPTORS.sentence("Q184", 9) == "You think abortion is always justifiable."
    assert "independence and determination" in DESCRIPTORS.sentence("Y003", 2)
    assert DESCRIPTORS.sentence("Y003", 2) != DESCRIPTORS.sentence("Y003", -2)
    assert "freedom of speech matter more" in DESCRIPTORS.sentence("Y002", 3)
    assert "fighting rising prices matter more" in DESCRIPTORS.sentence("Y002", 1)


def test_value_item_without_descriptor_is_an_error_naming_it(survey):
    with pytest.raises(ValueError, match="Q1"):
        persona_text(survey.responses.iloc[0], "value", catalog=CATALOG, country_name="Sweden",
                     value_items=["Q164", "Q1"])
    with pytest.raises(ValueError, match="Q1"):
        build_personas(survey, ["SWE"], 5, 0, ["value"], ["Q6"], value_items=["Q164", "Q1"])


def test_users_add_descriptors_for_other_items_without_code_changes(tmp_path, survey):
    text = resources.files("vpersona").joinpath("resources/descriptors.yaml").read_text(encoding="utf-8")
    text = text.replace("\nitems:\n", "\nitems:\n  Q1:\n"
                        "    - {codes: [1], text: Family is very important in your life.}\n"
                        "    - {codes: [2, 3, 4], text: Family is not that important in your life.}\n", 1)
    path = tmp_path / "more.yaml"
    path.write_text(text, encoding="utf-8")
    more = load_descriptors(path)
    rows = [profile_row(f"S{i}", "SWE", Q1=1 + i % 2) for i in range(4)]
    s = make_survey(rows)
    plan = build_personas(s, ["SWE"], 8, 0, ["value"], ["Q6", "Q1"],
                          value_items=["Q1", "Q164"], descriptors=more)
    asked_q1 = plan.pairs[plan.pairs["item"] == "Q1"].merge(plan.personas, on=["persona_id", "country", "kind"])
    assert not asked_q1["text"].str.contains("Family").any()  # Q1 is never asked of its own answer
    assert plan.personas["text"].str.contains("Family is very important").any()


def test_descriptor_file_must_cover_the_catalog_codes(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("items:\n  Q46:\n    - {codes: [1, 2], text: Happy.}\n    - {codes: [2], text: Quite.}\n")
    with pytest.raises(ValueError, match=r"Q46.*described twice: \[2\].*not described: \[3, 4\]"):
        load_descriptors(path).check(["Q46"], CATALOG)


def test_dimension_scores_in_words():
    sentence = DESCRIPTORS.dimension_sentence({"trad_secular": -0.6, "surv_selfexp": -1.4})
    assert sentence == ("Compared with people worldwide, your values are rather traditional, and strongly "
                        "focused on survival and security.")
    high = DESCRIPTORS.dimension_sentence({"trad_secular": 1.5, "surv_selfexp": 0.5})
    assert "very secular" in high and "rather focused on self-expression" in high
    assert DESCRIPTORS.dimension_sentence({"trad_secular": float("nan"), "surv_selfexp": 0.0}) is None


# --- persona texts ---------------------------------------------------------------------------------

def one_profile(**answers) -> pd.Series:
    s = make_survey([profile_row("R1", "SWE", **answers)])
    return s.responses.iloc[0]


def text(profile, kind, **kw):
    kw.setdefault("value_items", IW)
    return persona_text(profile, kind, catalog=CATALOG, country_name="Sweden", **kw)


def test_kind_none_is_empty_and_country_names_the_country():
    p = one_profile()
    assert text(p, "none") == ""
    assert text(p, "country") == f"{PREAMBLE}\n\nYou live in Sweden."


def test_kind_demographic_uses_catalog_labels_and_omits_missing_parts():
    p = one_profile()
    t = text(p, "demographic")
    assert t.startswith(PREAMBLE)
    for part in ("You live in Sweden.", "You are a 34-year-old woman.", "a bachelor's degree",
                 "your household is at step 4.", "You live in an urban area.",
                 "You do not belong to any religious denomination.", "You work full time.", "You are single."):
        assert part in t, part
    assert "God" not in t
    p = one_profile(Q262=np.nan, Q275=np.nan, Q279=7)
    t = text(p, "demographic")
    assert "You are a woman." in t and "education" not in t and "You are unemployed." in t
    assert "You are married." in text(one_profile(Q273=1), "demographic")


def test_kind_value_states_every_answered_item_in_order():
    p = one_profile(Q164=10, Q57=2, Q46=np.nan)
    t = text(p, "value")
    assert t.startswith(PREAMBLE) and "Sweden" not in t
    body = t[len(PREAMBLE):]
    expected = [DESCRIPTORS.sentence(i, p[i]) for i in IW if not pd.isna(p[i])]
    assert body.strip() == " ".join(expected)
    assert "God is very important in your life." in body and "very careful" in body and "happy" not in body


def test_combined_kinds():
    p = one_profile(Q164=1)
    value_body = text(p, "value")[len(PREAMBLE):].strip()
    assert text(p, "value+country") == f"{PREAMBLE}\n\nYou live in Sweden. {value_body}"
    demo_body = text(p, "demographic")[len(PREAMBLE):].strip()
    assert text(p, "value+demographic") == f"{PREAMBLE}\n\n{demo_body}\n{value_body}"


def test_exclude_drops_sentences_and_the_dimension_sentence():
    p = one_profile(Q164=10)
    scores = pd.DataFrame({"trad_secular": [-1.5], "surv_selfexp": [0.0]}, index=["R1"])
    full = text(p, "value", scores=scores)
    assert "God is very important" in full and full.endswith("balanced between security and self-expression.")
    cut = text(p, "value", scores=scores, exclude={"Q164"})
    assert "God" not in cut and "Compared with people worldwide" not in cut
    assert "34-year-old" in text(p, "value+demographic", exclude={"Q164"})
    assert "34-year-old" not in text(p, "value+demographic", exclude={"Q262"})


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown persona kind 'values'"):
        text(one_profile(), "values")


# --- sampling --------------------------------------------------------------------------------------

def test_sampling_follows_weights_and_is_reproducible():
    rows = [profile_row(f"W{w}", "SWE", weight=w) for w in (1.0, 2.0, 7.0)] + [profile_row("W0", "SWE", weight=0.0)]
    s = make_survey(rows)
    draw = sample_respondents(s, "SWE", 20000, seed=3, value_items=IW)
    shares = draw.value_counts(normalize=True)
    assert "W0" not in shares.index
    assert shares["W1.0"] == pytest.approx(0.1, abs=0.01)
    assert shares["W2.0"] == pytest.approx(0.2, abs=0.01)
    assert shares["W7.0"] == pytest.approx(0.7, abs=0.01)
    assert draw.equals(sample_respondents(s, "SWE", 20000, seed=3, value_items=IW))
    assert not draw.equals(sample_respondents(s, "SWE", 20000, seed=4, value_items=IW))
    assert draw.name == "respondent" and list(draw.index[:3]) == [0, 1, 2]


def test_sampling_a_country_does_not_depend_on_the_others(survey):
    alone = build_personas(survey, ["NGA"], 10, 7, ["none"], ["Q6"]).draws
    both = build_personas(survey, ["SWE", "NGA"], 10, 7, ["none"], ["Q6"]).draws
    pd.testing.assert_frame_equal(alone, both[both["country"] == "NGA"].reset_index(drop=True))


def test_unknown_country_and_empty_profiles_are_errors(survey):
    with pytest.raises(ValueError, match="'FRA' has no respondents"):
        sample_respondents(survey, "FRA", 5, 0, value_items=IW)
    empty = make_survey([profile_row("E1", "SWE", **{i: np.nan for i in IW})])
    with pytest.raises(ValueError, match="no respondent of SWE .* usable value profile"):
        sample_respondents(empty, "SWE", 5, 0, value_items=IW)
    with pytest.raises(ValueError, match="Q999"):
        sample_respondents(survey, "SWE", 5, 0, value_items=["Q164", "Q999"])


def test_missing_value_rules():
    rows = [profile_row("full", "SWE"),
            profile_row("one_missing", "SWE", Q46=np.nan),
            profile_row("half", "SWE", **{i: np.nan for i in IW[:5]}),
            profile_row("too_few", "SWE", **{i: np.nan for i in IW[:6]})]
    s = make_survey(rows)
    assert usable_profiles(s, IW, "drop_sentence").to_dict() == {"full": True, "one_missing": True,
                                                                 "half": True, "too_few": False}
    assert usable_profiles(s, IW, "skip_respondent").to_dict() == {"full": True, "one_missing": False,
                                                                   "half": False, "too_few": False}
    drawn = set(sample_respondents(s, "SWE", 400, 0, value_items=IW, missing="drop_sentence"))
    assert drawn == {"full", "one_missing", "half"}
    assert set(sample_respondents(s, "SWE", 400, 0, value_items=IW, missing="skip_respondent")) == {"full"}
    with pytest.raises(ValueError, match="missing='ignore'"):
        sample_respondents(s, "SWE", 5, 0, value_items=IW, missing="ignore")
    plan = build_personas(s, ["SWE"], 50, 0, ["value"], ["Q1"])
    assert len(plan.personas) == 3
    one_missing = plan.personas[plan.personas["respondents"].str.startswith("one_missing")]["text"].iloc[0]
    assert "happy" not in one_missing and "God" in one_missing


# --- the persona plan ------------------------------------------------------------------------------

TARGETS = ["Q1", "Q6", "Q36", "Q22", "Q19"]
KINDS = ["none", "country", "demographic", "value", "value+country", "value+demographic"]


@pytest.fixture(scope="module")
def plan(survey):
    return build_personas(survey, ["SWE", "NGA", "JPN"], 40, 11, KINDS, TARGETS)


def test_plan_is_reproducible(survey, plan):
    again = build_personas(survey, ["SWE", "NGA", "JPN"], 40, 11, KINDS, TARGETS)
    for name in ("personas", "pairs", "leakage", "draws"):
        pd.testing.assert_frame_equal(getattr(plan, name), getattr(again, name))
    other = build_personas(survey, ["SWE", "NGA", "JPN"], 40, 12, KINDS, TARGETS)
    assert not other.draws.equals(plan.draws)


def test_multiplicities_sum_to_n(plan):
    per_variant = plan.personas.groupby(["country", "kind", "excluded"])["multiplicity"].sum()
    assert (per_variant == 40).all()
    per_cell = plan.pairs.groupby(["country", "kind", "item"])["multiplicity"].sum()
    assert (per_cell == 40).all() and len(per_cell) == 3 * len(KINDS) * len(TARGETS)
    counts = plan.personas["respondents"].str.split(";").map(len)
    assert (counts == plan.personas["multiplicity"]).all()
    assert len(plan.draws) == 3 * 40 and list(plan.draws.columns) == ["country", "draw", "respondent"]
    assert not plan.personas.duplicated(["country", "kind", "excluded", "text"]).any()
    summary = plan.summary()
    assert (summary["n_draws"] == 40).all() and summary["n_pairs"].sum() == len(plan.pairs)
    assert (summary["n_personas"] <= summary["n_texts"]).all() and len(summary) == 3 * len(KINDS)


def test_none_and_country_kinds_give_one_persona_per_country(plan):
    for kind in ("none", "country"):
        rows = plan.personas[plan.personas["kind"] == kind]
        assert len(rows) == 3 and (rows["multiplicity"] == 40).all()
    none = plan.personas[plan.personas["kind"] == "none"]
    assert (none["text"] == "").all() and (none["excluded"] == "").all()
    assert set(plan.personas[plan.personas["kind"] == "country"]["text"].str.split("\n\n").str[1]) == {
        "You live in Sweden.", "You live in Nigeria.", "You live in Japan."}
    assert plan.personas["persona_id"].iloc[0] == hashlib.sha256(b"none\n").hexdigest()[:12]
    assert persona_id("value", "x") == hashlib.sha256(b"value\nx").hexdigest()[:12]


def test_value_personas_dedup_identical_texts():
    rows = [profile_row(f"S{i}", "SWE", seed=0) for i in range(3)] + [profile_row("T", "SWE", seed=1)]
    plan = build_personas(make_survey(rows), ["SWE"], 30, 0, ["value"], ["Q1"])
    assert len(plan.personas) == 2
    assert sorted(plan.personas["multiplicity"]) == sorted(
        plan.draws["respondent"].str.startswith("S").value_counts().tolist())


def test_leakage_targets_never_see_their_items(plan):
    keys = ["persona_id", "country", "kind"]
    asked = plan.pairs.merge(plan.personas.drop(columns="multiplicity").drop_duplicates(keys), on=keys)

    def states(texts, sentences):
        return texts.map(lambda t: any(s in t for s in sentences))
    assert not states(asked.loc[asked["item"] == "Q6", "text"], GOD).any()
    for item in ("Q36", "Q22"):
        assert not states(asked.loc[asked["item"] == item, "text"], HOMOSEXUALITY).any()
    value_q1 = asked[(asked["item"] == "Q1") & asked["kind"].str.startswith("value")]
    assert states(value_q1["text"], GOD).all() and states(value_q1["text"], HOMOSEXUALITY).all()
    report = plan.leakage.set_index(["item", "kind"])
    assert set(report.index) == {(t, k) for t in ("Q6", "Q36", "Q22") for k in KINDS if k.startswith("value")}
    assert report.loc[("Q6", "value"), "dropped_items"] == "Q164"
    assert report.loc[("Q36", "value+demographic"), "dropped_items"] == "Q182"
    assert (report["n_personas"] > 0).all()
    q6 = plan.pairs[(plan.pairs["item"] == "Q6") & (plan.pairs["kind"] == "value")]
    variant = plan.personas.set_index(["persona_id", "country", "kind", "excluded"])
    for pid, country in zip(q6["persona_id"], q6["country"]):
        assert (pid, country, "value", "Q164") in variant.index


def test_pairs_are_persona_major(plan):
    for _, group in plan.pairs.groupby(["country", "kind"], sort=False):
        runs = (group["persona_id"] != group["persona_id"].shift()).sum()
        assert runs == group["persona_id"].nunique()
        for _, questions in group.groupby("persona_id", sort=False):
            order = [TARGETS.index(i) for i in questions["item"]]
            assert order == sorted(order)


def test_refuse_names_the_targets_and_items(survey):
    with pytest.raises(ValueError, match=r"Q6 \(persona items Q164\).*Q36 \(persona items Q182\)"):
        build_personas(survey, ["SWE"], 5, 0, ["value"], ["Q1", "Q6", "Q36"], leakage="refuse")
    ok = build_personas(survey, ["SWE"], 5, 0, ["none", "country"], ["Q6", "Q36"], leakage="refuse")
    assert ok.leakage.empty
    ok = build_personas(survey, ["SWE"], 5, 0, ["value"], ["Q1", "Q19"], leakage="refuse")
    assert ok.leakage.empty and set(ok.pairs["item"]) == {"Q1", "Q19"}


def test_value_item_as_target_is_dropped_from_its_own_persona(survey):
    plan = build_personas(survey, ["SWE"], 20, 0, ["value"], ["Q164", "Q182"])
    assert plan.leakage.set_index("item").loc["Q164", "dropped_items"] == "Q164"
    asked = plan.pairs.merge(plan.personas[plan.personas["excluded"] == "Q164"], on=["persona_id", "country", "kind"])
    assert len(asked) and not asked["text"].map(lambda t: any(s in t for s in GOD)).any()


def test_dimension_scores_are_dropped_with_leakage(survey):
    scores = pd.DataFrame({"trad_secular": 0.0, "surv_selfexp": 2.0}, index=survey.responses.index)
    plan = build_personas(survey, ["JPN"], 20, 0, ["value", "demographic"], ["Q1", "Q19", "Q6"], scores=scores)
    full = plan.personas[(plan.personas["kind"] == "value") & (plan.personas["excluded"] == "")]
    assert full["text"].str.contains("strongly focused on self-expression").all()
    cut = plan.personas[plan.personas["excluded"] == "Q164"]
    assert len(cut) and not cut["text"].str.contains("Compared with people").any()
    assert plan.leakage.set_index(["item", "kind"]).loc[("Q6", "value"), "dimensions_dropped"]
    assert not plan.personas[plan.personas["kind"] == "demographic"]["text"].str.contains("Compared").any()


def test_bad_plan_inputs(survey):
    with pytest.raises(KeyError, match="Q9999"):
        build_personas(survey, ["SWE"], 5, 0, ["value"], ["Q9999"])
    with pytest.raises(ValueError, match="leakage='ignore'"):
        build_personas(survey, ["SWE"], 5, 0, ["value"], ["Q6"], leakage="ignore")
    with pytest.raises(ValueError, match="unknown persona kind 'persona'"):
        build_personas(survey, ["SWE"], 5, 0, ["persona"], ["Q6"])
    with pytest.raises(ValueError, match="n=0"):
        build_personas(survey, ["SWE"], 0, 0, ["value"], ["Q6"])
    with pytest.raises(ValueError, match="'FRA' has no respondents"):
        build_personas(survey, ["FRA"], 5, 0, ["value"], ["Q6"])
    with pytest.raises(ValueError, match="'XYZ' is not in vpersona/resources/countries.csv"):
        build_personas(survey, ["XYZ"], 5, 0, ["value"], ["Q6"])


def test_items_not_asked_in_a_country_do_not_make_profiles_unusable():
    rows = [profile_row(f"E{i}", "EGY", seed=i, Q182=np.nan) for i in range(3)]
    rows += [profile_row("S1", "SWE", Q182=np.nan), profile_row("S2", "SWE")]
    s = make_survey(rows)
    s.missing.loc[s.responses["country"] == "EGY", "Q182"] = -4  # not asked in Egypt
    assert usable_profiles(s, IW, "skip_respondent").to_dict() == {"E0": True, "E1": True, "E2": True,
                                                                   "S1": False, "S2": True}
    plan = build_personas(s, ["EGY"], 10, 0, ["value"], ["Q1"], missing="skip_respondent")
    assert plan.personas["multiplicity"].sum() == 10


# --- the bundled SYNTHETIC sample ------------------------------------------------------------------

def test_personas_from_the_bundled_synthetic_sample():
    from vpersona.data.wvs import load_bundled_sample
    countries = ["DEU", "NGA", "JPN"]
    sample = load_bundled_sample(countries=countries)
    assert sample.synthetic
    targets = CATALOG.codes("target")
    plan = build_personas(sample, countries, 50, 2026, KINDS, targets)
    assert (plan.pairs.groupby(["country", "kind", "item"])["multiplicity"].sum() == 50).all()
    value = plan.personas[(plan.personas["kind"] == "value") & (plan.personas["excluded"] == "")]
    assert len(value) > 3 * 25  # sampled value profiles vary
    assert value["text"].str[len(PREAMBLE):].str.count(r"\.").min() >= 5  # at least half the value items
    asked_q6 = plan.pairs[plan.pairs["item"] == "Q6"].merge(
        plan.personas.drop(columns="multiplicity").drop_duplicates(["persona_id", "country", "kind"]),
        on=["persona_id", "country", "kind"])
    assert len(asked_q6) and not asked_q6["text"].map(lambda t: any(s in t for s in GOD)).any()
    assert set(plan.draws["respondent"]) <= set(sample.responses.index)


def test_bundled_sample_country_where_a_value_item_was_not_asked():
    from vpersona.data.wvs import load_bundled_sample
    with pytest.warns(UserWarning, match="EGY/Q182"):
        egypt = load_bundled_sample(countries=["EGY"])
    plan = build_personas(egypt, ["EGY"], 30, 0, ["value"], ["Q1"], missing="skip_respondent")
    assert not plan.personas["text"].str.contains("homosexuality").any()
    assert plan.personas["multiplicity"].sum() == 30
