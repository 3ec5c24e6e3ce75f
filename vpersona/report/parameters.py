"""What the notebooks accept as parameters, checked before any notebook starts.

A mistake in a config or a ``-p`` override must not surface in notebook 03 after notebook 02
has paid for its answers, so ``vpersona run`` checks every parameter first: its name (one the
notebooks declare, with a "did you mean" suggestion), its type and allowed values (the rules
below mirror the comments of the notebooks' ``parameters`` cells; a test keeps them in step),
that no credential is passed as a parameter (they belong in the environment), and it resolves
relative paths against the directory the command was typed in (the notebooks run with the run
folder as their working directory).
"""
from __future__ import annotations

import difflib
import re
from numbers import Real
from pathlib import Path
from urllib.parse import urlsplit

KINDS = ("none", "country", "demographic", "value", "value+country", "value+demographic")
SECRET_HINTS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
# parameters naming a file; the value in the first set stands for "not a path"
PATHS = {"DATA": {"bundled"}, "PRICE_TABLE": set(), "CACHE_PATH": {"auto"}, "MODEL": set()}
MUST_EXIST = ("DATA", "PRICE_TABLE")
_API_KEY = re.compile(r"\b(sk|sk-proj|hf|gsk|xai)[-_][A-Za-z0-9_-]{16,}")


class ConfigError(ValueError):
    """A config or parameter mistake found before the run starts (one line, no traceback)."""


# --------------------------------------------------------------------------- value rules
# each rule returns None when the value is fine, else what was expected (for the message)

def _choice(*allowed):
    def rule(v):
        return None if v in allowed else " | ".join(map(repr, allowed))
    rule.allowed = allowed  # checked against the notebooks' comments by the tests
    return rule


def _int(lo, none_ok=False):
    def rule(v):
        if none_ok and v is None:
            return None
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo
        return None if ok else f"an integer >= {lo}" + (" or null" if none_ok else "")
    return rule


def _positive_or_none(v):
    ok = v is None or (isinstance(v, Real) and not isinstance(v, bool) and v > 0)
    return None if ok else "a number > 0 or null"


def _bool(v):
    return None if isinstance(v, bool) else "true | false"


def _text(none_ok=False):
    return lambda v: None if isinstance(v, str) and v or (none_ok and v is None) else \
        "a non-empty string" + (" or null" if none_ok else "")


def _codes(all_word=None, choices=None, pattern=None, empty_ok=False):
    """A list of codes (from ``choices`` or matching ``pattern``), or the word ``all_word``."""
    what = f"{all_word!r} or " if all_word else ""
    what += f"a list of {', '.join(choices)}" if choices else f"a list of codes like {pattern}"

    def rule(v):
        if all_word is not None and v == all_word:
            return None
        if not isinstance(v, list) or (not v and not empty_ok):
            return what
        for x in v:
            if not isinstance(x, str) or (choices and x not in choices) or \
                    (pattern and not re.fullmatch(pattern, x, flags=re.I)):
                return f"{what} ({x!r} is not one)"
        return None
    return rule


def _mapping(v):
    return None if isinstance(v, dict) and all(isinstance(k, str) for k in v) else "a mapping of knob: value"


def _number(lo, hi):
    def rule(v):
        ok = isinstance(v, Real) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"a number in [{lo}, {hi}]"
    return rule


def _int_list(v):
    ok = isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v)
    return None if ok else "a list of integers >= 1"


RULES = {
    "DATA": _text(), "COUNTRIES": _codes("all", pattern=r"[A-Z]{3}"),
    "TARGET_ITEMS": _codes("all", pattern=r"[A-Z]\d+[A-Z]?"),
    "HUMAN_TARGETS": _choice("auto", "marginals", "respondents"),
    "N_PERSONAS": _int(1), "PERSONA_KINDS": _codes(choices=KINDS),
    "VALUE_ITEMS": _codes("iw", pattern=r"[A-Z]\d+[A-Z]?"), "LEAKAGE": _choice("drop", "refuse"),
    "MISSING_VALUES": _choice("drop_sentence", "skip_respondent"), "DESCRIBE_DIMENSIONS": _bool,
    "BACKEND": _choice("embedded", "openai", "simulated"),
    "SIMULATED": _mapping, "CONTEXTUAL": _bool, "MIN_MASS": _number(0, 1), "LOW_MASS": _choice("weight", "drop"), "MODEL": _text(none_ok=True), "BASE_URL": _text(none_ok=True),
    "ESTIMATOR": _choice("logprobs", "sample", "verbalized", "auto"), "ORDER": _choice("fixed", "reversed", "pair", "cyclic", "random"),
    "REPLICATES": _int(1), "CONCURRENCY": _int(1), "REQUESTS_PER_MINUTE": _positive_or_none,
    "PRICE_TABLE": _text(none_ok=True), "CONFIRM_COST": _bool, "CACHE_PATH": _text(), "SEED": _int(0),
    "CALIBRATE": _codes("all", choices=KINDS, empty_ok=True),
    "SPLIT": _choice("items", "countries", "both"), "K_FOLDS": _int(2),
    "OBJECTIVE": _choice("jsd", "diversity"), "TAU_BY": _choice("global", "scale_length"),
    "MIXING_KINDS": _codes(choices=KINDS, empty_ok=True),
    "HUMAN_N": _int_list, "N_DRAWS": _int(1), "REGRESSION": _bool,
    "REGRESSION_FOLDS": _choice("zone", "country"), "REGRESSION_MAX_TRAIN": _int(1, none_ok=True),
    "GROUP_RULE": _choice("zones", "iw_distance"), "METRIC": _choice("jsd", "w1", "mean_error"),
    "HEADLINE_METHOD": _text(), "N_BOOT": _int(1), "UNIT": _choice("items", "countries", "both"),
    "GAP_UNIT": _choice("countries", "items", "both"),
    "POWER_SIZES": _int_list, "POWER_N_SIM": _int(1), "POWER_COMPARE": _codes(choices=KINDS),
    "POWER_NULL": _bool, "POWER_MODEL": _text(),
}
SET_BY_RUN = ("RUN_DIR",)


