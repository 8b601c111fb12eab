"""The exporter's benchmark: ``python -m benchmarks.run`` (see ``BENCHMARKS.md``).

* :mod:`benchmarks.run`: starts the simulator, the exporter, nginx and a per-scrape
  prometheus_client server as separate processes, drives them with ``wrk`` and prints
  one table of figures against the issue's targets;
* :mod:`benchmarks.perscrape`: the reference "usual way" server, rendering with
  prometheus_client on every scrape from the same snapshot.
"""
