"""PLP memory: layout shapes and masks, the K + T forward, identity-memory completion."""
import numpy as np
import torch

from bench.models import wan
from everanimate.memory import (MASK_CHANNELS, MemoryLayout, completion_images, condition_latents, model_input,
                                pad_face_features, transformer_forward)


def test_condition_layout_shapes_and_masks():
    k, t = 4, 20
    anchors = torch.randn(1, 16, k, 60, 104)  # 480x832 latents
    motion = torch.randn(1, 16, 1, 60, 104)
    cond = condition_latents(anchors, motion, t)
    assert cond.shape == (1, MASK_CHANNELS + 16, k + t, 60, 104)
    mask, lat = cond[:, :MASK_CHANNELS], cond[:, MASK_CHANNELS:]
    assert torch.all(mask[:, :, :k] == 1) and torch.all(mask[:, :, k:] == 0)  # motion slot not flagged (release)
    assert torch.equal(lat[:, :, :k], anchors) and torch.equal(lat[:, :, k:k + 1], motion)
    assert torch.all(lat[:, :, k + 1:] == 0)  # null pad
    first = condition_latents(anchors, None, t)
    assert torch.all(first[:, MASK_CHANNELS:, k] == 0)  # chunk 0: motion = zeros
    flagged = condition_latents(anchors, motion, t, flag_motion=True)
    assert torch.all(flagged[:, :MASK_CHANNELS, k] == 1)
    noisy = torch.randn(1, 16, k + t, 60, 104)
    assert model_input(noisy, cond).shape == (1, 36, k + t, 60, 104)
    lay = MemoryLayout(k, t)
    assert lay.n_slots == 24 and lay.target == slice(4, 24)


def test_face_features_padded_for_anchor_slots():
    feats = torch.randn(2, 20, 5, 8)
    padded = pad_face_features(feats, 4)
    assert padded.shape == (2, 24, 5, 8) and torch.all(padded[:, :4] == 0) and torch.equal(padded[:, 4:], feats)


def test_forward_equals_diffusers_with_one_slot_and_pose_only_on_targets():
    comps = wan.tiny_components(seed=0)
    tr = comps.transformer
    g = torch.Generator().manual_seed(0)
    h = torch.randn(1, 36, 4, 8, 8, generator=g)
    pose = torch.randn(1, 16, 3, 8, 8, generator=g)
    face = torch.rand(1, 3, 9, 16, 16, generator=g) * 2 - 1
    clip = torch.randn(1, 17, 32, generator=g)
    t = torch.tensor([700.0])
    with torch.no_grad():
        ref = tr(h, t, comps.prompt_embeds, clip, pose, face).sample
        feats = wan.face_motion_features(tr, face)
        mine = transformer_forward(tr, h, t, comps.prompt_embeds, clip, pose, feats, n_memory=1)
        assert torch.allclose(ref, mine, atol=1e-5)
        # K = 4 memory slots: the output covers K + T slots; pose changes only reach targets via attention
        h4 = torch.randn(1, 36, 7, 8, 8, generator=g)
        out4 = transformer_forward(tr, h4, t, comps.prompt_embeds, clip, pose, feats, n_memory=4)
        assert out4.shape == (1, 16, 7, 8, 8)
        seen = {}
        def keep_patches(module, args, output):
            seen["x"] = output.clone()

        def keep_tokens(module, args):
            seen["tokens"] = args[0].clone()

        hook = tr.patch_embedding.register_forward_hook(keep_patches)
        hook2 = tr.blocks[0].register_forward_pre_hook(keep_tokens)
        transformer_forward(tr, h4, t, comps.prompt_embeds, clip, pose, feats, n_memory=4)
        hook.remove(), hook2.remove()
        tokens = seen["tokens"].transpose(1, 2).reshape(seen["x"].shape)
        assert torch.equal(tokens[:, :, :4], seen["x"][:, :, :4])  # anchor slots: no pose
        assert torch.allclose(tokens[:, :, 4:], seen["x"][:, :, 4:] + tr.pose_patch_embedding(pose), atol=1e-6)


def test_identity_completion_picks_generated_frames_then_reference_last():
    chunk0 = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(77)])
    ref = np.full((8, 8, 3), 200, np.uint8)
    images, idx = completion_images([ref], chunk0, 4, torch.Generator().manual_seed(0))
    assert len(images) == 4 and len(set(idx)) == 3 and idx == sorted(idx)
    assert [int(im[0, 0, 0]) for im in images[:3]] == idx and images[3] is ref
    ref2 = np.full((8, 8, 3), 201, np.uint8)
    images, idx = completion_images([ref, ref2], chunk0, 4, torch.Generator().manual_seed(0))
    assert len(idx) == 2 and images[2] is ref2 and images[3] is ref


def test_identity_completion_never_picks_frame_0():
    # the release draws the 3 frames among frames 1..n-1 of chunk 0; with 4 frames that is exactly 1, 2, 3
    chunk0 = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(4)])
    ref = np.full((8, 8, 3), 200, np.uint8)
    for seed in range(20):
        _, idx = completion_images([ref], chunk0, 4, torch.Generator().manual_seed(seed))
        assert idx == [1, 2, 3]
    picked = set()
    chunk0 = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(9)])
    for seed in range(200):
        picked |= set(completion_images([ref], chunk0, 4, torch.Generator().manual_seed(seed))[1])
    assert picked == set(range(1, 9))  # every other frame can be picked, frame 0 never
