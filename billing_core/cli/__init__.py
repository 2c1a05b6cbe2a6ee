"""``python -m billing_core``: every command, one entry point."""
