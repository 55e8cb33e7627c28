"""EverAnimate: minute-scale pose-guided human animation on diffusers' Wan2.2-Animate.

Persistent Latent Propagation (``memory``, ``sampler``), Restorative Flow Matching (``rfm``, ``degrade``),
two-stage LoRA training (``data``, ``train``, ``lora``) and the harness method (``animator.EverAnimate``).
Specification: ``docs/everanimate.md``.
"""
