"""Load benchmarks for budapp (see README.md); not part of the shipped package."""
