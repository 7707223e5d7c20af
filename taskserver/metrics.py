"""Prometheus metrics of a task server, in a registry of its own.

Each :class:`TaskMetrics` has its own :class:`~prometheus_client.CollectorRegistry`
rather than the process-wide default one, so that a process (or a test) may
build several task servers. The web server or a scrape endpoint exposes
:meth:`TaskMetrics.text`.

Metrics (label ``task`` is the task's name):

- ``hepcat_task_runs_total{task, outcome}``: runs, by outcome (ok, failed,
  cancelled);
- ``hepcat_task_items_total{task}``: records handled;
- ``hepcat_task_errors_total{task, kind}``: failed runs (``failed``) and
  transient database errors that were retried (``transient``);
- ``hepcat_task_lease_busy_total{task}``: runs skipped because another
  instance held the task's lease;
- ``hepcat_task_backlog{task}``: the backlog reported by the last run (NaN:
  unknown);
- ``hepcat_task_last_success_timestamp_seconds{task}``: Unix time of the end
  of the last successful run;
- ``hepcat_task_run_duration_seconds{task}``: how long runs take.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from taskserver.runs import FAILED, OK, OUTCOMES, RunResult

#: Run-duration buckets, in seconds: runs are meant to be short bites.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class TaskMetrics:
    """The metrics of the tasks named *task_names*, in a registry of their own."""

    def __init__(self, task_names: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        self._build()
        for name in task_names:
            self._initialise(name)

    def _build(self) -> None:
        registry = self.registry
        self.runs = Counter(
            "hepcat_task_runs",
            "Task runs, by outcome.",
            ["task", "outcome"],
            registry=registry,
        )
        self.items = Counter(
            "hepcat_task_items",
            "Records handled by a task.",
            ["task"],
            registry=registry,
        )
        self.errors = Counter(
            "hepcat_task_errors",
            "Failed runs (kind=failed) and retried transient database errors "
            "(kind=transient).",
            ["task", "kind"],
            registry=registry,
        )
        self.lease_busy = Counter(
            "hepcat_task_lease_busy",
            "Runs skipped because another task server held the lease.",
            ["task"],
            registry=registry,
        )
        self._build_gauges()

    def _build_gauges(self) -> None:
        registry = self.registry
        self.backlog = Gauge(
            "hepcat_task_backlog",
            "Backlog after the last run (NaN: unknown).",
            ["task"],
            registry=registry,
        )
        self.last_success = Gauge(
            "hepcat_task_last_success_timestamp_seconds",
            "Unix time at which the last successful run ended.",
            ["task"],
            registry=registry,
        )
        self.duration = Histogram(
            "hepcat_task_run_duration_seconds",
            "Duration of task runs.",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def _initialise(self, name: str) -> None:
        # Series that exist from the start, so that rates and alerts work
        # before the first failure.
        for outcome in OUTCOMES:
            self.runs.labels(task=name, outcome=outcome)
        for kind in ("failed", "transient"):
            self.errors.labels(task=name, kind=kind)
        self.items.labels(task=name)
        self.lease_busy.labels(task=name)
        self.duration.labels(task=name)

    def observe(self, result: RunResult) -> None:
        """Count one finished run."""
        name = result.task_name
        self.runs.labels(task=name, outcome=result.outcome).inc()
        self.items.labels(task=name).inc(max(result.items, 0))
        self.duration.labels(task=name).observe(result.seconds)
        if result.attempts > 1:
            self.errors.labels(task=name, kind="transient").inc(result.attempts - 1)
        if result.outcome == FAILED:
            self.errors.labels(task=name, kind="failed").inc()
            return
        backlog = float("nan") if result.backlog is None else result.backlog
        self.backlog.labels(task=name).set(backlog)
        if result.outcome == OK:
            self.last_success.labels(task=name).set(result.ended.timestamp())

    def observe_busy(self, task_name: str) -> None:
        """Count a run skipped because another owner held the lease."""
        self.lease_busy.labels(task=task_name).inc()

    def text(self) -> bytes:
        """The metrics in the Prometheus text exposition format."""
        return generate_latest(self.registry)
