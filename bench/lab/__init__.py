"""The lab: a procedural minute-scale animation benchmark with exact ground truth (see docs/lab.md).

``LabSpec`` (seed, size, frames) -> ``render_sample`` -> a sample folder in the ``bench.sample/1`` layout that
loads through ``bench.sample.FileSample`` exactly like real data."""
from bench.lab.spec import LAB_VERSION, SIZES, LabSpec

__all__ = ["LAB_VERSION", "SIZES", "LabSpec"]
