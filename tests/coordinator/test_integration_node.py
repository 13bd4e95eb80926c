"""The coordinator daemon against a real `cuckoo-node`: registration, readiness, the registry
view, one task end to end with protocol-true instant miners that commit results on chain (its
receipt's payment as the chain's TaskPaid has it), and prices under the chain's minimum
refused at start."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from substrateinterface import Keypair, SubstrateInterface

from coordinator.testing import InstantMiner, ResultSubmitter
from tests.integration.conftest import UNIT, NodeProcess, free_ports, start_node

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

CHARLIE = Keypair.create_from_uri("//Charlie")
MINER_STAKERS = ["//Bob", "//Dave"]


def fresh() -> Keypair:
    return Keypair.create_from_mnemonic(Keypair.generate_mnemonic())


def ok(
    si: SubstrateInterface, signer: Keypair, module: str, fn: str, params: dict[str, Any]
) -> None:
    call = si.compose_call(module, fn, params)
    receipt = si.submit_extrinsic(
        si.create_signed_extrinsic(call=call, keypair=signer), wait_for_inclusion=True
    )
    assert receipt.is_success, f"{module}.{fn}: {receipt.error_message}"


def http(url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(
                raw
            ) if resp.headers.get_content_type() == "application/json" else raw
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def coordinator_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("cuckoo-coordinator")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "coordinator.cli"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    node = start_node(tmp_path_factory.mktemp("coord-node") / "node.log")
    try:
        node.wait_for_block(1)
        si = SubstrateInterface(url=node.ws_url)
        operator = fresh()
        ok(
            si,
            CHARLIE,
            "Balances",
            "transfer_keep_alive",
            {"dest": operator.ss58_address, "value": 1000 * UNIT},
        )
        ok(si, CHARLIE, "Staking", "bond", {"value": 2_000_000 * UNIT})
        info = {"name": "test", "description": "", "url": "http://127.0.0.1:1", "gpu_model": ""}
        ok(
            si,
            CHARLIE,
            "Registry",
            "register_coordinator",
            {"operator": operator.ss58_address, "info": info},
        )
        miner_ops = []
        for i, uri in enumerate(MINER_STAKERS):
            staker, op = Keypair.create_from_uri(uri), fresh()
            ok(
                si,
                staker,
                "Balances",
                "transfer_keep_alive",
                {"dest": op.ss58_address, "value": 1000 * UNIT},
            )
            ok(si, staker, "Staking", "bond", {"value": (20_000 + 10_000 * i) * UNIT})
            minfo = {"name": f"m{i}", "description": "", "url": "", "gpu_model": "cpu"}
            ok(
                si,
                staker,
                "Registry",
                "register_miner",
                {"operator": op.ss58_address, "info": minfo},
            )
            miner_ops.append(op)
        si.close()
        yield {"node": node, "operator": operator, "miner_ops": miner_ops}
    finally:
        node.stop()


def start_coordinator(
    node: NodeProcess, operator: Keypair, data_dir: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    key_file = data_dir.parent / f"{data_dir.name}.key"
    key_file.write_text(operator.mnemonic + "\n")
    key_file.chmod(0o600)
    log = open(data_dir.parent / f"{data_dir.name}.log", "wb")  # noqa: SIM115 - kept for the process
    proc = subprocess.Popen(
        [
            *coordinator_cmd(),
            "--chain-url",
            node.ws_url,
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--operator-key-file",
            str(key_file),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    addr = data_dir / "coordinator.addr"
    deadline = time.monotonic() + 60
    url = ""
    while time.monotonic() < deadline:
        assert proc.poll() is None, (data_dir.parent / f"{data_dir.name}.log").read_text()
        if addr.exists() and (url := addr.read_text().strip()):
            status, body = http(url + "/health", timeout=5)
            if status == 200 and body["ready"]:
                return proc, url
        time.sleep(0.2)
    proc.terminate()
    raise AssertionError(
        "coordinator not ready: " + (data_dir.parent / f"{data_dir.name}.log").read_text()
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.terminate()
    return proc.wait(15)


def test_daemon_ready_and_lists_registered_miners(chain: dict[str, Any], tmp_path: Path) -> None:
    proc, url = start_coordinator(chain["node"], chain["operator"], tmp_path / "d1")
    try:
        status, health = http(url + "/health")
        assert status == 200
        assert health["registered"]
        assert health["chain"]["reachable"]
        assert health["coordinator"] == CHARLIE.ss58_address
        status, miners = http(url + "/v1/miners")
        assert status == 200
        by_staker = {m["miner"]: m for m in miners["data"]}
        bob, dave = (Keypair.create_from_uri(u).ss58_address for u in MINER_STAKERS)
        assert set(by_staker) == {bob, dave}
        assert by_staker[bob]["weight"] == str(20_000 * UNIT)
        assert by_staker[dave]["weight"] == str(30_000 * UNIT)
        assert by_staker[bob]["operator"] == chain["miner_ops"][0].ss58_address
        balance = health["operator_balance"]
        assert int(balance["free"]) > int(balance["for_new_tasks"]) > 0
    finally:
        assert stop(proc) == 0


def test_task_end_to_end_with_receipt(chain: dict[str, Any], tmp_path: Path) -> None:
    node: NodeProcess = chain["node"]
    proc, url = start_coordinator(
        node, chain["operator"], tmp_path / "d2", "--task-timeout-blocks", "60"
    )
    try:

        async def run() -> dict[str, Any]:
            stop_ev = asyncio.Event()
            subs = [ResultSubmitter(node.ws_url, op) for op in chain["miner_ops"]]
            for s in subs:
                s.start()
            stakers = [bytes(Keypair.create_from_uri(u).public_key) for u in MINER_STAKERS]
            miners = [
                InstantMiner(url, op, wait_s=2, staker=staker, on_result=s.add)
                for op, s, staker in zip(chain["miner_ops"], subs, stakers, strict=True)
            ]
            tasks = [asyncio.create_task(m.run(stop_ev)) for m in miners]
            try:
                await asyncio.sleep(0.5)
                status, out = await asyncio.to_thread(
                    http,
                    url + "/v1/images/generations",
                    {"prompt": "a lighthouse", "size": "64x64"},
                    60,
                )
                assert status == 200, out
                receipt = out["data"][0]["receipt"]
                task_id = receipt["task_id"]
                assert receipt["price"] == str(UNIT // 10)  # the default: 0.1 CAI
                for _ in range(240):  # a checked result takes longer (SpecDue, Committing, ...)
                    status, view = await asyncio.to_thread(http, f"{url}/v1/tasks/{task_id}")
                    if view["receipt"]["to_miner"] != "pending":  # settled and its payment read
                        break
                    await asyncio.sleep(0.5)
                return view  # type: ignore[no-any-return]
            finally:
                stop_ev.set()
                await asyncio.gather(*tasks, return_exceptions=True)
                for s in subs:
                    s.stop()

        view = asyncio.run(run())
        r = view["receipt"]
        # the dev chain checks 10% of the results (instant miners do not check: such a check
        # ends without a verdict in the miner's favour, or Guilty when it cannot reveal)
        assert r["verification"] in ("unchecked", "verified", "upheld", "guilty")
        assert r["commit_block"] <= r["result_block"] <= r["settle_block"]
        si = SubstrateInterface(url=node.ws_url)
        on_chain = si.query("Tasks", "Tasks", [r["task_id"]]).value
        events = si.get_events(si.get_block_hash(r["settle_block"]))
        si.close()
        (paid,) = [
            e.value["attributes"]
            for e in events
            if e.value["event_id"] == "TaskPaid"
            and e.value["attributes"]["task_id"] == r["task_id"]
        ]
        for field in ("to_miner", "burned", "to_checkers", "refunded"):
            assert r[field] == str(paid[field]), (r, paid)
        assert sum(int(r[f]) for f in ("to_miner", "burned", "to_checkers", "refunded")) == int(
            r["price"]
        )
        assert on_chain["price"] == int(r["price"])
        assert on_chain["outcome"].lower() == r["verification"]
        assert on_chain["status"] == ("Rejected" if r["verification"] == "guilty" else "Accepted")
        assert on_chain["committed_at"] == r["commit_block"]
        assert on_chain["settled_at"] == r["settle_block"]
        assert on_chain["coordinator"] == CHARLIE.ss58_address
    finally:
        assert stop(proc) == 0


def test_cli_refuses_unregistered_operator(chain: dict[str, Any], tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("//NobodysOperator")
    key.chmod(0o600)
    out = subprocess.run(
        [
            *coordinator_cmd(),
            "--chain-url",
            chain["node"].ws_url,
            "--data-dir",
            str(tmp_path / "d"),
            "--operator-key-file",
            str(key),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 4
    assert "register_coordinator" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_cli_refuses_unreachable_chain_and_open_key_file(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("//CoordOp")
    key.chmod(0o644)
    args = [*coordinator_cmd(), "--data-dir", str(tmp_path / "d"), "--operator-key-file", str(key)]
    (port,) = free_ports(1)
    out = subprocess.run(
        [*args, "--chain-url", f"ws://127.0.0.1:{port}"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "chmod 600" in out.stderr
    key.chmod(0o600)
    out = subprocess.run(
        [*args, "--chain-url", f"ws://127.0.0.1:{port}"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 3
    assert "cannot reach chain" in out.stderr
    env = {k: v for k, v in os.environ.items() if k != "CUCKOO_OPERATOR_SURI"}
    out = subprocess.run(
        [*coordinator_cmd(), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 2
    assert "CUCKOO_OPERATOR_SURI" in out.stderr


def test_cli_refuses_a_price_under_the_chains_minimum(
    chain: dict[str, Any], tmp_path: Path
) -> None:
    """dev Tasks.MinTaskPrice is 0.01 CAI: the chain would refuse every such task."""
    key = tmp_path / "k"
    key.write_text(chain["operator"].mnemonic + "\n")
    key.chmod(0o600)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"tiny": {"8x8": "0.001"}}}))
    base = [
        *coordinator_cmd(),
        "--chain-url",
        chain["node"].ws_url,
        "--data-dir",
        str(tmp_path / "d"),
        "--operator-key-file",
        str(key),
    ]
    for extra, where in (
        (["--price", "0.005"], "model tiny"),
        (["--prices-file", str(prices)], "model tiny size 8x8"),
    ):
        out = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stderr
        assert f"the price of {where} is" in out.stderr
        assert "Tasks.MinTaskPrice" in out.stderr
        assert "0.01 CAI" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
