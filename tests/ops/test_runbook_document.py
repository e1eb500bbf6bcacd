"""docs/operations.md itself: every block tagged, inline commands backed by a block that runs,
the search-attribute registration as common declares it, and every `runbook:` block run by one of
the integration modules (test_runbook_*.py, each against a real engine and kubesim)."""

from __future__ import annotations

import re

import pytest

from common.temporal import SearchAttr

from .conftest import TYPE_NAMES
from .runbook import RUNBOOK, blocks, inline_temporal_commands, runbook_blocks

pytestmark = pytest.mark.unit


def test_every_shell_block_is_tagged() -> None:
    from .runbook import TAG, fenced

    untagged = [info for info, _ in fenced(RUNBOOK.read_text()) if not TAG.match(info)]
    assert untagged == [], "tag each block `sh runbook:<id>` or `sh not-run:<reason>`"
    names = [b.name for b in blocks() if b.kind == "runbook"]
    assert len(names) == len(set(names)), "runbook ids must be unique"


def test_blocks_that_are_not_run_have_no_temporal_command() -> None:
    for block in blocks():
        if block.kind == "not-run":
            assert not any(c.startswith("temporal ") for c in block.commands()), block.name


def test_inline_temporal_commands_start_a_tested_command() -> None:
    """The tctl table and the prose show only commands that a runbook block runs."""
    tested = [c for b in runbook_blocks().values() for c in b.commands()]
    inline = inline_temporal_commands()
    assert len(inline) >= 12
    for span in inline:
        assert any(c.startswith(span) for c in tested), f"`{span}` is not run by any block"


def test_registration_block_matches_common() -> None:
    """The runbook registers exactly common.temporal.SearchAttr, with the right types."""
    registered: dict[str, str] = {}
    for cmd in runbook_blocks()["register-search-attributes"].commands():
        kind = re.search(r"--type (\w+)", cmd)
        assert kind is not None, cmd
        for name in re.findall(r"--name (\w+)", cmd):
            registered[name] = kind.group(1)
    assert registered == {a.value: TYPE_NAMES[a.indexed_type] for a in SearchAttr}


def test_the_modules_run_every_block_between_them() -> None:
    """Each integration module's last test checks that it ran exactly its BLOCKS."""
    from .test_runbook_finished_tasks import BLOCKS as FINISHED
    from .test_runbook_running_tasks import BLOCKS as RUNNING
    from .test_runbook_schedules import BLOCKS as SCHEDULES
    from .test_runbook_setup import BLOCKS as SETUP

    declared = FINISHED | RUNNING | SCHEDULES | SETUP
    assert declared == set(runbook_blocks()), set(runbook_blocks()) ^ declared
