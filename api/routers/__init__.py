"""One router per resource: tasks, health, metrics."""
