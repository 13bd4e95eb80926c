"""A web page of another origin reads a balance from the node in headless Chromium, over HTTP
(fetch POST, with its CORS preflight) and over WebSocket, when `--rpc-cors` allows its origin,
and is refused on both when it does not.

Two small aiohttp servers on 127.0.0.1 serve the same page on two ports, so two origins; the node
runs with `--rpc-cors` naming only the first. The second one (http://127.0.0.1:PORT) is one the
dev chain's default would allow: the flag replaces the default. Chromium is Debian's
/usr/bin/chromium driven by Playwright; the test is skipped without either.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from chain.crypto import ss58_decode
from chain.hashing import blake2_128_concat, storage_prefix
from tests.integration.conftest import NodeProcess, rpc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CHROMIUM = "/usr/bin/chromium"
ALICE = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
PAGE_TIMEOUT_MS = 15_000

PAGE = """<!doctype html>
<html><head><title>balance</title></head><body>
<script>
async function overHttp(url, key) {
  try {
    const r = await fetch(url, {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({jsonrpc: '2.0', id: 1, method: 'state_getStorage', params: [key]}),
    });
    return (await r.json()).result;
  } catch (err) {
    return 'refused: ' + err;
  }
}
function overWebSocket(url, key) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify(
      {jsonrpc: '2.0', id: 2, method: 'state_getStorage', params: [key]}));
    ws.onmessage = (msg) => { resolve(JSON.parse(msg.data).result); ws.close(); };
    ws.onerror = () => resolve('refused');
  });
}
async function readBalance(node, key) {
  return {http: await overHttp(node.http, key), ws: await overWebSocket(node.ws, key)};
}
</script></body></html>
"""


def account_key(address: str) -> str:
    return (
        "0x"
        + (storage_prefix("System", "Account") + blake2_128_concat(ss58_decode(address)[0])).hex()
    )


def free_balance(account_info_hex: str) -> int:
    raw = bytes.fromhex(account_info_hex[2:])
    return int.from_bytes(raw[16:32], "little")  # after nonce, consumers, providers, sufficients


async def _page(_request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


class PageServers:
    """aiohttp serving PAGE on several ports of 127.0.0.1, on its own loop in a thread."""

    def __init__(self, count: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.runners: list[web.AppRunner] = []
        self.origins: list[str] = []
        self._count = count
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _start(self) -> None:
        for _ in range(self._count):
            app = web.Application()
            app.router.add_get("/", _page)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.runners.append(runner)
            self.origins.append(f"http://127.0.0.1:{runner.addresses[0][1]}")

    def __enter__(self) -> PageServers:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        for runner in self.runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def test_a_page_reads_a_balance_only_from_an_origin_rpc_cors_allows(
    browser: Any, node_factory: Callable[..., NodeProcess]
) -> None:
    key = account_key(ALICE)
    with PageServers(2) as pages:
        allowed, other = pages.origins
        node = node_factory(
            prometheus=False, extra=["--rpc-cors", f"{allowed},https://example.org"]
        )
        expected = rpc(node.http_url, "state_getStorage", [key])
        assert free_balance(expected) > 0
        endpoints = {"http": node.http_url, "ws": node.ws_url}

        def read_from(origin: str) -> dict[str, str]:
            page = browser.new_page()
            try:
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                page.goto(origin + "/")
                return page.evaluate("([node, key]) => readBalance(node, key)", [endpoints, key])  # type: ignore[no-any-return]
            finally:
                page.close()

        assert read_from(allowed) == {"http": expected, "ws": expected}
        refused = read_from(other)
        assert refused["http"].startswith("refused"), refused
        assert refused["ws"] == "refused", refused
        node.assert_running()
