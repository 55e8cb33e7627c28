"""wan_animate: our streamed, resumable segment loop reproduces diffusers.WanAnimatePipeline frame for frame."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.wan_animate import WanAnimate
from bench.animator import AnimationRequest, ChunkInput, ChunkSpec, plan_chunks
from bench.errors import ConfigError, MethodError, WeightsError
from bench.models.wan import make_scheduler
from tests.wan_helpers import ArraySample, collect, pipeline_frames, single_thread

SIZE, SEGMENT, STEPS, SEED = 32, 13, 3, 7


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


def make(refert_num=1, **kw):
    animator = WanAnimate(components="tiny-random", chunk_frames=SEGMENT, steps=STEPS, refert_num=refert_num, **kw)
    animator.load("cpu")
    return animator


def request(sample, seed=SEED, n=None, size=SIZE):
    return AnimationRequest(sample=sample, n_frames=n or sample.n_frames, fps=25, height=size, width=size, seed=seed,
                            pose_padding="reflect")


@pytest.fixture(scope="module")
def run_r1():
    sample = ArraySample(n_frames=30)
    animator = make(1)
    frames, blobs = collect(animator, request(sample))
    return sample, animator, frames, blobs


@pytest.mark.parametrize("refert_num,n_frames", [(1, 30), (5, 20)])
def test_frames_equal_the_diffusers_pipeline(run_r1, refert_num, n_frames):
    if refert_num == 1:
        sample, animator, frames, blobs = run_r1
    else:
        sample = ArraySample(n_frames=n_frames, seed=3)
        animator = make(refert_num)
        frames, blobs = collect(animator, request(sample))
    specs = plan_chunks(n_frames, SEGMENT, refert_num)
    assert len(blobs) == len(specs) >= 2  # carry-over exercised
    assert [s.n_new for s, _ in blobs] == [s.n_new for s in specs]
    expected = pipeline_frames(animator.components, sample, n_frames, SIZE, SIZE, SEED,
                               make_scheduler(animator.components), SEGMENT, refert_num, STEPS)
    assert expected.shape == (n_frames, SIZE, SIZE, 3)
    np.testing.assert_array_equal(frames[:n_frames], expected)
    assert frames.std() > 1  # not a constant image


def test_resume_after_first_segment_equals_uninterrupted(run_r1):
    sample, _, frames, blobs = run_r1
    blob = torch.load(_saved(blobs[0][1]), weights_only=True)  # what the store writes and reads back
    fresh = make(1)
    resumed, rest = collect(fresh, request(sample), resume=(1, blob))
    assert [s.index for s, _ in rest] == [1, 2]
    np.testing.assert_array_equal(resumed, frames[blobs[1][0].out_start:])


def _saved(blob):
    import io

    buf = io.BytesIO()
    torch.save(blob, buf)
    buf.seek(0)
    return buf


def test_resume_with_other_settings_is_refused(run_r1):
    sample, _, _, blobs = run_r1
    with pytest.raises(MethodError, match="belongs to another rollout") as err:
        make(1).load_state_dict(request(sample, seed=SEED + 1), blobs[0][1])
    assert err.value.fix
    # weights are part of the key, so a state from other weights is refused too (the old per-method hash
    # had no weights in it)
    other = make(1)
    other.weight_fingerprints = lambda: {"checkpoint": "0" * 64}
    with pytest.raises(MethodError, match="belongs to another rollout"):
        other.load_state_dict(request(sample), blobs[0][1])
    with pytest.raises(MethodError, match="not a wan_animate"):
        make(1).load_state_dict(request(sample), {"format": "other"})


def test_model_info_reports_settings_and_adaptations():
    sample = ArraySample(n_frames=10, face_size=8)  # face crops 8x8 != motion encoder 16x16
    animator = WanAnimate(components="tiny-random", chunk_frames=9, steps=1)
    animator.load("cpu")
    frames, _ = collect(animator, request(sample))
    assert frames.shape == (9 + 8, SIZE, SIZE, 3) and frames.dtype == np.uint8
    info = animator.model_info()
    assert info["components"]["trained"] is False and "untrained" in info["description"]
    assert info["native_settings"]["steps"] == 20 and info["settings"]["steps"] == 1
    kinds = {(a["kind"], a.get("src")) for a in info["adaptations"]}
    assert ("resize", "8x8") in kinds and ("pad", None) in kinds
    caps = animator.capabilities()
    assert (caps.native_fps, caps.chunk_frames, caps.overlap_frames, caps.can_resume) == (25, 9, 1, True)
    assert WanAnimate(components="tiny-random").capabilities().chunk_frames == 77
    assert WanAnimate(components="tiny-random", refert_num=5).capabilities().overlap_frames == 5


def test_bad_configuration_names_the_problem_and_fix(tmp_path):
    for kwargs, pattern in [({"components": "tiny-random", "refert_num": 3}, "refert_num must be 1 or 5"),
                            ({}, "exactly one of model_dir"),
                            ({"components": "tiny-random", "model_dir": str(tmp_path)}, "exactly one"),
                            ({"components": "tiny-random", "chunk_frames": 76}, "4k \\+ 1"),
                            ({"components": "tiny-random", "guidance": 5.0}, "guidance"),
                            ({"components": "tiny-random", "bogus": 1}, "unknown arguments")]:
        with pytest.raises(ConfigError, match=pattern) as err:
            WanAnimate(**kwargs)
        assert err.value.fix
    with pytest.raises(WeightsError, match="wan_animate: model folder .* does not exist") as err:
        WanAnimate(model_dir=str(tmp_path / "absent")).check_ready()
    assert "huggingface-cli download" in err.value.fix
    (tmp_path / "partial" / "transformer").mkdir(parents=True)
    (tmp_path / "partial" / "transformer" / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match="missing") as err:
        WanAnimate(model_dir=str(tmp_path / "partial")).check_ready()
    assert "vae/config.json" in str(err.value) and "diffusion_pytorch_model" in str(err.value)


def test_bad_request_and_chunk_plan_are_refused(run_r1):
    sample, animator, _, _ = run_r1
    with pytest.raises(ConfigError, match="divisible by 16"):
        animator.start(request(sample, size=40))
    with pytest.raises(MethodError, match="before load"):
        WanAnimate(components="tiny-random").start(request(sample))
    state = animator.start(request(sample))
    spec = ChunkSpec(index=0, src_start=0, chunk_frames=SEGMENT, drop=4, out_start=0)
    bad = ChunkInput(spec=spec, pose_index=np.arange(SEGMENT), pose=sample.pose(0, SEGMENT), face=sample.face(0, SEGMENT))
    with pytest.raises(MethodError, match="expected 13 / 0"):
        animator.step(state, bad)


def test_model_dir_folder_gives_the_same_frames_and_a_fingerprint(run_r1, tmp_path, monkeypatch):
    from bench.models.wan import save_components

    sample, animator, frames, _ = run_r1
    folder = save_components(animator.components, tmp_path / "tiny")
    from_folder = WanAnimate(model_dir=str(folder), chunk_frames=SEGMENT, steps=STEPS, dtype="float32")
    from_folder.check_ready()
    assert len(from_folder.weight_fingerprints()["wan_animate"]) == 64
    from_folder.load("cpu")
    again, _ = collect(from_folder, request(sample, n=14))  # first segment + 1 frame of the second
    np.testing.assert_array_equal(again[:SEGMENT], frames[:SEGMENT])
    monkeypatch.setenv("BENCH_LAB_MODELS", str(tmp_path / "no-lab"))
    with pytest.raises(WeightsError, match="the lab models are missing") as err:
        WanAnimate(components="lab").check_ready()
    assert "git checkout -- models/lab" in err.value.fix
