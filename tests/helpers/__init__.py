"""Shared helpers of the test suite (no test module imports another)."""
