"""``bench doctor``: what is installed, which devices exist, which weights are present and verified."""
from __future__ import annotations

import json
import sys


def environment() -> dict:
    from bench.provenance import git_state, package_versions

    info = {"packages": package_versions(), "git": git_state(), "devices": ["cpu"]}
    try:
        import torch

        if torch.cuda.is_available():
            info["devices"] += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    except Exception as exc:  # noqa: BLE001 - doctor reports, never fails
        info["torch_error"] = str(exc)
    return info


def method_status(name: str, args: dict) -> dict:
    from bench.errors import BenchError
    from bench.registry import method_class

    try:
        cls = method_class(name)
    except BenchError as exc:
        return {"method": name, "status": "unavailable", "problem": exc.message, "fix": exc.fix}
    report = getattr(cls, "doctor_status", None)
    if callable(report):
        try:
            detail = report(**args) if args else report()
        except TypeError:
            detail = report()
        except Exception as exc:  # noqa: BLE001
            detail = {"status": "error", "problem": str(exc)}
        return {"method": name, **detail}
    try:
        animator = cls(**args)
        animator.check_ready()
        fingerprints = animator.weight_fingerprints()
    except BenchError as exc:
        return {"method": name, "status": "missing", "problem": exc.message, "fix": exc.fix}
    except Exception as exc:  # noqa: BLE001
        return {"method": name, "status": "error", "problem": f"{type(exc).__name__}: {exc}"}
    return {"method": name, "status": "ready", "weights": fingerprints}


def metric_status() -> list[dict]:
    from bench.metrics.weights import doctor_report

    return doctor_report()


def doctor(args) -> int:
    from bench.config import build_config
    from bench.registry import methods

    config = build_config(preset=args.preset)
    report = {"environment": environment(),
              "methods": [method_status(name, config.args_for(name)) for name in methods()],
              "metrics": metric_status()}
    if args.json:
        print(json.dumps(report, indent=1, default=str))
        return 0
    env = report["environment"]
    pk = env["packages"]
    print(f"python {pk['python']}, torch {pk.get('torch')}, diffusers {pk.get('diffusers')}, "
          f"transformers {pk.get('transformers')}, peft {pk.get('peft')}")
    print(f"git {env['git'].get('commit') or '-'}{' (dirty)' if env['git'].get('dirty') else ''}")
    print(f"devices: {', '.join(env['devices'])}")
    print(f"\nmethods (arguments from preset {args.preset!r}):")
    for m in report["methods"]:
        line = f"  {m['method']:18s} {m.get('status', '?')}"
        if m.get("problem"):
            line += f": {m['problem']}"
        print(line)
        if m.get("fix"):
            print(f"  {'':18s}   fix: {m['fix']}")
        for item in m.get("requirements", []):
            print(f"  {'':18s}   [{'x' if item.get('present') else ' '}] {item.get('what')}: {item.get('path', '')}")
    from bench.metrics.weights import format_doctor_report

    print("\nmetric weights:")
    print(format_doctor_report(report["metrics"]))
    sys.stdout.flush()
    return 0
