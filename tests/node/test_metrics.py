"""Prometheus endpoint: Substrate's metric names with the values the node set."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from node.metrics import Metrics

pytestmark = pytest.mark.timeout(30)


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed:\n{text}")


def test_metrics_endpoint_exposes_substrate_names() -> None:
    async def main() -> None:
        metrics = Metrics()
        port = await metrics.start("127.0.0.1", 0)
        try:
            metrics.set_best(42)
            metrics.set_finalized(40)
            metrics.set_ready_transactions(7)
            metrics.set_peers(3)
            metrics.set_leaves(2)
            metrics.inc_validations_finished()
            metrics.inc_validations_finished(4)
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/metrics") as resp,
            ):
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                text = await resp.text()
        finally:
            await metrics.stop()
        assert _sample(text, 'substrate_block_height{status="best"}') == 42
        assert _sample(text, 'substrate_block_height{status="finalized"}') == 40
        assert _sample(text, "substrate_ready_transactions_number") == 7
        assert _sample(text, "substrate_sub_libp2p_peers_count") == 3
        assert _sample(text, "substrate_number_leaves") == 2
        assert _sample(text, "substrate_sub_txpool_validations_finished") == 5

    asyncio.run(main())


def test_registries_are_separate() -> None:
    a, b = Metrics(), Metrics()
    a.set_best(5)
    assert b'substrate_block_height{status="best"} 0.0' in b.render()
    assert b'substrate_block_height{status="best"} 5.0' in a.render()
    with pytest.raises(ValueError, match="only increases"):
        a.inc_validations_finished(-1)
