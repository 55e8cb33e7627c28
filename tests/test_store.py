import json

import numpy as np
import pytest

from bench.store import Rollout, rollout_key


def test_rollout_key_is_pinned():
    """If this fails, every stored rollout would be silently recomputed or, worse, reused wrongly:
    change KEY_SCHEMA deliberately and update the pinned value."""
    key, payload = rollout_key("wan_animate", "1", {"refert_num": 1, "steps": 20}, {"checkpoint": "ab" * 32},
                               "cd" * 32, 2250, 25, 480, 832, 42)
    assert key == "d84f673ed69579de1ba6774465e54f0447d7220a2b15b87ee1ac368229ed2046"
    assert payload["resolution"] == [480, 832] and payload["frames"] == 2250


@pytest.mark.parametrize("change", [dict(method="everanimate"), dict(version="2"), dict(identity={"refert_num": 5}),
                                    dict(weights={"checkpoint": "00"}), dict(sample_hash="ef"), dict(n_frames=250),
                                    dict(fps=16), dict(height=832, width=480), dict(seed=0)])
def test_every_identity_field_changes_the_key(change):
    base = dict(method="wan_animate", version="1", identity={"refert_num": 1}, weights={"checkpoint": "ab"},
                sample_hash="cd", n_frames=2250, fps=25, height=480, width=832, seed=42)
    assert rollout_key(**base)[0] != rollout_key(**{**base, **change})[0]


def make_rollout(tmp_path):
    key, payload = rollout_key("m", "1", {}, {}, "s", 40, 25, 16, 16, 0)
    r = Rollout(tmp_path, "m", key, payload)
    r.ensure_key()
    return r


def test_chunks_commit_atomically_and_partial_leftovers_are_ignored(tmp_path):
    r = make_rollout(tmp_path)
    frames = np.random.default_rng(0).integers(0, 255, (20, 16, 16, 3), dtype=np.uint8)
    r.write_chunk(0, 0, frames, 25, {"latent": np.arange(6.0).reshape(2, 3), "step": 1})
    # a chunk whose video was written but whose record was not (killed in between) does not count
    r.write_chunk(1, 20, frames, 25, None)
    (r.chunks_dir / "00001.json").unlink()
    (r.chunks_dir / "00002.mp4.partial").write_bytes(b"half a video")
    assert [c.index for c in r.chunk_records()] == [0]
    r.discard_after(1)
    assert sorted(p.name for p in r.chunks_dir.iterdir()) == ["00000.json", "00000.mp4", "00000.state.pt"]
    state = r.load_state(0)
    np.testing.assert_array_equal(state["latent"], np.arange(6.0).reshape(2, 3))
    assert state["step"] == 1
    got = np.concatenate([f for _, f in r.iter_frames(20, batch=7)])
    np.testing.assert_array_equal(got, frames)  # lossless storage


def test_corrupt_chunk_is_not_trusted(tmp_path):
    r = make_rollout(tmp_path)
    frames = np.zeros((20, 16, 16, 3), np.uint8)
    r.write_chunk(0, 0, frames, 25, {"a": 1})
    r.write_chunk(1, 20, frames, 25, {"a": 2})
    video = r.chunks_dir / "00001.mp4"
    video.write_bytes(video.read_bytes()[:-50])
    assert len(r.chunk_records(verify=False)) == 2
    assert len(r.chunk_records(verify=True)) == 1


def test_status_written_last_decides_completeness(tmp_path):
    r = make_rollout(tmp_path)
    frames = np.zeros((20, 16, 16, 3), np.uint8)
    r.write_chunk(0, 0, frames, 25, None)
    assert not r.is_complete()
    r.mark_complete(20, {})
    assert r.is_complete()
    (r.chunks_dir / "00000.json").unlink()
    assert not r.is_complete()


def test_key_folder_collision_is_an_error(tmp_path):
    r = make_rollout(tmp_path)
    (r.folder / "key.json").write_text(json.dumps({"key": "0" * 64}))
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="delete the folder"):
        r.ensure_key()


def test_pose_padding_that_changes_pixels_changes_the_key():
    """`hold` and `reflect` rollouts of one request used to share one folder: the runner added the padding
    to the payload after hashing it. `error` pads the last chunk's tail by reflection, so it shares the
    `reflect` key (same pixels); `hold` does not."""
    base = dict(method="m", version="1", identity={}, weights={}, sample_hash="s", n_frames=40, fps=25, height=16,
                width=16, seed=0)
    keys = {p: rollout_key(**base, pose_padding=p) for p in ("error", "reflect", "hold")}
    assert keys["hold"][0] != keys["reflect"][0]
    assert keys["hold"][1]["pose_padding"] == "hold"
    assert keys["error"] == keys["reflect"] == rollout_key(**base)


def test_runner_rollouts_with_other_padding_get_other_folders(tmp_path):
    from bench.config import build_config
    from bench.runner import GridRunner
    from tests.helpers import write_dataset

    data = write_dataset(tmp_path / "data", 1, n=60)
    folders = {}
    for padding in ("reflect", "hold"):
        config = build_config("lab", methods=["ground_truth"], durations=[3], dataset=str(data), metrics=["psnr"],
                              results=str(tmp_path / "res"), progress=False, pose_padding=padding)
        runner = GridRunner(config)
        cells, _ = runner.prepare()
        rollout, request = runner.rollout_for(cells[0])
        assert request.rollout_key == rollout.key
        folders[padding] = rollout.folder
    assert folders["reflect"] != folders["hold"]
