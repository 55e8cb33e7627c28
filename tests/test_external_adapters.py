"""The four official-code adapters, each driven against a stand-in for its official entry point.

Each stand-in is written into a fake checkout, run with ``sys.executable``, reads the inputs exactly where the
adapter's contract puts them and writes output in the official format at the method's native fps, with every
generated frame equal to its input pose map. Pose map ``i`` of the test sample is a uniform grey ``10 + 3 i``,
so the collected frames show which sample frame each output frame came from.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from baselines.external import native_pose_index, native_to_output_index
from baselines.one_to_all import OneToAll
from baselines.scail import SCAIL
from baselines.steadydancer import SteadyDancer
from baselines.unianimate_dit import UniAnimateDiT
from bench.animator import AnimationRequest, pose_indices
from bench.errors import ConfigError, MethodError, WeightsError
from bench.sample import Sample
from bench.video import probe, read_all

REF_COLOR = (200, 60, 120)


class GreySample(Sample):
    """In-memory sample: pose map ``i`` is uniform grey ``10 + 3 i``; the reference is one flat colour."""

    def __init__(self, n_frames=40, size=32, fps=25):
        self.id, self.fps, self.n_frames, self.height, self.width = "grey", fps, n_frames, size, size

    @property
    def content_hash(self):
        return f"grey-{self.n_frames}-{self.height}"

    def _frames(self, a, b, offset=0):
        values = (10 + 3 * np.arange(a, b) + offset).astype(np.uint8)
        return np.broadcast_to(values[:, None, None, None], (b - a, self.height, self.width, 3)).copy()

    def gt(self, a, b):
        return self._frames(a, b, offset=1)

    def pose(self, a, b):
        return self._frames(a, b)

    def face(self, a, b):
        return np.zeros((b - a, 8, 8, 3), np.uint8)

    def references(self):
        return [np.broadcast_to(np.array(REF_COLOR, np.uint8), (self.height, self.width, 3)).copy()]

    def keypoints(self):
        t = self.n_frames
        return {"body": np.zeros((t, 18, 3)), "face": np.zeros((t, 0, 3)), "face_boxes": np.full((t, 4), np.nan)}


def grey_index(frames: np.ndarray) -> np.ndarray:
    """Sample frame index that each (uniform grey) frame shows."""
    return np.round((frames.reshape(len(frames), -1).mean(axis=1) - 10) / 3).astype(int)


def expected_index(n_out: int, native_fps: float, n_sample: int) -> np.ndarray:
    native = native_to_output_index(n_out, native_fps, 25)
    src = native_pose_index(int(native.max()) + 1, native_fps, 25)
    return pose_indices(0, int(src.max()) + 1, n_sample, "reflect")[src][native]


def collect(adapter, request, resume=None):
    chunks = []
    adapter.generate(request, lambda spec, frames, state: chunks.append((spec, frames, state)), resume=resume)
    return chunks


STANDIN_IO = '''
import os, sys, json
import numpy as np
import av
from PIL import Image
MODE = os.environ.get("STANDIN_MODE", "ok")

def read_video(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])

def write_video(path, frames, fps):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264rgb", rate=fps)
        s.pix_fmt, s.width, s.height, s.options = "rgb24", frames.shape[2], frames.shape[1], {"qp": "0"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)

def resize(frame, h, w):
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR))

def fail_if_asked():
    if MODE == "fail":
        print("loading model ...")
        print("RuntimeError: CUDA out of memory (stand-in)", file=sys.stderr)
        sys.exit(7)
'''

UNIANIMATE_STANDIN = STANDIN_IO + '''
import diffsynth  # the driver puts the checkout on sys.path
height = 832
width = 480
seed = 0
max_frames = None
use_teacache = True
test_list_path = [[1, "data/images/x.jpg", "data/saved_pose/x"]]
fail_if_asked()
for interval, ref_path, pose_dir in test_list_path:
    names = [n for n in sorted(os.listdir(pose_dir)) if n != "pose.jpg"]
    assert os.path.exists(os.path.join(pose_dir, "pose.jpg"))
    assert os.path.islink("Wan2.1-I2V-14B-720P") and os.path.exists("checkpoints/UniAnimate-Wan2.1-14B-Lora-12000.ckpt")
    ref = resize(np.asarray(Image.open(ref_path).convert("RGB")), height, width)
    poses = [resize(np.asarray(Image.open(os.path.join(pose_dir, n)).convert("RGB")), height, width) for n in names]
    if MODE == "short":
        poses = poses[:5]
    video = np.stack([np.concatenate([ref, p, p], axis=1) for p in poses])
    name = "outputs/video_480P_long_{}_{}.mp4".format(ref_path.split("/")[-1], pose_dir.split("/")[-1])
    write_video(name, video, 15)
    json.dump({"seed": seed, "teacache": use_teacache, "size": [height, width]}, open("standin_seen.json", "w"))
'''

ONE_TO_ALL_STANDIN = STANDIN_IO + '''
model_path = "../pretrained_models/Wan2.1-T2V-14B-Diffusers"
vae_path = "../pretrained_models/Wan2.1-T2V-14B-Diffusers/vae"
output_base_dir = "../output/One-to-All-14b"
max_short = 576

def unified_worker(rank, world_size, task_list, ckpt_path):
    fail_if_asked()
    assert os.path.exists("configs/wan2.1_t2v_14b.json"), "cwd must be video-generation/"
    assert os.path.isdir(ckpt_path) and os.path.isdir(model_path)
    for job_name, cache_dir, new_h, new_w, ref_cfg, pose_cfg, prompt in task_list:
        image = Image.open(os.path.join(cache_dir, "image_input.png")).convert("RGB")
        for name in ("pose_input.png", "mask_input.png"):
            assert os.path.exists(os.path.join(cache_dir, name))
        h, w = image.height // 16 * 16, image.width // 16 * 16
        poses = read_video(os.path.join(cache_dir, "pose.mp4"))
        if MODE == "wrong_size":
            h, w = h + 16, w
        out = os.path.join(output_base_dir, f"2025-01-01_ref_{ref_cfg}_pose_{pose_cfg}", f"{job_name}_ref_{ref_cfg}_pose_{pose_cfg}")
        os.makedirs(out, exist_ok=True)
        for i, p in enumerate(poses[: 5 if MODE == "short" else None]):
            Image.fromarray(resize(p, h, w)).save(os.path.join(out, f"frame_{i:06d}.png"))
'''

STEADYDANCER_STANDIN = STANDIN_IO + '''
import argparse
p = argparse.ArgumentParser()
for a in ("--task", "--size", "--ckpt_dir", "--prompt", "--image", "--cond_pos_folder", "--cond_neg_folder", "--save_file"):
    p.add_argument(a)
for a in ("--frame_num", "--sample_steps", "--base_seed"):
    p.add_argument(a, type=int)
for a in ("--sample_guide_scale", "--condition_guide_scale", "--end_cond_cfg"):
    p.add_argument(a, type=float)
args = p.parse_args()
fail_if_asked()
assert os.path.isdir(args.ckpt_dir)
img = Image.open(args.image).convert("RGB")
w_max, h_max = (int(v) for v in args.size.split("*"))
scale = (w_max * h_max / (img.width * img.height)) ** 0.5
h, w = int(img.height * scale) // 16 * 16, int(img.width * scale) // 16 * 16
if MODE == "wrong_size":
    h, w = h, w * 3
pos = [np.asarray(Image.open(os.path.join(args.cond_pos_folder, f"{i:04d}.jpg")).convert("RGB")) for i in range(args.frame_num)]
neg = [os.path.join(args.cond_neg_folder, f"{i:04d}.jpg") for i in range(args.frame_num)]
assert all(os.path.exists(n) for n in neg)
write_video(args.save_file, np.stack([resize(f, h, w) for f in pos]), 16)
'''

SCAIL_STANDIN = STANDIN_IO + '''
import argparse, yaml
p = argparse.ArgumentParser()
p.add_argument("--base", nargs="+")
p.add_argument("--seed", type=int)
args = p.parse_args()
assert os.environ["WORLD_SIZE"] == "1" and os.environ["LOCAL_RANK"] == "0"
fail_if_asked()
config = {}
for path in args.base:
    config.update(yaml.safe_load(open(path)).get("args", {}))
assert os.path.exists(config["load"] + "/latest"), config["load"]
h, w = config["sampling_image_size"]
for line in sys.stdin:
    prompt, folder = line.strip().split("@@")
    assert os.path.exists(os.path.join(folder, "ref.jpg")) and os.path.exists(os.path.join(folder, "driving.mp4"))
    poses = read_video(os.path.join(folder, "rendered.mp4"))
    frames = np.stack([resize(f, h, w) for f in poses])
    if MODE == "short":
        frames = frames[:10]
    write_video(os.path.join(config.get("output_dir", "samples"), "official", f"seed{args.seed}.mp4"), frames, 16)
'''


def touch(root: Path, names) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights:" + name.encode())


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    for prefix in ("UNIANIMATE_DIT", "ONE_TO_ALL", "SCAIL", "STEADYDANCER"):
        for suffix in ("HOME", "PYTHON", "WEIGHTS"):
            monkeypatch.delenv(f"{prefix}_{suffix}", raising=False)
    monkeypatch.delenv("STANDIN_MODE", raising=False)


# -- fake checkouts --------------------------------------------------------------------------------------------
def unianimate_checkout(tmp_path: Path) -> dict:
    from baselines.unianimate_dit import BASE_FILES, BASE_MODEL, ENTRY, LORA

    home = tmp_path / "UniAnimate-DiT"
    (home / ENTRY).parent.mkdir(parents=True)
    (home / ENTRY).write_text(UNIANIMATE_STANDIN)
    touch(home, [LORA] + [f"{BASE_MODEL}/{f}" for f in BASE_FILES])
    (home / "diffsynth").mkdir()
    (home / "diffsynth/__init__.py").write_text("ModelManager = None\n")
    return {"checkout": str(home), "python": sys.executable, "workdir": str(tmp_path / "work")}


def one_to_all_checkout(tmp_path: Path) -> dict:
    home = tmp_path / "One-to-All-Animation"
    (home / "video-generation").mkdir(parents=True)
    (home / "video-generation/inference_14b.py").write_text(ONE_TO_ALL_STANDIN)
    (home / "video-generation/configs").mkdir()
    (home / "video-generation/configs/wan2.1_t2v_14b.json").write_text("{}")
    weights = tmp_path / "o2a-weights"
    touch(weights, ["Wan2.1-T2V-14B-Diffusers/model_index.json", "Wan2.1-T2V-14B-Diffusers/vae/config.json",
                    "One-to-All-14b/model.safetensors"])
    return {"checkout": str(home), "python": sys.executable, "weights": str(weights), "workdir": str(tmp_path / "work")}


def steadydancer_checkout(tmp_path: Path) -> dict:
    from baselines.steadydancer import WAN_FILES

    home = tmp_path / "SteadyDancer"
    home.mkdir(parents=True)
    (home / "generate_dancer.py").write_text(STEADYDANCER_STANDIN)
    touch(home / "SteadyDancer-14B", WAN_FILES + ["diffusion_pytorch_model.safetensors"])
    return {"checkout": str(home), "python": sys.executable, "workdir": str(tmp_path / "work"), "size": "32*32"}


def scail_checkout(tmp_path: Path) -> dict:
    from baselines.scail import MODEL_CONFIG, SAMPLING_CONFIG

    home = tmp_path / "SCAIL"
    home.mkdir(parents=True)
    (home / "sample_video.py").write_text(SCAIL_STANDIN)
    (home / MODEL_CONFIG).parent.mkdir(parents=True)
    (home / MODEL_CONFIG).write_text('model:\n  vae_path: "/opensource/SCAIL-Preview/Wan2.1_VAE.pth"\n')
    (home / SAMPLING_CONFIG).parent.mkdir(parents=True)
    (home / SAMPLING_CONFIG).write_text('args:\n  mode: inference\n  load: "/opensource/SCAIL-Preview/mp_rank_00_model_states.pt"\n'
                                        '  sampling_image_size: [512, 896]\n  sampling_fps: 16\n')
    weights = tmp_path / "SCAIL-Preview"
    touch(weights, ["Wan2.1_VAE.pth", "model/1/mp_rank_00_model_states.pt"])
    (weights / "model/latest").write_text("1")
    return {"checkout": str(home), "python": sys.executable, "weights": str(weights),
            "workdir": str(tmp_path / "work"), "size": [32, 48]}


def kinds(adapter) -> set[str]:
    return {a.kind for a in adapter.adaptations}


# -- the adapters, end to end ----------------------------------------------------------------------------------
def test_unianimate_dit_runs_official_long_video_script(tmp_path):
    adapter = UniAnimateDiT(height=32, width=16, **unianimate_checkout(tmp_path))
    adapter.check_ready()
    request = AnimationRequest(GreySample(40), n_frames=40, fps=25, height=32, width=32, seed=7, pose_padding="reflect")
    chunks = collect(adapter, request)
    assert [c[0].index for c in chunks] == [0] and chunks[0][2] is None
    frames = chunks[0][1]
    assert frames.shape == (125, 32, 32, 3)
    job = tmp_path / "work/unianimate_dit/grey-n40-s7/w0000"
    native = int(native_to_output_index(125, 15, 25).max()) + 1
    assert len(list((job / "data/saved_pose/ref").glob("0*.png"))) == native == 75
    settings = json.loads((job / "job.json").read_text())["settings"]
    assert settings["test_list_path"] == [[1, "data/images/ref.png", "data/saved_pose/ref"]]
    assert json.loads((job / "standin_seen.json").read_text()) == {"seed": 7, "teacache": False, "size": [32, 16]}
    assert adapter.last_commands[-1][1:] == [str(job / "driver.py"), str(job / "job.json")]
    np.testing.assert_array_equal(grey_index(frames), expected_index(125, 15, 40))
    assert {"resample", "resize", "crop", "pose", "aspect", "pad", "resolution"} <= kinds(adapter)
    info = adapter.model_info()
    assert info["native_settings"]["steps"] == 50 and info["overrides"] == {"height": 32, "width": 16}
    assert "checkout" not in adapter.identity() and adapter.capabilities().end_to_end


def test_one_to_all_calls_official_worker_with_token_replace(tmp_path):
    adapter = OneToAll(**one_to_all_checkout(tmp_path))
    adapter.check_ready()
    request = AnimationRequest(GreySample(60), n_frames=130, fps=25, height=32, width=32, seed=3, pose_padding="reflect")
    chunks = collect(adapter, request)
    assert [c[0].n_new for c in chunks] == [125, 125]
    frames = np.concatenate([c[1] for c in chunks])
    job = tmp_path / "work/one_to_all/grey-n130-s3/w0000"
    assert probe(job / "cache/pose.mp4").n_frames == 250 and probe(job / "cache/pose.mp4").fps == 25
    payload = json.loads((job / "job.json").read_text())
    assert payload["function"] == "unified_worker" and payload["args"][2][0][4:6] == [2.0, 1.5]
    assert payload["settings"]["output_base_dir"] == str(job / "out")
    assert np.abs(grey_index(frames) - expected_index(250, 25, 60)).max() == 0
    assert {"pose", "mask", "seed", "pad"} <= kinds(adapter) and "resample" not in kinds(adapter)
    # resume of a whole-video method: regenerate, emit only the missing chunks
    again = collect(adapter, request, resume=(1, None))
    assert [c[0].index for c in again] == [1]


def test_steadydancer_extends_window_by_window_and_resumes(tmp_path):
    adapter = SteadyDancer(**steadydancer_checkout(tmp_path))
    adapter.check_ready()
    assert adapter.capabilities().chunk_frames == 125 and adapter.capabilities().can_resume
    request = AnimationRequest(GreySample(80), n_frames=200, fps=25, height=32, width=32, seed=5, pose_padding="reflect")
    chunks = collect(adapter, request)
    assert [c[0].index for c in chunks] == [0, 1]
    frames = np.concatenate([c[1] for c in chunks])
    assert frames.shape == (250, 32, 32, 3)
    assert np.abs(grey_index(frames) - expected_index(250, 16, 80)).max() <= 1  # pose maps go through JPEG
    root = tmp_path / "work/steadydancer/grey-n200-s5"
    assert len(list((root / "w0001/positive").glob("*.jpg"))) == 81
    first_window = read_all(root / "w0000/out.mp4")
    carried = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(root / "w0001/ref_image.png"))
    np.testing.assert_array_equal(carried, first_window[-1])
    np.testing.assert_array_equal(chunks[0][2]["carry"], first_window[-1])
    command = json.loads((root / "w0001/command.json").read_text())["command"]
    assert command[1].endswith("generate_dancer.py")
    for flag, value in [("--frame_num", "81"), ("--size", "32*32"), ("--base_seed", "5"), ("--sample_steps", "40")]:
        assert command[command.index(flag) + 1] == value
    assert {"extend", "resample", "negative_pose", "pose", "resolution"} <= kinds(adapter)
    # resume after chunk 0: only window 1 runs, from the stored carry, same frames
    resumed = collect(SteadyDancer(**steadydancer_checkout(tmp_path / "again")), request, resume=(1, chunks[0][2]))
    assert [c[0].index for c in resumed] == [1]
    np.testing.assert_array_equal(resumed[0][1], chunks[1][1])


def test_scail_feeds_cli_line_and_rewrites_configs(tmp_path):
    adapter = SCAIL(**scail_checkout(tmp_path))
    adapter.check_ready()
    request = AnimationRequest(GreySample(60), n_frames=125, fps=25, height=32, width=32, seed=11, pose_padding="reflect")
    chunks = collect(adapter, request)
    assert len(chunks) == 1 and chunks[0][1].shape == (125, 32, 32, 3)
    job = tmp_path / "work/scail/grey-n125-s11/w0000"
    recorded = json.loads((job / "command.json").read_text())
    assert recorded["stdin"] == f"{adapter.identity_args['prompt']}@@{job / 'input'}\n"
    assert recorded["command"][2:] == ["--base", str(job / "model.yaml"), str(job / "sampling.yaml"), "--seed", "11"]
    assert recorded["env"]["WORLD_SIZE"] == "1"
    assert str(tmp_path / "SCAIL-Preview") + "/Wan2.1_VAE.pth" in (job / "model.yaml").read_text()
    assert f'load: "{tmp_path / "SCAIL-Preview" / "model"}"' in (job / "sampling.yaml").read_text()
    assert probe(job / "input/rendered.mp4").n_frames == 81
    np.testing.assert_array_equal(grey_index(chunks[0][1]), expected_index(125, 16, 60))
    assert {"pose", "resample", "resize", "resolution"} <= kinds(adapter)


# -- bad input --------------------------------------------------------------------------------------------------
def test_missing_checkout_and_weights_name_method_and_fix(tmp_path):
    with pytest.raises(ConfigError) as err:
        UniAnimateDiT().check_ready()
    assert "unianimate_dit" in str(err.value) and "UNIANIMATE_DIT_HOME" in str(err.value)
    with pytest.raises(ConfigError) as err:
        SCAIL(checkout=str(tmp_path / "nowhere"), python=sys.executable).check_ready()
    assert "scail" in str(err.value) and "github.com/zai-org/SCAIL" in err.value.fix
    setup = steadydancer_checkout(tmp_path)
    for f in (Path(setup["checkout"]) / "SteadyDancer-14B").glob("Wan2.1_VAE.pth"):
        f.unlink()
    with pytest.raises(WeightsError) as err:
        SteadyDancer(**setup).check_ready()
    assert "Wan2.1_VAE.pth" in str(err.value) and "huggingface-cli download" in err.value.fix
    status = OneToAll.doctor_status(checkout=str(tmp_path / "nowhere"))
    assert status["status"] == "missing" and status["ready"] is False and status["requirements"][0] == {
        "what": "checkout", "name": "checkout", "path": str(tmp_path / "nowhere"), "present": False,
        "fix": f"clone {OneToAll.repo_url} there, or set ONE_TO_ALL_HOME"}
    ok = SCAIL.doctor_status(**{k: v for k, v in scail_checkout(tmp_path / "s").items() if k != "size"})
    assert ok["ready"] and all(r["present"] for r in ok["requirements"])
    with pytest.raises(ConfigError):
        SCAIL(steps=3)


def test_official_failure_reports_exit_code_and_log_tail(tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_MODE", "fail")
    adapter = SteadyDancer(**steadydancer_checkout(tmp_path))
    request = AnimationRequest(GreySample(40), n_frames=40, fps=25, height=32, width=32, seed=0, pose_padding="reflect")
    with pytest.raises(MethodError) as err:
        collect(adapter, request)
    text = str(err.value)
    assert "steadydancer" in text and "code 7" in text and "CUDA out of memory" in text and err.value.fix


@pytest.mark.parametrize("method,setup,mode,match", [
    (UniAnimateDiT, unianimate_checkout, "short", "has 5 frames, expected at least 75"),
    (OneToAll, one_to_all_checkout, "wrong_size", "frames are 32x48"),
    (SteadyDancer, steadydancer_checkout, "wrong_size", "expected the image's aspect"),
    (SCAIL, scail_checkout, "short", "has 10 frames, expected at least 81"),
])
def test_too_few_frames_or_wrong_size_is_a_method_error(tmp_path, monkeypatch, method, setup, mode, match):
    monkeypatch.setenv("STANDIN_MODE", mode)
    kwargs = setup(tmp_path)
    if method is UniAnimateDiT:
        kwargs.update(height=32, width=16)
    request = AnimationRequest(GreySample(40), n_frames=40, fps=25, height=32, width=32, seed=0, pose_padding="reflect")
    with pytest.raises(MethodError, match=match) as err:
        collect(method(**kwargs), request)
    assert method.name in str(err.value)
