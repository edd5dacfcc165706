"""Benchmarks: a generated local site, a server for it, and a timed crawl of it."""
