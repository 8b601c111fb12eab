"""Prometheus exporter for Northflank invoices.

Data flows one way, each arrow a plain call with typed data::

    settings (View) -> fetch (Plan -> Answers, through client and paging)
        -> snapshot.build -> metrics (families) -> encoding (bytes)
        -> bodies (Published) -> server

``poller`` schedules polls and publishes an ``Outcome``; ``cli`` wires the parts. The
README's "How the code is laid out" has the whole map.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("northflank-exporter")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
