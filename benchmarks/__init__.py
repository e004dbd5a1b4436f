"""Benchmarks: the raw transport floor and, on top of it, Baton's own numbers."""
