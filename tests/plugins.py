"""Test-only methods, registered through BENCH_PLUGINS so subprocess tests exercise the real CLI."""
from __future__ import annotations

import os
import time

import numpy as np

from bench.animator import Animator, AnimationRequest, Capabilities, ChunkInput


class CountingSlow(Animator):
    """Ground truth darkened by a seed-dependent amount, slowly, logging every chunk it generates."""

    name = "counting_slow"
    version = "1"

    def __init__(self, delay: float = 0.25):
        super().__init__()
        self.delay = delay  # runtime only: not part of the identity

    def capabilities(self):
        return Capabilities(native_fps=25, chunk_frames=20, overlap_frames=4, can_resume=True)

    def start(self, request: AnimationRequest):
        return {"request": request, "gain": 0.5 + 0.4 * np.random.default_rng(request.seed).random()}

    def step(self, state, chunk: ChunkInput):
        log = os.environ.get("BENCH_TEST_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{state['request'].sample.id} {chunk.spec.index}\n")
        time.sleep(self.delay)
        index = chunk.pose_index[chunk.spec.drop:]
        lo = int(index.min())
        gt = state["request"].sample.gt(lo, int(index.max()) + 1)[index - lo]
        return (gt * state["gain"]).astype(np.uint8), state

    def state_dict(self, state):
        return {"gain": float(state["gain"])}

    def load_state_dict(self, request, blob):
        return {"request": request, "gain": float(blob["gain"])}


class EmitsNaN(Animator):
    name = "emits_nan"

    def capabilities(self):
        return Capabilities(native_fps=25, chunk_frames=20, overlap_frames=0)

    def start(self, request):
        return request

    def step(self, state, chunk):
        return np.full((chunk.spec.n_new, state.height, state.width, 3), np.nan, np.float32), state


class Crashes(Animator):
    name = "crashes"

    def capabilities(self):
        return Capabilities(native_fps=25, chunk_frames=20, overlap_frames=0)

    def start(self, request):
        return request

    def step(self, state, chunk):
        if chunk.spec.index == 1:
            raise RuntimeError("simulated out-of-memory in chunk 1")
        return np.zeros((chunk.spec.n_new, state.height, state.width, 3), np.uint8), state


PLUGINS = "counting_slow=tests.plugins:CountingSlow,emits_nan=tests.plugins:EmitsNaN,crashes=tests.plugins:Crashes"
