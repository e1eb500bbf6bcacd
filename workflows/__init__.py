"""Deterministic orchestration only: no I/O, no Kubernetes, no HTTP."""
