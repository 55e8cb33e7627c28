"""Finding-1 oracles: person from GT, room carried as decoded pixels (compounding) or as a latent (flat)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.carry_oracles import OracleLatentCarry, OraclePixelCarry
from bench.animator import AnimationRequest, plan_chunks
from bench.errors import ConfigError, DataError
from bench.models.wan import pixels_to_unit, unit_to_uint8, vae_decode, vae_encode
from tests.wan_helpers import ArraySample, collect, single_thread

CHUNK, OVERLAP, N = 13, 4, 32


class MaskedSample(ArraySample):
    """The moving 8x8 box of ``ArraySample`` is the person."""

    def masks(self, a, b):
        out = np.zeros((self.n_frames, self.height, self.width), bool)
        for t in range(self.n_frames):
            x = (3 * t) % max(1, self.width - 8)
            out[t, 4:12, x:x + 8] = True
        return self._range(a, b, out)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


def _run(cls, sample, resume=None, method=None):
    method = method or cls(components="tiny-random", chunk_frames=CHUNK, overlap=OVERLAP)
    if method.vae is None:
        method.load("cpu")
    request = AnimationRequest(sample=sample, n_frames=N, fps=25, height=32, width=32, seed=0, pose_padding="reflect")
    frames, blobs = collect(method, request, resume=resume)
    return method, request, frames, blobs


def _pixels(frames):
    return torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0


def _trip(vae, x):
    with torch.no_grad():
        return vae_decode(vae, vae_encode(vae, x)).float()


@pytest.fixture(scope="module")
def sample():
    return MaskedSample(n_frames=N, seed=3)


def test_chunk0_is_one_round_trip_of_the_ground_truth_and_the_room_is_carried_as_decoded_pixels(sample):
    method, _, frames, blobs = _run(OraclePixelCarry, sample)
    specs = plan_chunks(N, CHUNK, OVERLAP)
    assert frames.shape == (sum(s.n_new for s in specs), 32, 32, 3)
    assert [s.index for s, _ in blobs] == [s.index for s in specs]
    gt = sample.gt(0, CHUNK)
    first = _trip(method.vae, _pixels(gt))  # exact room + GT person = the GT itself
    np.testing.assert_array_equal(frames[:CHUNK], unit_to_uint8(pixels_to_unit(first)))
    # chunk 1's room: the last decoded frame of chunk 0 where the person leaves it free, the exact room elsewhere
    free = torch.from_numpy(~sample.masks(CHUNK - 1, CHUNK)[0]).float()
    stored = blobs[0][1]["room"]
    exact = _pixels(gt[:1])[:, :, 0]
    expected = free * first[:, :, -1] + (1 - free) * exact
    assert torch.allclose(stored, expected, atol=1e-6)
    # chunk 1 = person from GT over that room, one round trip
    lo = specs[1].src_start
    gt1, m1 = sample.gt(lo, lo + CHUNK), torch.from_numpy(sample.masks(lo, lo + CHUNK)).float()[None, None]
    composite = m1 * _pixels(gt1) + (1 - m1) * stored.unsqueeze(2)
    out1 = _trip(method.vae, composite)
    np.testing.assert_array_equal(frames[CHUNK:CHUNK + specs[1].n_new],
                                  unit_to_uint8(pixels_to_unit(out1[:, :, OVERLAP:])))


def test_latent_carry_keeps_one_room_from_a_single_round_trip(sample):
    method, _, frames, blobs = _run(OracleLatentCarry, sample)
    rooms = [b["room"] for _, b in blobs]
    assert all(torch.equal(rooms[0], r) for r in rooms[1:])
    exact = method._exact_room(sample.gt(0, CHUNK), sample.masks(0, CHUNK))
    background = sample.gt(0, 1)[0].copy()
    background[4:12, 0:8] = sample.gt(5, 6)[0, 4:12, 0:8]  # frame 5's box is elsewhere
    assert torch.equal(exact, _pixels(background[None])[:, :, 0])
    assert torch.allclose(rooms[0], _trip(method.vae, exact.unsqueeze(2))[:, :, 0], atol=1e-6)
    pixel = _run(OraclePixelCarry, sample)[3]
    assert not torch.equal(pixel[1][1]["room"], pixel[2][1]["room"])  # the pixel path changes the room every chunk


def test_resume_equals_uninterrupted(sample):
    method, request, frames, blobs = _run(OraclePixelCarry, sample)
    fresh = OraclePixelCarry(components="tiny-random", chunk_frames=CHUNK, overlap=OVERLAP)
    fresh.load("cpu")
    specs = plan_chunks(N, CHUNK, OVERLAP)
    done = sum(s.n_new for s in specs[:2])
    _, _, resumed, rest = _run(OraclePixelCarry, sample, resume=(2, blobs[1][1]), method=fresh)
    np.testing.assert_array_equal(resumed, frames[done:])
    assert [s.index for s, _ in rest] == [s.index for s in specs[2:]]


def test_bad_arguments_and_samples_without_masks():
    with pytest.raises(ConfigError, match="exactly one of"):
        OraclePixelCarry()
    with pytest.raises(ConfigError, match="unknown arguments"):
        OracleLatentCarry(components="lab", nosuch=1)
    method = OraclePixelCarry(components="tiny-random", chunk_frames=CHUNK, overlap=OVERLAP)
    method.load("cpu")
    request = AnimationRequest(sample=ArraySample(n_frames=N), n_frames=N, fps=25, height=32, width=32, seed=0,
                               pose_padding="reflect")
    with pytest.raises(DataError, match="no person masks"):
        method.start(request)
