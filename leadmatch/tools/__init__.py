"""Tools over the library: accuracy evaluation, search benchmarks and the demo."""
