"""The Helm chart's tests: see conftest.py here."""
