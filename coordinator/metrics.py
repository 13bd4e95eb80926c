"""Prometheus metrics: jobs and on-chain tasks by status, dispatch latency, live miners."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from chainclient.amounts import PLANCK_PER_CAI

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from coordinator.chain import ChainStatus
    from coordinator.engine import Engine

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JOB_STATUSES = ("queued", "running", "succeeded", "failed")
ATTEMPT_STATES = (
    "assigned",
    "delivered",
    "uploaded",
    "confirmed",
    "released",
    "missed",
    "invalid",
    "dropped",
)


_Family = TypeVar("_Family", GaugeMetricFamily, CounterMetricFamily)


def _labelled(family: _Family, samples: Iterable[tuple[str, float]]) -> _Family:
    """`family` with one sample per (label value, value)."""
    for label, value in samples:
        family.add_metric([label], value)
    return family


class _EngineCollector(Collector):
    def __init__(self, engine: Engine, chain: Callable[[], ChainStatus | None]) -> None:
        self._engine = engine
        self._chain = chain

    def collect(self) -> Iterator[Metric]:
        e = self._engine
        jobs, attempts = e.job_counts(), e.attempt_counts()
        yield _labelled(
            GaugeMetricFamily(
                "cuckoo_coordinator_jobs", "Open jobs in memory by status", labels=["status"]
            ),
            ((s, jobs.get(s, 0)) for s in JOB_STATUSES),
        )
        yield _labelled(
            GaugeMetricFamily(
                "cuckoo_coordinator_tasks",
                "Open on-chain tasks (attempts) by state",
                labels=["state"],
            ),
            ((s, attempts.get(s, 0)) for s in ATTEMPT_STATES),
        )
        yield _labelled(
            CounterMetricFamily(
                "cuckoo_coordinator_events", "Job and task events since start", labels=["event"]
            ),
            sorted(e.counters.items()),
        )
        yield GaugeMetricFamily(
            "cuckoo_coordinator_miners_live",
            "Active miners polling now or recently",
            value=len(e.live_miners()),
        )
        yield GaugeMetricFamily(
            "cuckoo_coordinator_miners_registered",
            "Registered miners (any status)",
            value=len(e.registry_records()),
        )
        yield GaugeMetricFamily(
            "cuckoo_coordinator_loop_lag_seconds",
            "How late the event loop ran a 1 s timer last time",
            value=e.loop_lag_s,
        )
        yield GaugeMetricFamily(
            "cuckoo_coordinator_store_flush_seconds",
            "Duration of the last group commit awaited before handing tasks out",
            value=e.publish_flush_s,
        )
        status = self._chain()
        if status is not None:
            yield GaugeMetricFamily(
                "cuckoo_coordinator_chain_head", "Last block head processed", value=status.head or 0
            )
            yield _labelled(
                CounterMetricFamily(
                    "cuckoo_coordinator_chain_items", "Items submitted on chain", labels=["kind"]
                ),
                (
                    ("commit", status.commits_submitted),
                    ("settle", status.settles_submitted),
                    ("dispute", status.disputes_submitted),
                    ("spec", status.specs_submitted),
                ),
            )
            yield GaugeMetricFamily(
                "cuckoo_coordinator_chain_cycle_seconds",
                "Duration of the last per-block cycle",
                value=status.cycle_s,
            )
            if status.operator_free is not None and status.operator_reserved is not None:
                yield _labelled(
                    GaugeMetricFamily(
                        "cuckoo_coordinator_operator_balance_cai",
                        "The operator's balance at the last head: free, and reserved (escrowed "
                        "task prices and deposits)",
                        labels=["kind"],
                    ),
                    (
                        ("free", status.operator_free / PLANCK_PER_CAI),
                        ("reserved", status.operator_reserved / PLANCK_PER_CAI),
                    ),
                )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.dispatch_latency = Histogram(
            "cuckoo_coordinator_dispatch_latency_seconds",
            "From a job's acceptance by the API to a miner holding its task",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )

    def attach(self, engine: Engine, chain: Callable[[], ChainStatus | None]) -> None:
        self.registry.register(_EngineCollector(engine, chain))

    def observe_dispatch(self, seconds: float) -> None:
        self.dispatch_latency.observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
