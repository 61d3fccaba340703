"""Distributed mode: Redis-backed limits, the task queue, workers."""
