"""Move LoRAs to a base whose VAE changed in its decoder only, after proving that nothing they saw changed.

A LoRA records the fingerprint of the base it was trained on (every weight and config file, the VAE included),
and ``check_lora_base`` refuses it on any other base. A decoder-only VAE run
(``python -m bench lab train vae --set decoder_only=true ...``) changes the base's files but not what a LoRA
trains on: the trainer only *encodes* (targets, poses, references, carried ground-truth frames), so its inputs
are bit-identical when the encoder, ``quant_conv`` and the latent standardisation are. This script checks that:

1. the old base (``--base`` with ``--old-vae`` in place of its ``vae/``) has exactly the fingerprint each
   LoRA recorded;
2. the new VAE (``--base``'s ``vae/``) has the old one's config and bit-identical encoder and ``quant_conv``
   tensors;

and only then rewrites each LoRA's ``base_fingerprint`` (tensors untouched), keeping the old value and the
reason in ``base_fingerprint_before`` / ``base_fingerprint_note``. Anything else is refused.

    python scripts/restamp_lora_base.py --base models/lab/wan_animate_base --old-vae /tmp/old_vae LORA [LORA ...]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lab.shipped import lora_metadata  # noqa: E402
from bench.models.lora import write_safetensors  # noqa: E402
from bench.models.wan import VAE_ENCODER_PREFIXES, fingerprint  # noqa: E402

VAE_WEIGHTS = "diffusion_pytorch_model.safetensors"


def check_decoder_only(old_vae: Path, new_vae: Path) -> None:
    old_cfg, new_cfg = (json.loads((d / "config.json").read_text()) for d in (old_vae, new_vae))
    if old_cfg != new_cfg:
        diff = sorted(k for k in old_cfg.keys() | new_cfg.keys() if old_cfg.get(k) != new_cfg.get(k))
        raise SystemExit(f"error: the VAE configs differ in {diff}; only a decoder-only change can be restamped")
    old, new = load_file(str(old_vae / VAE_WEIGHTS)), load_file(str(new_vae / VAE_WEIGHTS))
    if old.keys() != new.keys():
        raise SystemExit("error: the two VAEs have different tensors")
    moved = [k for k in old if k.startswith(VAE_ENCODER_PREFIXES) and not torch.equal(old[k], new[k])]
    if moved:
        raise SystemExit(f"error: {len(moved)} encoder tensors differ (e.g. {moved[0]}): the latents changed, "
                         "retrain the LoRAs instead")


def old_base_fingerprint(base: Path, old_vae: Path) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "base"
        shutil.copytree(base, copy, ignore=shutil.ignore_patterns(".bench_fingerprint.json"))
        shutil.rmtree(copy / "vae")
        shutil.copytree(old_vae, copy / "vae", ignore=shutil.ignore_patterns(".bench_fingerprint.json"))
        return fingerprint(copy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, type=Path, help="the base folder, its vae/ already the new VAE")
    parser.add_argument("--old-vae", required=True, type=Path, help="the VAE folder the LoRAs were trained with")
    parser.add_argument("loras", nargs="+", type=Path)
    args = parser.parse_args()
    check_decoder_only(args.old_vae, args.base / "vae")
    before, after = old_base_fingerprint(args.base, args.old_vae), fingerprint(args.base)
    metas = {lora: lora_metadata(lora) for lora in args.loras}
    for lora, meta in metas.items():
        if meta.get("base_fingerprint") != before:
            raise SystemExit(f"error: {lora} was not trained on this base with the old VAE "
                             f"(recorded {meta.get('base_fingerprint', '?')[:12]}..., old base {before[:12]}...)")
    for lora, meta in metas.items():
        meta.update(base_fingerprint=after, base_fingerprint_before=before,
                    base_fingerprint_note="VAE decoder fine-tuned after training; encoder, latent statistics and "
                                          "transformer bit-identical (scripts/restamp_lora_base.py)")
        write_safetensors(load_file(str(lora)), lora, meta)
        print(f"{lora}: base {before[:12]}... -> {after[:12]}...")


if __name__ == "__main__":
    main()
