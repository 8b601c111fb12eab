"""The exporter's benchmark: ``python -m benchmarks.run`` (see ``BENCHMARKS.md``).

* :mod:`benchmarks.run`: the command: argument parsing and the order of the measures;
* :mod:`benchmarks.config`: the organisations simulated and how long each measure runs;
* :mod:`benchmarks.procs`: child processes pinned to CPUs, loopback HTTP;
* :mod:`benchmarks.servers`: the simulator, the exporter (its log lines read as they
  come), nginx and the per-scrape server, each started as its own process;
* :mod:`benchmarks.polls`: polls of an organisation, per poll the requests and wall
  time the exporter logs; the ``poll_*`` rows' figures;
* :mod:`benchmarks.scrape`: the big organisation's CPU, memory and ``/metrics`` under
  ``wrk`` (:mod:`benchmarks.wrk`) against nginx and prometheus_client;
* :mod:`benchmarks.report`: the results, the table's rows made from them, and how;
* :mod:`benchmarks.perscrape`: the reference "usual way" server, rendering with
  prometheus_client on every scrape from the same snapshot.
"""
