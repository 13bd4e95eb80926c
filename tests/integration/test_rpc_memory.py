"""One WebSocket client that never reads cannot grow the node's memory without bound.

The client floods `state_getMetadata` (an 84.6 KB answer each) and reads nothing. The node queues
the answers until the connection's unsent bytes pass its limit, then drops that connection; the
node's peak resident memory (VmHWM, reset before the flood) grows by less than 64 MiB, and the
node still answers other clients.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import websocket

from tests.integration.conftest import NodeProcess, WsClient, rpc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MIB = 1024 * 1024
MAX_GROWTH = 64 * MIB
FLOOD_REQUESTS = 5000  # 5000 answers of 84.6 KB: 423 MB if all were queued
CLOSE_TIMEOUT_S = 30.0


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> None:
    """Set the process's VmHWM (peak RSS) back to its current RSS (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def flood_without_reading(url: str, requests: int) -> tuple[int, str]:
    """Send `requests` metadata requests on one WebSocket and never read an answer; then wait
    for the node to drop the connection. Returns (requests sent, how it ended)."""
    ws = websocket.create_connection(
        url,
        timeout=CLOSE_TIMEOUT_S,
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024),),
    )
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "state_getMetadata", "params": []})
    sent = 0
    try:
        for _ in range(requests):
            ws.send(request)
            sent += 1
    except (OSError, websocket.WebSocketException) as exc:
        return sent, f"send failed: {exc!r}"
    try:  # every request is out: read until the node closes (or the deadline)
        while True:
            ws.recv()
    except websocket.WebSocketTimeoutException:
        return sent, "still open"
    except (OSError, websocket.WebSocketException) as exc:
        return sent, f"closed: {exc!r}"
    finally:
        ws.close()


def test_an_unread_websocket_cannot_grow_the_node_by_more_than_64_mib(
    node_factory: Callable[..., NodeProcess],
) -> None:
    node = node_factory(prometheus=False)
    pid = node.proc.pid
    node.wait_for_block(1)
    metadata = rpc(node.http_url, "state_getMetadata")
    assert len(metadata) > 80_000  # the answer this test counts on
    time.sleep(0.5)
    reset_peak_rss(pid)
    before = _status_kib(pid, "VmRSS") * 1024

    sent, ended = flood_without_reading(node.ws_url, FLOOD_REQUESTS)

    peak = _status_kib(pid, "VmHWM") * 1024
    growth = peak - before
    print(
        f"sent {sent} requests; {ended}; RSS {before / MIB:.1f} MiB, peak +{growth / MIB:.1f} MiB"
    )
    assert ended != "still open", f"the node kept the unread connection open ({sent} requests)"
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.1f} MiB"
    node.assert_running()
    assert rpc(node.http_url, "system_health")["isSyncing"] is False
    with WsClient(node.ws_url) as other:
        assert other.result("state_getMetadata") == metadata
