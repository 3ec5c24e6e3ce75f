"""SIMULATED respondent backend: a stand-in "LLM" whose fidelity is known, for recovery and power.

Its answers are NOT LLM results. It reads each prompt like a model would (question, labelled
options, persona sentences: :mod:`vpersona.llm.backends.reading`) and answers from a documented
model of what goes right and wrong with real LLMs, set by knobs (``SIMULATED`` parameter dict):

``fidelity`` f (0..1)
    how much of the persona's own respondent the answer reflects. The respondent's "true answer"
    is the answer distribution implied by the value sentences the persona states: a multinomial
    logistic regression of the target on the value items (each coded by the mean code of the band
    its sentence describes, an unstated item imputed at its mean), fitted once per target on the
    bundled SYNTHETIC sample (400 respondents per country, pooled, weighted, no country feature).
    Soft by construction: f = 1 gives that conditional distribution, not a single answer. Chosen over
    identifying the respondent from the text because many respondents share a text, and because
    it degrades gracefully when leakage control removes a sentence (that item then carries
    nothing). Only personas with value sentences have a true answer.
``country`` k (0..1)
    for personas naming a country ("You live in ..."), how much of that country's real WVS-7
    marginal (``vpersona/resources/wvs7_marginals.csv.gz``) the answer reflects.
``western_pull`` w (0..1)
    pull of the model's default answer (what it says when the persona tells it nothing) toward
    one Western-like prior W: the mean marginal of the English-speaking and Protestant Europe
    countries (the default "aligned" zones). The pull sits in the fallback prior, so what a
    persona states (its country, its values) can correct it -- the mechanism the paper claims.
``compression`` c (0..<1)
    variance compression: the distribution is raised to the power 1/(1-c) (a temperature 1-c < 1).
``position_bias`` b
    added to the logit of the option at presented position j: b * (1 - 2j/(K-1)) (the first
    label +b, the last -b), whatever option is shown there.
``noise`` s
    idiosyncrasy: Gaussian logit noise of s.d. s, fixed per (persona text, question, seed), so the
    same prompt always gets the same answer and distinct personas differ.

Per prompt, in catalog order: prior p = (1-w) g + w W, g the mean marginal over all countries;
with a country named, p = (1-k) p + k c; with value sentences, p = (1-f) p + f r; then
compression; then logits log p + noise (catalog order) + position bias (presented order) -> q.
A content-free prompt (contextual calibration's ``N/A`` question) gets uniform logits + position
bias, so the label prior it measures is exactly the planted bias.
The reply has the shape of a real one: ``top_logprobs`` over the labels (logprobs estimator), ``n``
labels sampled from q at the query's temperature with the query's seed (sample), or a JSON
object of q (verbalized). Token usage is estimated from characters like the cost planner does.

Known confound it exposes (``noise`` > 0): N distinct value texts average their idiosyncrasies
away, while the one country text of a country keeps its own, so value personas beat country
personas even at fidelity 0. Compare kinds with equally many distinct texts (e.g. value+country
vs demographic) to test what the values themselves add.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np

from vpersona.core.package_data import package_table
from vpersona.data.catalog import load_catalog
from vpersona.llm.backends.base import BackendError, Query, Reply
from vpersona.llm.backends.reading import Reader

VERSION = 1
KNOBS = {"fidelity": 0.8, "country": 0.3, "western_pull": 0.0, "compression": 0.0, "position_bias": 0.0,
         "noise": 0.0}
UNIT_KNOBS = ("fidelity", "country", "western_pull")
WESTERN_ZONES = ("English-speaking", "Protestant Europe")  # = vpersona.evaluate.crosscultural.ALIGNED_ZONES
SIMULATED_LABEL = "SIMULATED answers (vpersona's simulated backend, not an LLM)"
FLOOR = 1e-9
TRAIN_PER_COUNTRY = 400


def check_knobs(knobs: dict | None) -> dict:
    """Defaults + ``knobs``; one-line errors for unknown names or values out of range."""
    knobs = dict(knobs or {})
    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise ValueError(f"SIMULATED knobs {unknown} unknown; expected some of {sorted(KNOBS)}")
    out = {k: float(knobs.get(k, v)) for k, v in KNOBS.items()}
    for k in UNIT_KNOBS:
        if not 0 <= out[k] <= 1:
            raise ValueError(f"SIMULATED {k}={out[k]}: expected a number in [0, 1]")
    if not 0 <= out["compression"] < 1:
        raise ValueError(f"SIMULATED compression={out['compression']}: expected a number in [0, 1)")
    if out["noise"] < 0:
        raise ValueError(f"SIMULATED noise={out['noise']}: expected a number >= 0")
    return out


class World:
    """What the simulated model "knows": real marginals per country and the value -> answer regression."""

    def __init__(self):
        from vpersona.data.targets import marginal_distributions
        self.catalog = load_catalog()
        self.reader = Reader(self.catalog)
        countries = package_table("countries.csv")
        self.western = set(countries.loc[countries["zone"].isin(WESTERN_ZONES), "iso3"])
        self.marginals = marginal_distributions()
        self._priors, self._models, self._sample = {}, {}, None

    def priors(self, item: str) -> tuple[np.ndarray, np.ndarray, dict]:
        """(global prior, Western prior, country -> marginal) of ``item``, catalog order."""
        if item not in self._priors:
            sub = self.marginals[self.marginals["item"] == item]
            if sub.empty:
                raise BackendError(f"the simulated backend has no WVS-7 marginals for {item}")
            K = int(sub["K"].iloc[0])
            P = sub[[f"p{k}" for k in range(1, K + 1)]].to_numpy(dtype=float)
            west = sub["country"].isin(self.western).to_numpy()
            self._priors[item] = (P.mean(axis=0), P[west].mean(axis=0) if west.any() else P.mean(axis=0),
                                  dict(zip(sub["country"], P)))
        return self._priors[item]

    def model(self, item: str):
        """(value items, fitted pipeline, classes) predicting ``item``'s options from the value bands."""
        if item not in self._models:
            if self._sample is None:
                import warnings

                from vpersona.data.wvs import load_bundled_sample
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # not-asked items are reported by the data notebook
                    r = load_bundled_sample().responses
                # at most TRAIN_PER_COUNTRY respondents per country (seeded): fast fits, same model every run
                self._sample = r.groupby("country", group_keys=False).apply(
                    lambda d: d.sample(min(len(d), TRAIN_PER_COUNTRY), random_state=0))
            self._models[item] = _fit_regression(item, self._sample, self.catalog, self.reader)
        return self._models[item]

    def true_answer(self, item: str, values: dict) -> np.ndarray:
        """P(option | stated value bands): the fitted regression, evaluated by hand (numpy) because
        the scikit-learn pipeline costs milliseconds per single-row call."""
        features, means, scale, coef, intercept, classes = self.model(item)
        x = np.array([values.get(v, np.nan) for v in features])
        z = (np.where(np.isnan(x), means, x) - means) / scale
        logits = coef @ z + intercept
        e = np.exp(logits - logits.max())
        out = np.zeros(self.catalog[item].n_options)
        out[classes] = e / e.sum()
        return out


