"""The tests (see README, "Tests")."""
