"""LoRA on the Wan-Animate DiT through ``peft``: add, save, load (diffusers/peft files and the authors'
DiffSynth files). Shared by every method on a Wan DiT (EverAnimate's adapter, the lab ablation's LoRA on
``wan_animate``); importing this module imports no torch.

File format written here (diffusers/peft): safetensors with keys
``transformer.blocks.<i>.attn1.to_q.lora_A.weight`` / ``.lora_B.weight`` and metadata ``format``,
``rank``, ``alpha``. The release's DiffSynth files name the same layers
``blocks.<i>.self_attn.q.lora_A.default.weight`` (``cross_attn``, ``k``, ``v``, ``o``, ``ffn.0``,
``ffn.2``; sometimes ``lora_down`` / ``lora_up``, a ``diffusion_model.`` prefix, ``.alpha`` scalars):
``read_lora_file`` maps them. A key that maps to no layer of the model is an error listing every one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import WeightsError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = 32  # release; the paper uses 128
    alpha: float | None = None  # None: alpha = rank (release)
    # targets (fixed, TARGET_REGEX): q/k/v/out of self- and cross-attention + both FFN linears of every block

    @property
    def lora_alpha(self) -> float:
        return float(self.rank if self.alpha is None else self.alpha)

ADAPTER = "default"
# attention q, k, v, out of self- (attn1) and cross-attention (attn2) and both FFN linears, DiT blocks only
TARGET_REGEX = r"blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)|blocks\.\d+\.ffn\.net\.(0\.proj|2)"
PREFIXES = ("transformer.", "diffusion_model.", "pipe.dit.", "dit.", "model.")
DIFFSYNTH_LAYERS = {  # DiffSynth WanModel name -> diffusers WanAnimateTransformer3DModel name (inside a block)
    "self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v", "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k", "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0",
    "cross_attn.k_img": "attn2.add_k_proj", "cross_attn.v_img": "attn2.add_v_proj",
    "ffn.0": "ffn.net.0.proj", "ffn.2": "ffn.net.2",
}


def peft_config(config: LoRAConfig, target_modules: str | list[str] = TARGET_REGEX):
    from peft import LoraConfig

    return LoraConfig(r=config.rank, lora_alpha=config.lora_alpha, target_modules=target_modules,
                      init_lora_weights=True, lora_dropout=0.0)


def add_lora(transformer, config: LoRAConfig = LoRAConfig()) -> list[str]:
    """Inject a trainable LoRA (B = 0: the model is unchanged at first); returns the adapted layer names."""
    transformer.add_adapter(peft_config(config), adapter_name=ADAPTER)
    return lora_layers(transformer)


def lora_layers(transformer) -> list[str]:
    return sorted({n.rsplit(".lora_A", 1)[0] for n, _ in transformer.named_parameters() if ".lora_A." in n})


def lora_parameters(transformer) -> list[torch.nn.Parameter]:
    return [p for n, p in transformer.named_parameters() if ".lora_A." in n or ".lora_B." in n]


def lora_state_dict(transformer) -> dict[str, torch.Tensor]:
    """``{'blocks.0.attn1.to_q.lora_A.weight': ...}`` (peft names, no adapter name)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(transformer, adapter_name=ADAPTER).items()}


