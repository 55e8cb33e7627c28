"""Model component layers shared by methods (``bench.models.wan``: the Wan2.2-Animate components).

The Wan facts that argument dataclasses need live here, importable without torch."""

DEFAULT_PROMPT = "视频中的人在做动作"  # Wan-Animate's default prompt: "the person in the video is moving"
WAN_ANIMATE_REPO = "Wan-AI/Wan2.2-Animate-14B-Diffusers"
