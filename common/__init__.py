"""Shared models, settings and Temporal wiring; imports no other first-party package."""
