"""Stage 2, personas: respondents become texts. Value descriptors (one sentence per answer),
persona texts of each kind (none, country, demographic, value and combinations), weighted seeded
sampling per country, and leakage control (a target never sees its own item or proxies).

May import: ``vpersona.core``, ``vpersona.data``.
"""
