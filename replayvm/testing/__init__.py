"""Recordings as bug reports and regression tests: expectations and the pytest plugin."""
