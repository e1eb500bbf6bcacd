"""The `ips` command."""
