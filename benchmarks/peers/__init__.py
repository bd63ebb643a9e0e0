"""Peer implementations timed beside identi by the benchmarks, each in its own environment."""
