"""`make test-fast` (pytest --fast): every test says whether it needs servers, and --fast keeps
exactly the ones that do not (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.unit

ROOT_CONFTEST = Path(__file__).parent / "conftest.py"


@pytest.fixture
def tree(pytester: pytest.Pytester) -> pytest.Pytester:
    """A scratch test tree with the suite's own conftest and markers."""
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makeini(
        "[pytest]\naddopts = --strict-markers\nasyncio_mode = auto\n"
        "asyncio_default_fixture_loop_scope = session\nmarkers =\n"
        "    unit: fast\n    integration: servers\n    image: the image\n"
    )
    return pytester


def test_fast_keeps_the_unit_tests_and_the_closest_marker_wins(tree: pytest.Pytester) -> None:
    tree.makepyfile(
        test_mixed="""
        import pytest
        pytestmark = pytest.mark.unit
        def test_pure(): pass
        @pytest.mark.integration
        def test_needs_a_stack(): pass
        """,
        test_stack="""
        import pytest
        pytestmark = pytest.mark.integration
        def test_stack(): pass
        @pytest.mark.unit
        def test_in_process(): pass
        """,
    )
    result = tree.runpytest("--fast", "-v")
    result.assert_outcomes(passed=2, deselected=2)
    result.stdout.fnmatch_lines(["*test_mixed.py::test_pure PASSED*"])
    result.stdout.fnmatch_lines(["*test_stack.py::test_in_process PASSED*"])
    tree.runpytest().assert_outcomes(passed=4)


def test_a_test_that_says_neither_is_refused(tree: pytest.Pytester) -> None:
    tree.makepyfile(test_unmarked="def test_forgotten(): pass")
    result = tree.runpytest("--fast")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_forgotten: mark it unit (no servers) or integration*"])


def test_a_unit_test_asking_for_a_server_is_refused(tree: pytest.Pytester) -> None:
    tree.makepyfile(
        test_liar="""
        import pytest
        pytestmark = pytest.mark.unit
        @pytest.fixture
        def dev_env(): return object()
        @pytest.fixture
        def dev_client(dev_env): return dev_env
        def test_talks_to_temporal(dev_client): pass
        """
    )
    result = tree.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_talks_to_temporal: marked unit but uses dev_env*"])
