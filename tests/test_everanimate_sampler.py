"""The chunk loop: memory encodes only once, exact resume, bad inputs fail clearly with chunks kept."""
import numpy as np
import pytest
import torch

from bench.animator import AnimationRequest, plan_chunks
from bench.errors import BenchError, ConfigError, DataError, MethodError, WeightsError
from everanimate.animator import EverAnimate
from tests.everanimate_helpers import Collector, MovingSquareSample

ARGS = dict(chunk_frames=9, steps=2)
N_FRAMES = 24  # 9 + 5 + 5 + 5: four chunks


@pytest.fixture(scope="module")
def animator():
    a = EverAnimate(**ARGS)
    a.load("cpu")
    return a


@pytest.fixture(scope="module")
def full_rollout(animator):
    """An uninterrupted rollout, with every VAE call and memory encode counted per chunk."""
    sampler = animator.sampler
    memory, vae_calls, chunk = [], [], {"i": 0}
    sampler.encode_counter = lambda purpose, n: memory.append((chunk["i"], purpose, n))
    original = sampler.c.vae.encode

    def counting_encode(x, *a, **k):
        vae_calls.append((chunk["i"], x.shape[2]))
        return original(x, *a, **k)

    sampler.c.vae.encode = counting_encode
    col = Collector()

    def sink(spec, frames, blob):
        col(spec, frames, blob)
        chunk["i"] += 1

    try:
        req = AnimationRequest(MovingSquareSample(30), N_FRAMES, 25, 64, 64, seed=3)
        animator.generate(req, sink)
    finally:
        sampler.encode_counter = lambda purpose, n: None
        del sampler.c.vae.encode
    return req, col, memory, vae_calls


def test_rollout_shapes_and_streaming(full_rollout):
    _, col, _, _ = full_rollout
    assert [len(f) for f in col.frames] == [9, 5, 5, 5]
    assert col.video.shape == (24, 64, 64, 3) and col.video.dtype == np.uint8
    blob = col.blobs[-1]
    assert blob["anchors"].shape == (1, 16, 4, 8, 8) and blob["motion"].shape == (1, 16, 1, 8, 8)


def test_no_vae_encode_of_generated_frames_after_anchor_completion(full_rollout):
    _, _, memory, vae_calls = full_rollout
    # chunk 0: the reference, then the one-time completion (3 generated frames, each alone); nothing later
    assert memory == [(0, "reference", 1), (0, "completion", 3)]
    one_frame = [(c, n) for c, n in vae_calls if n == 1]
    assert one_frame == [(0, 1)] * 4
    # every later VAE encode is the chunk's pose clip (9 frames), exactly one per chunk
    assert [c for c, n in vae_calls if n == 9] == [0, 1, 2, 3]
    assert len(vae_calls) == 8


def test_resume_after_chunk_2_is_bit_identical(full_rollout):
    req, col, _, _ = full_rollout
    fresh = EverAnimate(**ARGS)
    fresh.load("cpu")
    rest = Collector()
    blob = torch.load(_roundtrip(col.blobs[1]), weights_only=True)  # stored as the harness stores it
    fresh.generate(req, rest, resume=(2, blob))
    assert len(rest.frames) == 2
    for a, b in zip(rest.frames, col.frames[2:]):
        assert np.array_equal(a, b)


def _roundtrip(blob):
    import io

    buf = io.BytesIO()
    torch.save(blob, buf)
    buf.seek(0)
    return buf


def test_resume_with_other_config_is_an_error(full_rollout, animator):
    req, col, _, _ = full_rollout
    other = AnimationRequest(req.sample, req.n_frames, 25, 64, 64, seed=4)
    with pytest.raises(MethodError, match="belongs to another rollout"):
        animator.load_state_dict(other, col.blobs[1])
    different = EverAnimate(chunk_frames=9, steps=3)
    different.load("cpu")
    with pytest.raises(MethodError, match="belongs to another rollout"):
        different.load_state_dict(req, col.blobs[1])


def test_k_views_are_used_directly_when_the_request_gives_them(animator):
    req = AnimationRequest(MovingSquareSample(12, n_refs=4), 9, 25, 64, 64, seed=0, n_references=4)
    state = animator.start(req)
    assert state[0].anchors_final and state[0].anchors.shape[2] == 4
    assert not torch.equal(state[0].anchors[:, :, 0], state[0].anchors[:, :, 1])
    assert animator.capabilities().max_references == 4


def test_single_reference_request_completes_memory_from_chunk_0(animator):
    # a sample shipping 4 true views, asked the protocol's way (n_references = 1): only the user reference is
    # encoded; the memory is completed from 3 generated chunk-0 frames (never frame 0) + the reference last
    sample = MovingSquareSample(12, n_refs=4)
    req = AnimationRequest(sample, 9, 25, 64, 64, seed=0)
    assert req.n_references == 1 and len(req.references()) == 1
    seen = []
    animator.sampler.encode_counter = lambda purpose, n: seen.append((purpose, n))
    try:
        state = animator.start(req)
        assert not state[0].anchors_final
        ref_latent = state[0].anchors[:, :, :1]
        assert all(torch.equal(state[0].anchors[:, :, i:i + 1], ref_latent) for i in range(4))  # reference x K
        frames, state = animator.step(state, animator.chunk_input(req, plan_chunks(9, 9, 4)[0]))
    finally:
        animator.sampler.encode_counter = lambda purpose, n: None
    rollout = state[0]
    assert seen == [("reference", 1), ("completion", 3)]
    assert rollout.anchors_final and len(rollout.completion_frames) == 3 and 0 not in rollout.completion_frames
    assert torch.equal(rollout.anchors[:, :, 3:4], ref_latent)  # the user reference last
    assert any(a.kind == "memory" and dict(a.data)["views"] == 1 for a in animator.adaptations)


