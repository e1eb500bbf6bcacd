"""Wiring: the Temporal worker that hosts the workflow and the activities."""
