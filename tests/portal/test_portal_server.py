"""`cuckoo-portal`'s server and build step, without a browser or npm: static files from a dist
folder, `config.json` naming the node, and when the bundle counts as stale."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from portal_server.build import BuildError, is_stale
from portal_server.cli import main, make_server, serve_in_thread
from portal_server.history import History


def _dist(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    dist.mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>portal</title>")
    (dist / "app.js").write_text("console.log(1)")
    return dist


def _get(url: str) -> tuple[int, Any, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_serves_the_bundle_and_the_node_url(tmp_path: Path) -> None:
    server, url = serve_in_thread("ws://127.0.0.1:9944", dist=_dist(tmp_path))
    try:
        status, headers, body = _get(url + "config.json")
        assert status == 200
        assert json.loads(body) == {"node": "ws://127.0.0.1:9944", "history": False}
        status, headers, body = _get(url)
        assert status == 200
        assert b"<title>portal</title>" in body
        assert headers["Content-Type"].startswith("text/html")
        assert headers["X-Content-Type-Options"] == "nosniff"
        status, headers, _ = _get(url + "app.js")
        assert (status, headers["Content-Type"]) == (200, "text/javascript; charset=utf-8")
        assert _get(url + "missing.js")[0] == 404
        assert _get(url + "../../etc/passwd")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_refuses_a_folder_without_a_build(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no portal build"):
        make_server("ws://127.0.0.1:9944", port=0, dist=tmp_path)


def test_cli_refuses_a_node_url_that_is_not_websocket_or_http(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--node", "ftp://example", "--no-build"]) == 2
    assert "--node must be" in capsys.readouterr().err


def test_stale_when_missing_or_older_than_a_source(tmp_path: Path) -> None:
    portal = tmp_path / "portal"
    (portal / "src").mkdir(parents=True)
    (portal / "test").mkdir()
    for f in ("build.mjs", "package-lock.json", "src/main.js", "test/wallet.js"):
        (portal / f).write_text("x")
    assert is_stale(portal)
    for f in ("dist/app.js", "dist/index.html", "dist-test/test-wallet.js"):
        (portal / f).parent.mkdir(exist_ok=True)
        (portal / f).write_text("built")
    assert not is_stale(portal)
    later = time.time() + 5
    os.utime(portal / "src" / "main.js", (later, later))
    assert is_stale(portal)


def test_history_records_rewards_offences_and_task_trails() -> None:
    h = History()
    task = "0x" + "ab" * 32
    miner, coord, voter = "5Miner", "5Coord", "5Voter"
    h.add(5, "Tasks.TaskCommitted", {"task_id": task, "coordinator": coord, "miner": miner})
    h.add(6, "Tasks.CheckOpened", {"task_id": task, "round": 1, "checkers": []})
    h.add(7, "Tasks.CheckOpened", {"task_id": task, "round": 2, "checkers": []})
    h.add(8, "Tasks.TaskPaid", {"task_id": task, "miner": miner, "refunded": 10**20})
    h.add(9, "Rewards.Rewarded", {"who": voter, "era": 3, "amount": 2**70, "target": miner})
    h.add(9, "Rewards.TargetRewarded", {"who": miner, "era": 3, "reward": 5})
    h.add(9, "Slashing.OffenceReported", {"offender": miner, "kind": "InvalidResult"})
    h.add(9, "Balances.Transfer", {"from": voter, "to": miner, "amount": 1})
    trail = h.task(task.upper().replace("0X", "0x"))["events"]
    assert [e["event"] for e in trail] == [
        "Tasks.TaskCommitted",
        "Tasks.CheckOpened",
        "Tasks.CheckOpened",
        "Tasks.TaskPaid",
    ]
    assert trail[-1]["refunded"] == str(10**20)  # balances as strings: JSON numbers lose bits
    assert h.checked_counts()["checked"] == {miner: 1}  # a task checked twice counts once
    assert h.account(voter)["rewards"][0]["amount"] == str(2**70)
    mine = h.account(miner)
    assert [r["era"] for r in mine["target_rewards"]] == ["3"]
    assert [s["event"] for s in mine["slashes"]] == ["Slashing.OffenceReported"]
    assert mine["tasks"] == [task]
    assert mine["checked"] == 1


def test_history_endpoints(tmp_path: Path) -> None:
    h = History()
    h.add(5, "Tasks.TaskCommitted", {"task_id": "0x" + "cd" * 32, "miner": "5Miner"})
    server, url = serve_in_thread("ws://127.0.0.1:9944", dist=_dist(tmp_path), history=h)
    try:
        status, _, body = _get(url + "config.json")
        assert json.loads(body)["history"] is True
        status, _, body = _get(url + "api/history/task/0x" + "cd" * 32)
        assert status == 200
        assert json.loads(body)["events"][0]["miner"] == "5Miner"
        addr = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
        assert json.loads(_get(url + f"api/history/account/{addr}")[2])["rewards"] == []
        assert _get(url + "api/history/status")[0] == 200
        assert _get(url + "api/history/task/0x12")[0] == 400
        assert _get(url + "api/history/account/not-an-address!")[0] == 400
    finally:
        server.shutdown()
        server.server_close()
    server, url = serve_in_thread("ws://127.0.0.1:9944", dist=_dist(tmp_path / "b"))
    try:
        assert _get(url + "api/history/status")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