def check_names(params: dict, declared: dict[str, set]) -> None:
    """Refuse a parameter no notebook declares, suggesting the closest declared name."""
    known = sorted(set().union(*declared.values()) - set(SET_BY_RUN)) if declared else []
    for key in params:
        if key in SET_BY_RUN:
            raise ConfigError(f"parameter {key} is set by `vpersona run` itself: choose the run folder "
                              "with --run-id and --output-dir")
        if key not in known:
            close = difflib.get_close_matches(key.upper(), known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"unknown parameter {key}: {hint}(notebook parameters: {', '.join(known)})")


def check_values(params: dict) -> None:
    """Refuse values the notebooks would reject later; every problem in one line."""
    problems = []
    for key, value in params.items():
        expected = RULES[key](value) if key in RULES else None
        if expected:
            problems.append(f"{key} = {value!r}: expected {expected}")
    if problems:
        raise ConfigError("bad parameter value" + ("s" if len(problems) > 1 else "") + ": " + "; ".join(problems))


def check_prices(params: dict) -> None:
    """With a ``PRICE_TABLE``, the models priced by the notebooks must be in it (else notebook 02
    or 05 fails after the paid part). ``params``: the parameters with the notebooks' defaults."""
    if not isinstance(params.get("PRICE_TABLE"), str):
        return
    from vpersona.llm.cost import load_prices
    try:
        prices = load_prices(params["PRICE_TABLE"])
    except (OSError, ValueError) as err:
        raise ConfigError(f"PRICE_TABLE: {err}") from None
    priced = [k for k in ("MODEL", "POWER_MODEL") if isinstance(params.get(k), str)
              and (k != "MODEL" or params.get("BACKEND") == "openai")]
    missing = [f"{k} {params[k]!r}" for k in priced if prices.lookup(params[k]) is None]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not in the price table {params['PRICE_TABLE']} "
                          f"(it has {', '.join(sorted(prices.prices))}): add the model there or pass "
                          f"-p {missing[0].split()[0]} with a priced one")


def refuse_credentials(params: dict) -> None:
    """Credentials never travel as parameters (they would be written into the executed notebooks).
    The message names the parameter, never its value."""
    for key, value in params.items():
        if any(h in key.upper() for h in SECRET_HINTS):
            raise ConfigError(f"parameter {key} looks like a secret: credentials belong in the environment "
                              "(OPENAI_API_KEY, OPENAI_BASE_URL), never in configs or notebook parameters")
        for text in (value if isinstance(value, list) else [value]):
            if not isinstance(text, str):
                continue
            parts = urlsplit(text) if "://" in text else None
            if parts is not None and "@" in parts.netloc:
                raise ConfigError(f"parameter {key} holds a URL with credentials (user:password@host): "
                                  "credentials belong in the environment (OPENAI_API_KEY, OPENAI_BASE_URL "
                                  "without them), never in configs or notebook parameters")
            if _API_KEY.search(text):
                raise ConfigError(f"parameter {key} holds what looks like an API key: credentials belong in "
                                  "the environment (OPENAI_API_KEY), never in configs or notebook parameters")


def resolve_paths(params: dict, cwd: Path) -> dict:
    """Absolute paths for the path-like parameters, relative to ``cwd`` (where the user typed them).
    ``MODEL`` counts as a path only when it names a ``.gguf`` file."""
    out = dict(params)
    for key, words in PATHS.items():
        value = out.get(key)
        if not isinstance(value, str) or value in words or "://" in value:
            continue
        if key == "MODEL" and not value.lower().endswith(".gguf"):
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else (cwd / path)
        out[key] = str(path.resolve())
        if key in MUST_EXIST and Path(out[key]).is_dir():
            raise ConfigError(f"parameter {key} = {value!r}: {out[key]} is a directory; expected a file")
        if key in MUST_EXIST and not Path(out[key]).is_file():
            raise ConfigError(f"parameter {key} = {value!r}: no such file {out[key]} "
                              f"(relative paths are read from {cwd})")
    return out
