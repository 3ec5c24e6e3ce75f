"""vpersona: simulate survey populations with LLMs from calibrated value personas.

Companion of "Improving Cross-Cultural Survey Simulation with Calibrated Value Personas" (2026).
The subpackages are the pipeline's stages, in order: ``core`` (shared distribution table),
``data``, ``personas``, ``llm``, ``calibrate``, ``evaluate``, ``report``. The entry point of each
stage is re-exported here, so a notebook imports from one place::

    import vpersona as vp
    run = vp.setup(RUN_DIR)
    survey = vp.load_wvs(path, ["DEU", "NGA"])

Names are resolved on first use, so ``import vpersona`` stays cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.2.0"

_EXPORTS = {
    # data
    "load_catalog": "vpersona.data.catalog", "load_wvs": "vpersona.data.wvs",
    "load_bundled_sample": "vpersona.data.wvs", "load_respondents": "vpersona.data.wvs",
    "human_targets": "vpersona.data.targets", "fit_iw_dimensions": "vpersona.data.dimensions",
    # personas
    "build_personas": "vpersona.personas.build",
    # llm
    "make_backend": "vpersona.llm.backends", "run_grid": "vpersona.llm.grid", "AnswerCache": "vpersona.llm.cache",
    # calibrate
    "aggregate": "vpersona.calibrate.aggregate", "MeanPreservingTemperature": "vpersona.calibrate.temperature",
    "PersonaMixing": "vpersona.calibrate.mixing", "make_split": "vpersona.calibrate.splits",
    "cross_fit": "vpersona.calibrate.splits",
    # evaluate
    "score": "vpersona.evaluate.metrics", "summarise": "vpersona.evaluate.metrics",
    "reference_distributions": "vpersona.evaluate.references",
    # report
    "setup": "vpersona.report.notebook", "RunFolder": "vpersona.report.notebook",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vpersona' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
