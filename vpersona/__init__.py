"""vpersona: simulate survey populations with LLMs from calibrated value personas.

Companion of "Improving Cross-Cultural Survey Simulation with Calibrated Value Personas" (2026).
"""
__version__ = "0.1.0"

from .catalog import Catalog, Item, load_catalog  # noqa: F401
