"""``ground_truth``: returns the ground-truth frames. Every metric must give its ideal value (PSNR at the
100 dB cap, SSIM 1, LPIPS 0): the sanity row of every table."""
from __future__ import annotations

from bench.animator import Animator, AnimationRequest, Capabilities, ChunkInput


class GroundTruth(Animator):
    name = "ground_truth"
    version = "1"
    description = "the ground-truth frames (upper bound and metric sanity check)"

    def capabilities(self) -> Capabilities:
        return Capabilities(native_fps=25, chunk_frames=77, overlap_frames=4, can_resume=True, max_references=0)

    def start(self, request: AnimationRequest) -> dict:
        return {"next_chunk": 0, "request": request}

    def step(self, state: dict, chunk: ChunkInput):
        request: AnimationRequest = state["request"]
        index = chunk.pose_index[chunk.spec.drop:]
        lo, hi = int(index.min()), int(index.max()) + 1
        frames = request.sample.gt(lo, hi)[index - lo]
        return frames, {**state, "next_chunk": chunk.spec.index + 1}

    def state_dict(self, state: dict) -> dict:
        return {"next_chunk": state["next_chunk"]}

    def load_state_dict(self, request: AnimationRequest, blob: dict) -> dict:
        return {"next_chunk": int(blob["next_chunk"]), "request": request}
