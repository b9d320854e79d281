"""Public data sets the demo and benchmarks load."""
