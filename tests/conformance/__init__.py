"""Conformance tests: every room-log backend must pass them unchanged."""
