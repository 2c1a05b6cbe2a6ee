"""Deterministic demo data for a first run and for tests and benchmarks."""