def save_lora(transformer, path: str | Path, extra: dict | None = None) -> Path:
    """Write the adapter in the diffusers/peft format (atomically); rank and alpha come from the adapter."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"transformer.{k}": v for k, v in lora_state_dict(transformer).items()}
    cfg = transformer.peft_config[ADAPTER]
    meta = {"format": "diffusers-peft", "rank": str(cfg.r), "alpha": str(float(cfg.lora_alpha)),
            **{k: str(v) for k, v in (extra or {}).items()}}
    return write_safetensors(tensors, path, meta)


def write_safetensors(tensors: dict, path: Path, metadata: dict[str, str]) -> Path:
    """Write ``tensors`` with ``metadata`` to ``path`` atomically (a temporary file renamed into place)."""
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def _strip_prefix(key: str) -> str:
    for p in PREFIXES:
        if key.startswith(p):
            return key[len(p):]
    return key


def diffsynth_to_diffusers(key: str) -> str | None:
    """``blocks.3.self_attn.q.lora_A.default.weight`` -> ``blocks.3.attn1.to_q.lora_A.weight``; None for a
    key that is not a LoRA factor of a known layer. ``.alpha`` keys map to ``<layer>.alpha``."""
    key = _strip_prefix(key)
    m = re.fullmatch(r"blocks\.(\d+)\.(.+?)\.(lora_A|lora_B|lora_down|lora_up)(?:\.default)?\.weight", key)
    alpha = re.fullmatch(r"blocks\.(\d+)\.(.+?)\.alpha", key)
    if m:
        block, layer, factor = m.groups()
        factor = {"lora_down": "lora_A", "lora_up": "lora_B"}.get(factor, factor)
        suffix = f"{factor}.weight"
    elif alpha:
        (block, layer), suffix = alpha.groups(), "alpha"
    else:
        return None
    layer = DIFFSYNTH_LAYERS.get(layer, layer)  # already-diffusers names pass through
    return f"blocks.{block}.{layer}.{suffix}"


def read_lora_file(path: str | Path) -> tuple[dict[str, torch.Tensor], float | None, str]:
    """Read a LoRA file in either format -> (``{peft key: tensor}``, alpha or None, format name)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"LoRA file {path} does not exist",
                           fix="pass the path of a .safetensors LoRA (training writes RUN/lora.safetensors)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            raw = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise WeightsError(f"cannot read LoRA file {path}: {exc}", fix="the file is truncated or not safetensors; "
                           "download or train it again") from exc
    fmt = "diffusers-peft" if meta.get("format") == "diffusers-peft" else "diffsynth"
    out, alphas, unmatched = {}, set(), []
    for key, value in raw.items():
        new = diffsynth_to_diffusers(key)
        if new is None:
            unmatched.append(key)
        elif new.endswith(".alpha"):
            alphas.add(float(value.float().reshape(-1)[0]))
        else:
            out[new] = value
    if unmatched:
        raise WeightsError(f"LoRA file {path}: {len(unmatched)} key(s) are not LoRA factors of DiT blocks: "
                           + ", ".join(sorted(unmatched)[:20]) + (" ..." if len(unmatched) > 20 else ""),
                           fix="use an EverAnimate / Wan-Animate DiT LoRA (diffusers-peft or DiffSynth key names)")
    alpha = float(meta["alpha"]) if "alpha" in meta else None
    if alpha is None and len(alphas) == 1:
        alpha = alphas.pop()
    return out, alpha, fmt


def load_lora(transformer, path: str | Path, trainable: bool = False, scale: float = 1.0, merge: bool = False) -> dict:
    """Add the LoRA in ``path`` to ``transformer`` (either key format) and load its weights exactly.

    ``merge=True`` (inference) folds the scaled update into the base weights, so a forward pass costs what the
    base model's does (the adapter is kept: ``disable_adapters`` still restores the base).

    Raises ``WeightsError`` listing every key that matches no layer of the model or has the wrong shape.
    Rank comes from the factors; alpha from the file (metadata or ``.alpha`` keys), else alpha = rank."""
    import torch

    if merge and trainable:
        raise ValueError("load_lora: a merged LoRA cannot be trained")
    state, alpha, fmt = read_lora_file(path)
    if not state:
        raise WeightsError(f"LoRA file {path} holds no LoRA weights", fix="pass a LoRA file, not a base model")
    modules = dict(transformer.named_modules())
    layers = sorted({k.rsplit(".lora_", 1)[0] for k in state})
    problems = []
    for layer in layers:
        mod = modules.get(layer)
        a, b = state.get(f"{layer}.lora_A.weight"), state.get(f"{layer}.lora_B.weight")
        if not isinstance(mod, torch.nn.Linear):
            problems.append(f"{layer} (no such linear layer in the model)")
        elif a is None or b is None:
            problems.append(f"{layer} (lora_A or lora_B missing)")
        elif a.shape[1] != mod.in_features or b.shape[0] != mod.out_features or a.shape[0] != b.shape[1]:
            problems.append(f"{layer} (shapes A{tuple(a.shape)} B{tuple(b.shape)} vs layer "
                            f"{mod.out_features}x{mod.in_features})")
    if problems:
        raise WeightsError(f"LoRA file {path} does not match the model; unmatched keys: " + "; ".join(problems),
                           fix="use the LoRA trained for this base model (same architecture and size)")
    ranks = {state[f"{layer}.lora_A.weight"].shape[0] for layer in layers}
    if len(ranks) != 1:
        raise WeightsError(f"LoRA file {path} mixes ranks {sorted(ranks)}", fix="use a LoRA with one rank")
    rank = ranks.pop()
    config = LoRAConfig(rank=rank, alpha=alpha if alpha is not None else float(rank))
    from peft import set_peft_model_state_dict

    transformer.add_adapter(peft_config(config, target_modules=layers), adapter_name=ADAPTER)
    dtype = next(transformer.parameters()).dtype
    result = set_peft_model_state_dict(transformer, {k: v.to(dtype) for k, v in state.items()}, adapter_name=ADAPTER)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise WeightsError(f"LoRA file {path}: keys not loaded: {', '.join(unexpected[:20])}",
                           fix="use the LoRA trained for this base model")
    from peft.tuners.lora import LoraLayer

    for m in transformer.modules():
        if isinstance(m, LoraLayer):
            if scale != 1.0:
                m.scale_layer(scale)
            if merge:
                m.merge()
    for p in lora_parameters(transformer):
        p.requires_grad_(trainable)
    return {"format": fmt, "rank": rank, "alpha": config.lora_alpha, "layers": len(layers), "merged": merge}
