"""The import graph holds the layering: bench core <- bench.models <- {everanimate, baselines}.

- bench core (every ``bench`` module outside ``bench.models``) imports neither ``bench.models``'s
  dependants nor ``everanimate`` / ``baselines``; it reaches methods only through the registry's lazy
  ``"module:Class"`` strings;
- ``bench.models`` imports no ``everanimate`` / ``baselines``;
- ``everanimate`` imports no ``baselines``, ``baselines`` no ``everanimate``.

Every import statement counts, at module level or inside a function.
"""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def layer(module: str) -> str | None:
    top = module.split(".")[0]
    if top == "bench":
        return "bench.models" if module.startswith("bench.models") else "bench"
    if top in ("everanimate", "baselines"):
        return top
    return None


FORBIDDEN = {
    "bench": {"everanimate", "baselines"},
    "bench.models": {"everanimate", "baselines"},
    "everanimate": {"baselines"},
    "baselines": {"everanimate"},
}


def imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def violations() -> list[str]:
    found = []
    for package in ("bench", "everanimate", "baselines"):
        for path in sorted((REPO / package).rglob("*.py")):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            here = layer(module)
            for lineno, target in imports(path):
                there = layer(target)
                if there in FORBIDDEN[here]:
                    found.append(f"{path.relative_to(REPO)}:{lineno} ({here}) imports {target} ({there})")
    return found


def test_no_import_goes_up_or_across_the_layers():
    assert violations() == []


def test_the_check_sees_function_level_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from everanimate import rfm\n    import baselines.wan_animate\n")
    assert [t for _, t in imports(sample)] == ["everanimate", "baselines.wan_animate"]


def test_one_sha256_file():
    definitions = [str(p.relative_to(REPO)) for package in ("bench", "everanimate", "baselines")
                   for p in (REPO / package).rglob("*.py") if "def sha256_file(" in p.read_text()]
    assert definitions == ["bench/sample.py"]  # bench core: the run store, data and weights all use it
