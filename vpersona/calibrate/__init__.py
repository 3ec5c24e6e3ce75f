"""Stage 4, calibrate: from answers to a calibrated country distribution. Aggregation of persona
answers into distributions, the calibrators (mean-preserving temperature, persona mixing) in the
scikit-learn style, and the held-out splits with the cross-fitting helper that applies any of them.

May import: ``vpersona.core``, ``vpersona.data``, ``vpersona.personas``, ``vpersona.llm``.
"""
