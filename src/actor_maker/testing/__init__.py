"""Helpers for tests and local trials: real servers on loopback, no global state."""
