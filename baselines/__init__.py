"""Baselines: one self-contained module per method, each depending only on the ``bench`` contract."""
