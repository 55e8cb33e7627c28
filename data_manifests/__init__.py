"""Checked-in, versioned sample lists (JSONL manifests). ``MANIFEST_DIR / "lab_test.jsonl"`` is the lab test split."""
from pathlib import Path

MANIFEST_DIR = Path(__file__).resolve().parent
LAB_TEST = MANIFEST_DIR / "lab_test.jsonl"
