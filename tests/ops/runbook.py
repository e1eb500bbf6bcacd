"""docs/operations.md as data: its fenced command blocks, and a way to run one as an operator would.

Blocks are tagged in the info string: ```` ```sh runbook:<id> ```` blocks are run by the
tests/ops/test_runbook_*.py modules; ```` ```sh not-run:<reason> ```` blocks need a real cluster.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "operations.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.M | re.S)
TAG = re.compile(r"^(?P<lang>sh|bash) (?P<kind>runbook|not-run):(?P<name>[a-z0-9-]+)$")
INLINE = re.compile(r"`(temporal [^`]+)`")


@dataclass(frozen=True)
class Block:
    kind: str  # "runbook" or "not-run"
    name: str
    script: str

    def commands(self) -> list[str]:
        """Logical command lines: continuations joined, whitespace collapsed."""
        joined = re.sub(r"\\\n\s*", " ", self.script)
        return [" ".join(line.split()) for line in joined.splitlines() if line.strip()]


def fenced(text: str) -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


def blocks(text: str | None = None) -> list[Block]:
    text = RUNBOOK.read_text() if text is None else text
    out = []
    for info, body in fenced(text):
        m = TAG.match(info)
        if m:
            out.append(Block(m["kind"], m["name"], body))
    return out


def runbook_blocks() -> dict[str, Block]:
    return {b.name: b for b in blocks() if b.kind == "runbook"}


def inline_temporal_commands(text: str | None = None) -> list[str]:
    """`temporal ...` code spans outside fenced blocks (the prose and the tctl table)."""
    text = RUNBOOK.read_text() if text is None else text
    prose = FENCE.sub("", text)
    return [" ".join(m.split()) for m in INLINE.findall(prose)]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Runner:
    """Runs runbook blocks with bash (-euo pipefail), the operator's environment, no TTY."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        bin_dir = str(Path(sys.executable).parent)  # temporal, kubectl from the venv
        self.env = {**os.environ, **env, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
        self.cwd = cwd
        self.blocks = runbook_blocks()
        self.exercised: set[str] = set()

    async def run(self, name: str, *, check: bool = True, **env: str) -> Result:
        block = self.blocks[name]
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            block.script,
            env={**self.env, **env},
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"runbook:{name} did not finish in 60 s") from None
        self.exercised.add(name)
        result = Result(proc.returncode or 0, out.decode(), err.decode())
        if check:
            shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
            assert result.returncode == 0, (
                f"runbook:{name} ({shown}) exited {result.returncode}\n"
                f"--- script\n{block.script}--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
            )
        return result
