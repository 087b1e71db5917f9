"""Benchmarks on synthetic province- and national-scale data (see bench/README.md)."""
