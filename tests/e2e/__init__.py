"""The exporter as a process, end to end: see conftest.py here."""
