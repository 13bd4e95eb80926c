"""The coordinator daemon: HTTP API, engine and chain service under one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from substrateinterface import Keypair

from chainclient.accounts import ss58
from coordinator.api import ApiConfig, ApiContext, Health, build_app
from coordinator.auth import MinerAuth
from coordinator.chain import ChainService
from coordinator.engine import Engine, EngineConfig
from coordinator.metrics import Metrics
from coordinator.store import Store

log = logging.getLogger(__name__)

CHAIN_STALE_S = 15.0
ADDR_FILE = "coordinator.addr"
LISTEN_BACKLOG = 1024  # bursts of new miner/app connections must not overflow the accept queue


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    chain_url: str
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    api: ApiConfig = dataclasses.field(default_factory=ApiConfig)
    engine: EngineConfig = dataclasses.field(default_factory=EngineConfig)
    shutdown_timeout_s: float = 3.0


class Coordinator:
    """`run()` serves until `request_stop()` (wired to SIGINT/SIGTERM by the CLI)."""

    def __init__(
        self,
        cfg: Config,
        operator: Keypair,
        staker: bytes,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.operator = operator
        self.staker = staker
        self.store = Store(cfg.data_dir)
        self.metrics = Metrics()
        self.engine = Engine(
            cfg.engine,
            self.store,
            coordinator=staker,
            rng=rng,
            on_dispatch=self.metrics.observe_dispatch,
        )
        self.chain = ChainService(cfg.chain_url, operator, self.engine)
        self.metrics.attach(self.engine, lambda: self.chain.status)
        self.url: str | None = None
        self._stopping = asyncio.Event()

    def request_stop(self) -> None:
        self._stopping.set()

    def health(self) -> Health:
        st = self.chain.status
        reachable = st.head_at is not None and time.monotonic() - st.head_at < CHAIN_STALE_S
        ready = reachable and st.registered
        body: dict[str, Any] = {
            "status": "ok" if ready else "unavailable",
            "ready": ready,
            "chain": {
                "url": self.cfg.chain_url,
                "reachable": reachable,
                "head": st.head,
                "last_error": st.last_error,
            },
            "registered": st.registered,
            "coordinator_status": st.coordinator_status,
            "coordinator": ss58(self.staker),
            "operator": ss58(bytes(self.operator.public_key)),
            "miners_live": len(self.engine.live_miners()),
            "miners_registered": len(self.engine.registry_records()),
            "operator_balance": None
            if st.operator_free is None
            else {
                "free": str(st.operator_free),
                "reserved": str(st.operator_reserved or 0),
                "for_new_tasks": str(max(self.engine.available_funds() or 0, 0)),
            },
        }
        return Health(ready, body)

    async def run(self) -> None:
        self.store.open()
        runner: web.AppRunner | None = None
        try:
            loaded = self.engine.load()
            if loaded:
                log.info("resumed %d open jobs from %s", loaded, self.store.path)
            ctx = ApiContext(
                self.cfg.api,
                self.engine,
                MinerAuth(self.engine, lambda: int(time.time() * 1000)),
                self.metrics,
                self.health,
            )
            runner = web.AppRunner(
                build_app(ctx), access_log=None, shutdown_timeout=self.cfg.shutdown_timeout_s
            )
            await runner.setup()
            site = web.TCPSite(runner, self.cfg.host, self.cfg.port, backlog=LISTEN_BACKLOG)
            await site.start()
            host, port = _bound(runner)
            self.url = f"http://{host}:{port}"
            _write_addr(self.cfg.data_dir / ADDR_FILE, self.url)
            log.info("coordinator listening on %s (chain %s)", self.url, self.cfg.chain_url)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.engine.run(self._stopping), name="engine")
                tg.create_task(self.chain.run(self._stopping), name="chain")
                await self._stopping.wait()
        finally:
            if runner is not None:
                await runner.cleanup()
            self.engine.sync()
            self.store.close()
            with_suppress_unlink(self.cfg.data_dir / ADDR_FILE)
            log.info("coordinator stopped")


def _bound(runner: web.AppRunner) -> tuple[str, int]:
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            return str(addr[0]), int(addr[1])
    raise RuntimeError("the HTTP server has no bound address")


def _write_addr(path: Path, url: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(url + "\n")
    os.replace(tmp, path)


def with_suppress_unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
