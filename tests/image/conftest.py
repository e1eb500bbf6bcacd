"""The image tests print what they measured (build time, image size) in the run's summary."""

from __future__ import annotations

from typing import Any

from tests.image import imagelib


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if imagelib.FIGURES:
        terminalreporter.section("container image")
        for line in imagelib.FIGURES:
            terminalreporter.write_line(line)
