"""vae_roundtrip: ground truth through the VAE per chunk, the carry-over decoded and re-encoded."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.vae_roundtrip import VAERoundTrip
from bench.animator import AnimationRequest, plan_chunks
from bench.errors import ConfigError, MethodError, WeightsError
from bench.models.wan import pixels_to_unit, unit_to_uint8, vae_decode, vae_encode, video_pixels
from tests.wan_helpers import ArraySample, collect, single_thread

CHUNK, N = 13, 30


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def run():
    sample = ArraySample(n_frames=N, seed=4)
    method = VAERoundTrip(components="tiny-random", chunk_frames=CHUNK, refert_num=1)
    method.load("cpu")
    request = AnimationRequest(sample=sample, n_frames=N, fps=25, height=32, width=32, seed=0, pose_padding="reflect")
    frames, blobs = collect(method, request)
    return sample, method, request, frames, blobs


def _round_trip(vae, pixels):
    with torch.no_grad():
        return vae_decode(vae, vae_encode(vae, pixels))


def test_each_chunk_is_one_round_trip_with_the_carry_over_replaced(run):
    sample, method, _, frames, blobs = run
    specs = plan_chunks(N, CHUNK, 1)
    assert [s.n_new for s, _ in blobs] == [s.n_new for s in specs] and frames.shape == (37, 32, 32, 3)
    # chunk 0: plain round trip of the ground truth
    first = _round_trip(method.vae, video_pixels(sample.gt(0, CHUNK), 32, 32))
    np.testing.assert_array_equal(frames[:CHUNK], unit_to_uint8(pixels_to_unit(first)))
    # chunk 1: frame 12 is the previous chunk's decoded frame, the rest ground truth 13..24
    clip = video_pixels(sample.gt(12, 12 + CHUNK), 32, 32)
    fresh = _round_trip(method.vae, clip)
    clip[:, :, :1] = first[:, :, -1:]
    carried = _round_trip(method.vae, clip)
    np.testing.assert_array_equal(frames[CHUNK:CHUNK + 12], unit_to_uint8(pixels_to_unit(carried[:, :, 1:])))
    # the carried history changes later frames (causal VAE), unlike an independent round trip
    assert not torch.equal(carried[:, :, 1:], fresh[:, :, 1:])


def test_resume_equals_uninterrupted(run):
    sample, _, request, frames, blobs = run
    fresh = VAERoundTrip(components="tiny-random", chunk_frames=CHUNK, refert_num=1)
    fresh.load("cpu")
    resumed, rest = collect(fresh, request, resume=(2, blobs[1][1]))
    assert [s.index for s, _ in rest] == [2]
    np.testing.assert_array_equal(resumed, frames[blobs[2][0].out_start:])
    other = VAERoundTrip(components="tiny-random", chunk_frames=CHUNK, refert_num=1, components_seed=1)
    other.load("cpu")
    with pytest.raises(MethodError, match="belongs to another rollout"):
        other.load_state_dict(request, blobs[1][1])
    # the seed is part of the rollout key (the old per-method hash had none)
    from dataclasses import replace

    with pytest.raises(MethodError, match="belongs to another rollout"):
        fresh.load_state_dict(replace(request, seed=request.seed + 1), blobs[1][1])


def test_bad_inputs(tmp_path, run):
    _, method, request, _, _ = run
    with pytest.raises(ConfigError, match="exactly one"):
        VAERoundTrip()
    with pytest.raises(ConfigError, match="4k \\+ 1"):
        VAERoundTrip(components="tiny-random", chunk_frames=12)
    with pytest.raises(WeightsError, match="vae_roundtrip: VAE file") as err:
        VAERoundTrip(model_dir=str(tmp_path)).check_ready()
    assert "huggingface-cli download" in err.value.fix
    from dataclasses import replace

    with pytest.raises(ConfigError, match="divisible by 8"):
        method.start(replace(request, height=36))
    info = method.model_info()
    assert info["vae"]["trained"] is False and "untrained" in info["description"]
    assert method.capabilities().overlap_frames == 1 and method.capabilities().can_resume


def test_named_for_what_it_is_a_lower_bound_not_finding_1(capsys):
    from bench.cli import main
    from bench.registry import methods

    for text in (methods()["vae_roundtrip"].summary, VAERoundTrip.description):
        assert "lower bound" in text and "not the paper's Finding 1" in text and "re-enters every chunk" in text
    assert main(["ls", "--methods"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.strip().startswith("vae_roundtrip"))
    assert "lower bound on VAE loss" in line