def test_sampling_uses_the_release_sigma_grid(animator):
    # shift 5 on s = 1, 0.95, ..., 0.05 (sigma = 5 s / (1 + 4 s)), then 0: not diffusers' Euler default grid
    expected = [5 * s / (1 + 4 * s) for s in np.arange(20, 0, -1) / 20]
    a = EverAnimate()
    sigmas = a.model_info()["sigmas"]
    assert len(sigmas) == 20 and np.allclose(sigmas, expected, atol=1e-6)
    assert sigmas[0] == 1.0 and [round(v, 4) for v in sigmas[-4:]] == [0.5556, 0.4688, 0.3571, 0.2083]
    from everanimate.rfm import sampling_sigmas

    assert float(sampling_sigmas(20, 5.0)[-1]) == 0.0
    # the chunk loop calls the DiT at exactly t = 1000 sigma for the configured steps, in order
    ts = []
    hook = animator.components.transformer.condition_embedder.register_forward_pre_hook(
        lambda mod, args: ts.append(float(args[0][0])))
    try:
        req = AnimationRequest(MovingSquareSample(12), 9, 25, 64, 64, seed=0)
        animator.step(animator.start(req), animator.chunk_input(req, plan_chunks(9, 9, 4)[0]))
    finally:
        hook.remove()
    assert np.allclose(ts, [1000 * v for v in animator.model_info()["sigmas"]], atol=1e-3)
    assert np.allclose(ts, [1000.0, 1000 * 5 * 0.5 / 3], atol=1e-3)  # ARGS: 2 steps -> s = 1, 0.5


class BadRefSample(MovingSquareSample):
    def __init__(self, ref, **kw):
        super().__init__(**kw)
        self._ref = ref

    def references(self):
        return [self._ref]


@pytest.mark.parametrize("ref,match", [(np.zeros((32, 32, 3), np.uint8), "rollout is 64x64"),
                                       (np.zeros((64, 64, 4), np.uint8), "expected \\(H, W, 3\\) uint8"),
                                       (np.zeros((64, 64), np.uint8), "expected \\(H, W, 3\\) uint8")])
def test_bad_reference_is_a_clear_error(animator, ref, match):
    req = AnimationRequest(BadRefSample(ref, n_frames=12), 9, 25, 64, 64, seed=0)
    with pytest.raises(DataError, match=match) as exc:
        animator.start(req)
    assert exc.value.fix


def test_too_few_pose_frames(animator):
    req = AnimationRequest(MovingSquareSample(10), 20, 25, 64, 64, seed=0)
    with pytest.raises(DataError, match="10 pose frames, 20 requested"):
        animator.generate(req, Collector())


def test_nan_latents_fail_and_finished_chunks_are_kept(animator):
    req = AnimationRequest(MovingSquareSample(30), 19, 25, 64, 64, seed=0)
    col = Collector()
    tr = animator.components.transformer
    calls = {"n": 0}

    def poison(module, args, output):
        calls["n"] += 1
        if calls["n"] > 2 * ARGS["steps"]:  # from chunk 2 on
            return output * float("nan")

    hook = tr.proj_out.register_forward_hook(poison)
    try:
        with pytest.raises(MethodError, match="NaN"):
            animator.generate(req, col)
    finally:
        hook.remove()
    assert [len(f) for f in col.frames] == [9, 5] and col.blobs[-1]["next_chunk"] == 2


def test_missing_weights_and_bad_lora_are_clear(tmp_path):
    (tmp_path / "transformer").mkdir()
    a = EverAnimate(model_dir=str(tmp_path))
    with pytest.raises(WeightsError, match="missing") as exc:
        a.check_ready()
    assert "model_index.json" in str(exc.value) and exc.value.fix
    with pytest.raises(WeightsError, match="does not exist"):
        EverAnimate(lora=str(tmp_path / "none.safetensors")).check_ready()
    with pytest.raises(ConfigError, match="unknown arguments"):
        EverAnimate(chunk_frame=9)
    with pytest.raises(ConfigError, match="1 \\+ 4k"):
        EverAnimate(chunk_frames=10)


def test_identity_and_fingerprints_label_untrained(animator):
    info = animator.model_info()
    assert info["untrained"] is True and "untrained" in info["description"]
    assert animator.weight_fingerprints()["base"].startswith("tiny-random:")
    assert animator.identity()["steps"] == 2 and animator.capabilities().can_resume


def test_cli_errors_exit_nonzero(tmp_path):
    from everanimate.__main__ import main

    assert main(["train", "--stage", "2", "--no-progress"]) != 0  # stage 2 without the stage-1 LoRA
    assert main(["train", "--stage", "1", "--config", str(tmp_path / "missing.toml")]) != 0
    assert isinstance(BenchError("x"), Exception)
