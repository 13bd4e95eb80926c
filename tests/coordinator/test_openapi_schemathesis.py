"""Property tests of the HTTP API against its own /openapi.json (schemathesis): a live app with
a fake chain and instant miners; no 5xx, responses match the documented schemas."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from coordinator.openapi import build_openapi  # noqa: E402
from coordinator.testing import InstantMiner  # noqa: E402
from tests.coordinator.harness import MODELS, running  # noqa: E402

pytestmark = pytest.mark.slow

API_KEY = "test-key-1"
schema = schemathesis.openapi.from_dict(build_openapi(list(MODELS), bearer_auth=True))


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    ready = threading.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        async with running(
            data_dir,
            request_timeout_s=60.0,
            api_keys=frozenset({API_KEY}),
            task_timeout_blocks=1000,  # 20 s of fake blocks: no deadline misses on a busy machine
        ) as h:
            miner_stop = asyncio.Event()
            miners = [
                InstantMiner(
                    h.url,
                    k,
                    wait_s=1.0,
                    staker=bytes([i + 1]) * 32,
                    on_result=h.chain.submit_result,
                )
                for i, k in enumerate(h.keys)
            ]
            tasks = [asyncio.create_task(m.run(miner_stop)) for m in miners]
            box["url"], box["loop"], box["stop"] = h.url, asyncio.get_running_loop(), h.stop
            stopped = asyncio.Event()
            box["stopped"] = stopped
            ready.set()
            await stopped.wait()
            miner_stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield str(box["url"])
    finally:
        loop = box["loop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        stopped = box["stopped"]
        assert isinstance(stopped, asyncio.Event)
        loop.call_soon_threadsafe(stopped.set)
        thread.join(30)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_openapi(case: schemathesis.Case, live_url: str) -> None:
    case.call_and_validate(base_url=live_url, headers={"Authorization": f"Bearer {API_KEY}"})
