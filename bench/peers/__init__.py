"""Peers for the benchmark: the same model served on the stacks users would otherwise pick."""
