"""Prometheus metrics under Substrate's names, served on GET /metrics.

The metrics live in the node's own `CollectorRegistry`, so several nodes in one process (tests)
do not collide. Names follow polkadot-sdk so that existing Substrate dashboards work:

    substrate_block_height{status="best"|"finalized"}   gauge
    substrate_ready_transactions_number                 gauge
    substrate_sub_txpool_validations_finished           gauge, only ever increased (see below)
    substrate_number_leaves                             gauge
    substrate_sub_libp2p_peers_count                    gauge

Substrate's validations counter carries no `_total` suffix, but prometheus_client always appends
one to counters; it is kept as a monotonic gauge so that the exposed name is Substrate's.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from node.httpserve import start_app

__all__ = ["Metrics"]

log = logging.getLogger(__name__)


class Metrics:
    """The node's metrics and their HTTP endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.block_height = self._gauge(
            "substrate_block_height", "Block height info of the chain", "status"
        )
        self.ready_transactions = self._gauge(
            "substrate_ready_transactions_number", "Number of transactions in the ready queue"
        )
        self.validations_finished = self._gauge(
            "substrate_sub_txpool_validations_finished",
            "Total number of transactions that finished validation",
        )
        self.leaves = self._gauge(
            "substrate_number_leaves", "Number of known chain leaves (aka forks)"
        )
        self.peers = self._gauge("substrate_sub_libp2p_peers_count", "Number of connected peers")
        self.block_height.labels(status="best").set(0)
        self.block_height.labels(status="finalized").set(0)
        self._runner: web.AppRunner | None = None

    def _gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def set_best(self, n: int) -> None:
        self.block_height.labels(status="best").set(n)

    def set_finalized(self, n: int) -> None:
        self.block_height.labels(status="finalized").set(n)

    def set_ready_transactions(self, n: int) -> None:
        self.ready_transactions.set(n)

    def inc_validations_finished(self, n: int = 1) -> None:
        if n < 0:
            raise ValueError("validations_finished only increases")
        self.validations_finished.inc(n)

    def set_leaves(self, n: int) -> None:
        self.leaves.set(n)

    def set_peers(self, n: int) -> None:
        self.peers.set(n)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    async def _handle_metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._handle_metrics)
        return app

    async def start(self, host: str, port: int) -> int:
        """Serve GET /metrics on host:port (0 picks a free port); returns the bound port."""
        if self._runner is not None:
            raise RuntimeError("metrics server already started")
        self._runner, bound = await start_app(self.app(), host, port)
        log.info("Prometheus metrics on http://%s:%d/metrics", host, bound)
        return bound

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
