"""Write the README's generated tables from stored scores: every block between
``<!-- generated: bench table ARGS -->`` and ``<!-- end generated -->`` is replaced by the output of
``python -m bench table ARGS --format md``. Nothing in those blocks is typed by hand.

    python scripts/readme_tables.py            # rewrite README.md in place
    python scripts/readme_tables.py --check    # exit 1 if README.md is not what the stored scores give
"""
from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- generated: bench table (?P<args>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def table(args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "bench", "table", *shlex.split(args), "--format", "md"],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"python -m bench table {args} failed:\n{proc.stderr.strip()}")
    return proc.stdout.strip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args()
    path = Path(args.readme)
    text = path.read_text()
    blocks = list(BLOCK.finditer(text))
    if not blocks:
        print(f"no generated blocks in {path}", file=sys.stderr)
        return 1
    new = BLOCK.sub(lambda m: m.group(1) + table(m.group("args")) + m.group(4), text)
    if args.check:
        if new != text:
            print(f"{path}: generated tables differ from the stored scores; run python scripts/readme_tables.py",
                  file=sys.stderr)
            return 1
        print(f"{path}: {len(blocks)} generated tables match the stored scores")
        return 0
    path.write_text(new)
    print(f"{path}: {len(blocks)} generated tables rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
