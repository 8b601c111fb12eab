"""The container image's tests: see conftest.py here."""
