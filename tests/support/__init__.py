"""Helpers shared by the test suites: finding or starting the servers they need."""
