"""Which option orders a question is shown in (order debiasing).

Small models prefer some answer positions whatever the options say (position bias). Showing
the same question in several orders and averaging the answers, each mapped back to catalog
order, cancels that preference to the extent the orders balance positions:

- ``fixed``: catalog order (one prompt).
- ``reversed``: catalog order reversed (one prompt).
- ``pair``: fixed + reversed (two prompts). Option i sits at positions i and K-1-i, so a bias
  that is linear in the position cancels exactly; a symmetric (e.g. U-shaped) bias remains.
- ``cyclic``: the K cyclic shifts (K prompts). Every option is shown at every position exactly
  once, so any position bias that adds to the answer probabilities cancels exactly.
- ``random``: one seeded random permutation per replicate (``REPLICATES`` prompts in all); the
  seed comes from the run seed, country, persona, item and replicate, so replicates, countries
  and personas get different permutations (they balance positions only on average).

:func:`orderings` returns the permutations for one (persona, country, item, replicate); each
permutation lists, per presented position, the catalog option index shown there.
"""
from __future__ import annotations

import numpy as np

from vpersona.core.seeds import derive_seed

ORDERS = ("fixed", "reversed", "pair", "cyclic", "random")


def orderings(K: int, order: str = "fixed", *, seed: int = 0, country=None, persona=None, item=None,
              replicate: int = 0) -> tuple[tuple[int, ...], ...]:
    """The option permutations to ask (presented position -> catalog index), in a fixed order."""
    K = int(K)
    fixed = tuple(range(K))
    if order == "fixed":
        return (fixed,)
    if order == "reversed":
        return (fixed[::-1],)
    if order == "pair":
        return (fixed, fixed[::-1])
    if order == "cyclic":
        return tuple(tuple((j + s) % K for j in range(K)) for s in range(K))
    if order == "random":
        rng = np.random.default_rng(derive_seed(seed, "order", country, persona, item, replicate))
        return (tuple(int(i) for i in rng.permutation(K)),)
    raise ValueError(f"unknown ORDER {order!r}; expected one of {', '.join(ORDERS)}")


def prompts_per_question(K: int, order: str, replicates: int = 1) -> int:
    """How many prompts one (persona, item) costs under ``order`` with ``replicates`` replicates."""
    return len(orderings(K, order)) * int(replicates)
