#!/usr/bin/env python3
"""Copy deploy/state-machine.asl.json into restop.yaml's DefinitionString.

    python3 tests/deploy/sync_state_machine.py

CloudFormation's DefinitionString holds the state machine inline (moto's CloudFormation reads
only that property, and it avoids an S3 upload). scripts/deploy-checks fails while the copy
and the file differ; this script rewrites the copy. The file is the source.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "deploy" / "state-machine.asl.json"
TEMPLATE = ROOT / "deploy" / "cloudformation" / "restop.yaml"
KEY = re.compile(r"^( *)DefinitionString: \|\s*$")


def embed(template_text: str, asl_text: str) -> str:
    lines = template_text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if KEY.match(line)]
    if len(starts) != 1:
        raise SystemExit(f"{TEMPLATE}: expected one 'DefinitionString: |' line, found {len(starts)}")
    start = starts[0]
    indent = len(KEY.match(lines[start]).group(1))
    end = start + 1
    # The block scalar goes on while lines are blank or indented deeper than the key.
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip(" ")) > indent):
        end += 1
    # Keep the blank lines that separate the block from what follows.
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    pad = " " * (indent + 2)
    block = [(pad + line if line.strip() else "\n") for line in asl_text.rstrip("\n").splitlines(keepends=True)]
    block[-1] = block[-1].rstrip("\n") + "\n"
    return "".join(lines[: start + 1] + block + lines[end:])


def main() -> int:
    text = TEMPLATE.read_text()
    new = embed(text, ASL.read_text())
    if new == text:
        print(f"{TEMPLATE.relative_to(ROOT)}: DefinitionString already equals {ASL.relative_to(ROOT)}")
    else:
        TEMPLATE.write_text(new)
        print(f"{TEMPLATE.relative_to(ROOT)}: DefinitionString rewritten from {ASL.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
