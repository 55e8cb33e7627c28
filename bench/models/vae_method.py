"""``VAEMethod``: the base of methods that run only a Wan VAE, no generator (``vae_roundtrip`` and the carry
oracles). Their config dataclass extends ``VAEComponentsConfig`` (torch-free): ``model_dir`` (a components
folder; only ``vae/`` is read), ``components`` (``"lab"``: the shipped lab VAE; ``"tiny-random"``: an
untrained tiny VAE for smoke tests) and ``components_seed``; this class fingerprints, verifies and loads the
VAE into ``self.vae``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.animator import Animator
from bench.errors import ConfigError


@dataclass(frozen=True)
class VAEComponentsConfig:
    """Which VAE: exactly one of ``model_dir`` and ``components``."""

    model_dir: str | None = None  # a Wan-Animate (or lab) components folder; only vae/ is read
    components: str | None = None  # "lab": the lab VAE; "tiny-random": an untrained tiny VAE (smoke tests)
    components_seed: int = 0

    def __post_init__(self):
        if (self.model_dir is None) == (self.components is None):
            raise ConfigError("give exactly one of model_dir and components",
                              fix="pass components='lab' (the lab VAE), model_dir=FOLDER (only vae/ is read) "
                                  "or components='tiny-random'")
        if self.components not in (None, "tiny-random", "lab"):
            raise ConfigError(f"unknown components {self.components!r}",
                              fix="use components='lab' or 'tiny-random', or model_dir=FOLDER")


class VAEMethod(Animator):
    def __init__(self, **identity_args: Any):
        super().__init__(**identity_args)
        self.vae = None

    def _folder(self):
        """The components folder to load (``model_dir`` or the lab model), None for tiny random components."""
        from bench.models.wan import components_folder

        return components_folder(self.config.model_dir, self.config.components)

    def is_trained(self) -> bool:
        return self._folder() is not None  # tiny-random: an untrained VAE

    def weight_fingerprints(self) -> dict[str, str]:
        if self._folder() is None:
            return {}
        from bench.models.wan import fingerprint

        self.check_ready()
        return {"vae": fingerprint(Path(self._folder()) / "vae")}

    def check_ready(self) -> None:
        if self.config.components == "lab":
            from bench.lab.shipped import verify_lab_models

            verify_lab_models(["wan_animate_base"], method=self.name)
        if self._folder() is not None:
            from bench.models.wan import check_vae_dir

            check_vae_dir(self._folder(), method=self.name)

    def load(self, device: str = "cpu") -> None:
        from bench.models.wan import load_vae, tiny_components

        self.check_ready()
        super().load(device)
        if self._folder() is not None:
            self.vae, self.trained = load_vae(self._folder(), method=self.name), True
        else:
            self.vae, self.trained = tiny_components(self.config.components_seed).vae, False
        self.vae.to(device)
