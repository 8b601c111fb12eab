"""The simulator's own tests: see conftest.py here."""
