"""Prometheus exporter for Northflank invoices.

Data flows one way: settings -> client -> poller -> snapshot -> exposition -> server.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("northflank-exporter")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
