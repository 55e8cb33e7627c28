"""``VAEMethod``: the base of methods that run only a Wan VAE, no generator (``vae_roundtrip`` and the carry
oracles). Their config dataclass has ``model_dir`` (a components folder; only ``vae/`` is read),
``components`` (``"lab"``: the shipped lab VAE; ``"tiny-random"``: an untrained tiny VAE for smoke tests) and
``components_seed``; this class checks those, fingerprints, verifies and loads the VAE into ``self.vae``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.animator import Animator
from bench.errors import ConfigError


class VAEMethod(Animator):
    def __init__(self, **identity_args: Any):
        super().__init__(**identity_args)
        cfg = self.config
        if (cfg.model_dir is None) == (cfg.components is None):
            raise ConfigError(f"{self.name}: give exactly one of model_dir and components",
                              fix="pass components='lab' (the lab VAE), model_dir=FOLDER (only vae/ is used) "
                                  "or components='tiny-random'")
        if cfg.components not in (None, "tiny-random", "lab"):
            raise ConfigError(f"{self.name}: unknown components {cfg.components!r}",
                              fix="use components='lab' or 'tiny-random', or model_dir=FOLDER")
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
