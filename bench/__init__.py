"""The benchmarks (`make bench`): never part of the tests; run as `python -m bench.run`."""
