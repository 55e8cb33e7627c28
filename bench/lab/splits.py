"""Lab splits. ``test``: a fixed list of subjects at full length (checked in as data_manifests/lab_test.jsonl
with the expected pixel hash of each lab-64 render). ``train``: many short clips from disjoint seeds."""
from __future__ import annotations

from bench.lab.spec import LAB_VERSION, LabSpec

TEST_SEEDS = (1001, 1002, 1003, 1004)
TEST_FRAMES = 2250  # 90 s at 25 fps
TRAIN_SEED_BASE = 100_000
TRAIN_FRAMES = 250  # >= 162 frames: two 81-frame segments with room to sample offsets
TRAIN_CLIPS = 256


def test_id(index: int) -> str:
    return f"lab-test-{index:02d}"


def test_specs(size: str = "lab-64", n_frames: int = TEST_FRAMES) -> list[tuple[str, LabSpec]]:
    return [(test_id(i), LabSpec(seed=s, size=size, n_frames=n_frames)) for i, s in enumerate(TEST_SEEDS)]


def train_specs(n_clips: int = TRAIN_CLIPS, size: str = "lab-64", n_frames: int = TRAIN_FRAMES,
                first: int = 0, version: str = LAB_VERSION) -> list[tuple[str, LabSpec]]:
    """Clips ``first .. first + n_clips - 1`` of the (unbounded) train split; seeds never overlap the test seeds."""
    if n_frames < 162:
        from bench.errors import ConfigError

        raise ConfigError(f"train clips need >= 162 frames, got {n_frames}", fix="use --frames 162 or more")
    return [(f"lab-train-{i:05d}", LabSpec(seed=TRAIN_SEED_BASE + i, size=size, n_frames=n_frames,
                                                             version=version))
            for i in range(first, first + n_clips)]


assert not set(TEST_SEEDS) & set(range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + 10**6))
