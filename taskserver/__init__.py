"""The task server: time-shares the ingesters and the skim task.

- :mod:`taskserver.base`: the :class:`~taskserver.base.Task` base class, the
  contract with every task;
- :mod:`taskserver.server`: :class:`~taskserver.server.TaskServer`, the
  long-running scheduler (``hepcat taskserver``);
- :mod:`taskserver.runner`: running tasks until drained (``hepcat ingest
  --once``) and serving until a signal;
- :mod:`taskserver.dispatch`: which due task runs next;
- :mod:`taskserver.leases`: leases in the catalogue, across processes;
- :mod:`taskserver.runs`: one run, its retries and its ``task_run`` record;
- :mod:`taskserver.metrics`: Prometheus metrics.

Nothing is imported here, so that tasks can import :mod:`taskserver.base`
without the scheduler's dependencies.
"""
