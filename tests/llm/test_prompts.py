"""Prompt rendering: labels are single tokens for the embedded model, options map back to the catalog."""
import pytest

from vpersona import load_catalog
from vpersona.llm.prompts import TEMPLATE_HASH, load_templates, option_order, render

llama_cpp = pytest.importorskip("llama_cpp")
from vpersona.llm.backends.embedded import default_model_path  # noqa: E402

CATALOG = load_catalog()
ASKABLE = [i for i in CATALOG if i.n_options >= 2]
PERSONA = "You live in Nigeria. God is very important in your life. You are very happy."


@pytest.fixture(scope="module")
def vocab():
    """The embedded model's tokenizer and chat template (vocab only: no weights loaded)."""
    return llama_cpp.Llama(str(default_model_path()), vocab_only=True, verbose=False)


def _tokens(vocab, text, special=False):
    return vocab.tokenize(text.encode("utf-8"), add_bos=False, special=special)


def _chat_prompt(vocab, messages):
    from llama_cpp import llama_chat_format
    fmt = llama_chat_format.Jinja2ChatFormatter(template=vocab.metadata["tokenizer.chat_template"],
                                                eos_token=vocab._model.token_get_text(vocab.token_eos()),
                                                bos_token=vocab._model.token_get_text(vocab.token_bos()))
    return fmt(messages=messages).prompt


def test_every_label_and_variant_is_one_token(vocab):
    labels = load_templates().labels
    assert len(labels) == 10  # enough for the longest WVS scale (1-10)
    for label in labels:
        for variant in (label, " " + label, label.lower(), " " + label.lower()):
            toks = _tokens(vocab, variant)
            assert len(toks) == 1, f"label variant {variant!r} is {len(toks)} tokens: {toks}"
        assert len({_tokens(vocab, v)[0] for v in (label, " " + label, label.lower(), " " + label.lower())}) == 4


def test_digit_labels_would_be_ambiguous(vocab):
    # Why letters: "10" is two tokens whose first is the token of "1", so a first-token
    # probability for "1" would mix answers 1 and 10.
    ten, one = _tokens(vocab, "10"), _tokens(vocab, "1")
    assert len(one) == 1 and len(ten) == 2 and ten[0] == one[0]


@pytest.mark.parametrize("code", ["Q164", "Q46", "Q57", "Q171"])
def test_assistant_first_token_can_be_each_label(vocab, code):
    prompt = render(PERSONA, CATALOG[code])
    text = _chat_prompt(vocab, list(prompt.messages))
    assert text.endswith("<|im_start|>assistant\n")
    base = _tokens(vocab, text, special=True)
    for label in prompt.labels:
        with_label = _tokens(vocab, text + label, special=True)
        assert with_label[:len(base)] == base and len(with_label) == len(base) + 1, label
        assert with_label[-1] == _tokens(vocab, label)[0]


def test_render_messages_and_labels():
    item = CATALOG["Q46"]
    p = render(PERSONA, item)
    assert [m["role"] for m in p.messages] == ["system", "user"]
    assert p.messages[0]["content"] == PERSONA
    user = p.messages[1]["content"]
    assert item.text in user and "A. Very happy" in user and "D. Not at all happy" in user
    assert "Answer with the label only (A, B, C, D)." in user
    assert p.labels == ("A", "B", "C", "D") and p.option_index == (0, 1, 2, 3)
    assert p.template_hash == TEMPLATE_HASH and len(p.rendered_hash) == 64


def test_empty_persona_sends_no_system_message():
    for persona in ("", "   ", None):
        p = render(persona, CATALOG["Q57"])
        assert [m["role"] for m in p.messages] == ["user"]


def test_numeric_scale_shows_codes_and_labelled_end_points():
    user = render("", CATALOG["Q164"]).messages[0]["content"]
    assert "A. 1 (Not at all important)" in user and "B. 2\n" in user and "K. 10 (Very important)" in user
    assert "I. " not in user  # "I" is skipped: it opens most refusals


def test_option_orders_map_back_to_catalog():
    item = CATALOG["Q46"]
    rev = render(PERSONA, item, order="reversed")
    assert rev.option_index == (3, 2, 1, 0)
    assert "A. Not at all happy" in rev.messages[1]["content"]
    assert rev.catalog_index("A") == 3
    r1 = render(PERSONA, item, order="random", order_seed=11)
    assert r1.option_index == render(PERSONA, item, order="random", order_seed=11).option_index
    assert sorted(r1.option_index) == [0, 1, 2, 3]
    perms = {option_order(10, "random", s) for s in range(20)}
    assert len(perms) > 15  # seeds give different permutations
    for s in range(5):  # the presented text at each label is the catalog option it maps to
        p = render(PERSONA, item, order="random", order_seed=s)
        for label, idx in zip(p.labels, p.option_index):
            assert f"{label}. {item.options[idx][1]}" in p.messages[1]["content"]


def test_rendered_hash_tracks_the_messages():
    a, b = render(PERSONA, CATALOG["Q46"]), render(PERSONA + " Extra.", CATALOG["Q46"])
    assert a.rendered_hash != b.rendered_hash and a.template_hash == b.template_hash
    assert a.rendered_hash == render(PERSONA, CATALOG["Q46"]).rendered_hash


def test_all_askable_items_render_for_all_estimators():
    for item in ASKABLE:
        for est in ("logprobs", "sample", "verbalized"):
            p = render(PERSONA, item, estimator=est)
            assert p.K == item.n_options
    verbal = render(PERSONA, CATALOG["Q57"], estimator="verbalized").messages[1]["content"]
    assert "JSON" in verbal and '{"A": 0.5, "B": 0.5}' in verbal


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="unknown estimator"):
        render(PERSONA, CATALOG["Q46"], estimator="vibes")
    with pytest.raises(ValueError, match="unknown option order"):
        render(PERSONA, CATALOG["Q46"], order="sideways")
    with pytest.raises(ValueError, match="order_seed"):
        render(PERSONA, CATALOG["Q46"], order="random")
    with pytest.raises(ValueError, match="no answer options"):
        render(PERSONA, CATALOG["Q262"])
