"""The real registries (tests/activities/registry/conftest.py) for the end-to-end tests that
run the registry-aware engine against them (test_registry.py)."""

from tests.activities.registry.conftest import (  # noqa: F401 (fixtures)
    layouts,
    plain_registry,
    registry_tools,
    token_registry,
)
