"""Benchmarks: throughput and latency figures printed as a table; nothing timed is asserted."""
