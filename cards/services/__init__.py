"""Writes to cards, one module per action area; callers import from the module that owns the
service."""