def _band_coded(r, features, reader) -> np.ndarray:
    """Respondents x value items, each answer replaced by its band's mean code (NaN if missing)."""
    cols = []
    for v in features:
        mapping = {c: reader.band_value(v, c) for c in reader.catalog[v].codes}
        cols.append(r[v].map(mapping).to_numpy(dtype=float))
    return np.column_stack(cols)


def _fit_regression(item, r, catalog, reader):
    """Multinomial logistic regression (scikit-learn, L2, C=1) of ``item`` on the band-coded value
    items of the respondents ``r`` (weighted); a missing value answer is imputed at the item's
    mean, respondents without an answer to ``item`` are left out. Returns the fitted numbers."""
    from sklearn.linear_model import LogisticRegression

    features = [v for v in catalog.codes("value") if v in r.columns and v in reader.descriptors.items]
    codes = {c: i for i, c in enumerate(catalog[item].codes)}
    y = r[item].map(codes).to_numpy(dtype=float) if item in r.columns else np.array([])
    keep = ~np.isnan(y)
    if keep.sum() < 50:
        raise BackendError(f"the simulated backend cannot learn {item}: the bundled sample lacks its answers")
    X = _band_coded(r, features, reader)
    means = np.nanmean(X, axis=0)
    X = np.where(np.isnan(X), means, X)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    fitted = LogisticRegression(max_iter=500).fit((X[keep] - means) / scale, y[keep].astype(int),
                                                  sample_weight=r["weight"].to_numpy()[keep])
    coef, intercept = fitted.coef_, fitted.intercept_
    if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row; softmax needs both
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return features, means, scale, coef, intercept, fitted.classes_.astype(int)


