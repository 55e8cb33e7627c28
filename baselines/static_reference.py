"""``static_reference``: the canonical reference image repeated for every frame - what "no motion" scores."""
from __future__ import annotations

import numpy as np

from bench.animator import Animator, AnimationRequest, Capabilities, ChunkInput


class StaticReference(Animator):
    name = "static_reference"
    version = "1"
    description = "the reference image repeated (lower bound: no motion)"

    def capabilities(self) -> Capabilities:
        return Capabilities(native_fps=25, chunk_frames=77, overlap_frames=4, can_resume=True)

    def start(self, request: AnimationRequest) -> dict:
        reference = request.references()[0]
        if reference.shape[:2] != (request.height, request.width):
            from PIL import Image

            self.record("resize", f"reference {reference.shape[1]}x{reference.shape[0]} resized (bicubic) to "
                        f"{request.width}x{request.height}")
            reference = np.asarray(Image.fromarray(reference).resize((request.width, request.height), Image.BICUBIC))
        return {"reference": reference}

    def step(self, state: dict, chunk: ChunkInput):
        return np.broadcast_to(state["reference"], (chunk.spec.n_new, *state["reference"].shape)).copy(), state

    def state_dict(self, state: dict) -> dict:
        return {"reference": state["reference"]}

    def load_state_dict(self, request: AnimationRequest, blob: dict) -> dict:
        return {"reference": np.asarray(blob["reference"])}
