"""Jobs: records of generation requests, their event streams, and the runner."""
