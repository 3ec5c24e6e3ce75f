"""The small core every stage shares: the distribution table (``p1..pKMAX`` per cell) with the
distances and moments defined on it, reading package resources, seeds and file hashes.

May import: nothing else of vpersona.
"""