@lru_cache(maxsize=1)
def world() -> World:
    return World()


def _rng(*parts) -> np.random.Generator:
    blob = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return np.random.default_rng(int.from_bytes(hashlib.sha256(blob).digest()[:8], "big"))


class SimulatedBackend:
    """The SIMULATED backend (``BACKEND: simulated``); see the module docstring for the answer model."""

    kind = "simulated"
    simulated = True

    def __init__(self, knobs: dict | None = None, seed: int = 0):
        self.knobs, self.seed = check_knobs(knobs), int(seed)
        self.world = world()

    def identity(self) -> dict:
        return {"kind": self.kind, "simulated": True, "version": VERSION, "seed": self.seed, "knobs": self.knobs}

    def distribution(self, persona: str, item: str) -> np.ndarray:
        """The answer distribution before position bias and noise, catalog order."""
        kn, w = self.knobs, self.world
        g, west, by_country = w.priors(item)
        read = w.reader.persona(persona)
        p = (1 - kn["western_pull"]) * g + kn["western_pull"] * west
        if read.country is not None and read.country in by_country:
            p = (1 - kn["country"]) * p + kn["country"] * by_country[read.country]
        if read.values:
            p = (1 - kn["fidelity"]) * p + kn["fidelity"] * w.true_answer(item, read.value_dict)
        p = np.maximum(p, FLOOR) ** (1.0 / (1.0 - kn["compression"]))
        return p / p.sum()

    def presented(self, persona: str, user: str):
        """(labels, probabilities, the read question) in presented order for one prompt."""
        q = self.world.reader.question(user)
        if q.item is None:  # content-free prompt: no preference but the label positions'
            logits = np.zeros(len(q.labels))
        else:
            logits = np.log(self.distribution(persona, q.item))
        if self.knobs["noise"] and q.item is not None:
            logits = logits + self.knobs["noise"] * _rng("noise", self.seed, persona, q.item).standard_normal(len(logits))
        K = len(q.labels)
        logits = logits[list(q.option_index)] + self.knobs["position_bias"] * (1 - 2 * np.arange(K) / max(K - 1, 1))
        e = np.exp(logits - logits.max())
        return list(q.labels), e / e.sum(), q

    def complete(self, query: Query) -> Reply:
        messages = query.message_dicts
        persona = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = next(m["content"] for m in messages if m["role"] == "user")
        try:
            labels, q, question = self.presented(persona, user)
        except ValueError as e:
            raise BackendError(str(e)) from None
        params = query.param_dict
        prompt_tokens = int(sum(len(m["content"]) for m in messages) / 4.0) + 10
        if params.get("logprobs"):
            top = int(params.get("top_logprobs") or len(labels))
            ranked = sorted(zip(labels, np.log(q)), key=lambda t: (-t[1], t[0]))[:top]
            texts, top_logprobs, completion = [ranked[0][0]], {lab: float(lp) for lab, lp in ranked}, 1
        elif question.verbalized:
            texts = [json.dumps({lab: round(float(p), 4) for lab, p in zip(labels, q)})]
            top_logprobs, completion = None, len(texts[0]) // 4
        else:
            n, temp = int(params.get("n", 1)), float(params.get("temperature", 1.0))
            if temp <= 0:
                texts = [labels[int(np.argmax(q))]] * n
            else:
                p = q ** (1.0 / temp)
                rng = _rng("sample", self.seed, params.get("seed"), messages)
                texts = [labels[i] for i in rng.choice(len(labels), size=n, p=p / p.sum())]
            top_logprobs, completion = None, n
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                 "total_tokens": prompt_tokens + completion}
        return Reply(texts=texts, top_logprobs=top_logprobs, usage=usage,
                     raw={"simulated": True, "texts": texts, "top_logprobs": top_logprobs, "usage": usage})

    async def acomplete(self, query: Query) -> Reply:
        return self.complete(query)
