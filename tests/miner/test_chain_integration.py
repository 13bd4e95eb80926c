"""The miner against a real `cuckoo-node` (substrate-interface) and a fake coordinator: registry
reads, results committed on chain (also for a task the coordinator commits only after handing it
out), and the CLI's one-line refusals for an unregistered or unfunded operator."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from substrateinterface import Keypair

from chain.hashing import blake2_256
from chain.taskproto import device_hash, result_commitment, spec_hash
from miner.chain import MinerChain, NotRegistered
from miner.client import Backoff
from miner.service import MinerConfig, MinerService
from miner.solver import PatternSolver
from tests.integration.conftest import NodeProcess, start_node
from tests.miner.chainkit import CAI, Actor, ChainKit, poll_until
from tests.miner.fakes import FakeCoordinator, make_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


def fresh() -> Keypair:
    return Keypair.create_from_mnemonic(Keypair.generate_mnemonic())


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    n = start_node(tmp_path_factory.mktemp("miner-node") / "node.log", prometheus=False)
    try:
        n.wait_for_block(1)
        yield n
    finally:
        n.stop()


@pytest.fixture(scope="module")
def setup(node: NodeProcess) -> Iterator[tuple[ChainKit, Actor, Actor]]:
    kit = ChainKit(node.ws_url)
    coordinator = Actor(Keypair.create_from_uri("//Charlie"), fresh(), "coord")
    miner = Actor(Keypair.create_from_uri("//Dave"), fresh(), "dave-miner")
    kit.run_parallel(
        [
            kit.coordinator_steps(coordinator, 2_000_000 * CAI, "http://127.0.0.1:9/coord"),
            kit.miner_steps(miner, 25_000 * CAI),
        ]
    )
    yield kit, coordinator, miner
    kit.close()


def test_miner_chain_reads_registry(
    node: NodeProcess, setup: tuple[ChainKit, Actor, Actor]
) -> None:
    _, coordinator, miner = setup

    async def scenario() -> None:
        miner_chain = MinerChain(node.ws_url, miner.operator)
        try:
            reg = await miner_chain.registration()
            assert reg.staker == bytes(miner.staker.public_key)
            assert reg.operator == bytes(miner.operator.public_key)
            assert reg.status == "Active"
            assert reg.own_stake == 25_000 * CAI
            assert reg.name == "dave-miner"
            assert reg.gpu_model == "cpu"
            (c,) = [
                c
                for c in await miner_chain.coordinators()
                if c.staker == bytes(coordinator.staker.public_key)
            ]
            assert c.url == "http://127.0.0.1:9/coord"
            assert c.status == "Active"
            assert c.weight == 2_000_000 * CAI
            assert c.operator == bytes(coordinator.operator.public_key)
            free, ed = await miner_chain.free_balance()
            assert free > ed > 0
        finally:
            await miner_chain.close()
        stranger = MinerChain(node.ws_url, fresh())
        try:
            with pytest.raises(NotRegistered, match="register_miner"):
                await stranger.registration()
            coord_op = MinerChain(node.ws_url, coordinator.operator)
            with pytest.raises(NotRegistered, match="Coordinator"):
                await coord_op.registration()
            await coord_op.close()
        finally:
            await stranger.close()

    asyncio.run(scenario())


def test_miner_commits_results_on_chain(
    node: NodeProcess, setup: tuple[ChainKit, Actor, Actor], tmp_path: Path
) -> None:
    kit, coordinator, miner = setup
    specs = [make_spec(seed=s) for s in (1, 2)]
    with FakeCoordinator() as coord:
        deadline = kit.best() + 200
        early = coord.add_task(specs[0], deadline)
        late = coord.add_task(specs[1], deadline)
        kit.commit_tasks(
            coordinator.operator, [(early, spec_hash(specs[0]), miner.staker, deadline)]
        )

        async def scenario() -> None:
            miner_chain = MinerChain(node.ws_url, miner.operator)
            service = MinerService(
                MinerConfig(
                    coordinator_urls=(coord.url,),
                    poll_wait_s=0.5,
                    backoff=Backoff(base_s=0.05, cap_s=0.5),
                    data_dir=tmp_path,
                ),
                miner.operator,
                PatternSolver(),
                miner_chain,
            )
            runner = asyncio.create_task(service.run())
            try:
                await asyncio.to_thread(
                    poll_until,
                    "both uploads",
                    lambda: all(coord.tasks[t].result for t in (early, late)),
                    60,
                )
                start = kit.best()  # a few blocks: `late` is not on chain, so it waits
                await asyncio.to_thread(poll_until, "4 blocks", lambda: kit.best() >= start + 4, 30)
                assert kit.task(late) is None
                assert service.committer is not None
                assert late in [p.task_id for p in service.committer.pending]
                kit_block = await asyncio.to_thread(
                    kit.commit_tasks,
                    coordinator.operator,
                    [(late, spec_hash(specs[1]), miner.staker, deadline)],
                )
                assert kit_block > 0

                def both_submitted() -> bool:
                    # Submitted, or already drawn for a check a block later (dev: 10%), which
                    # with no other miner to check it accepts it at once
                    return all(
                        (kit.task(t) or {}).get("status") in ("Submitted", "Checking", "Accepted")
                        for t in (early, late)
                    )

                await asyncio.to_thread(poll_until, "both results on chain", both_submitted, 30)
            finally:
                service.request_stop()
                await asyncio.wait_for(runner, 30)
                await miner_chain.close()

        asyncio.run(scenario())
        fp = PatternSolver().fingerprint()
        for t, spec in ((early, specs[0]), (late, specs[1])):
            png = coord.tasks[t].result
            assert png == PatternSolver().solve(spec)
            state = kit.task(t)
            assert state is not None
            # the blind commitment on chain is opened by what the coordinator received
            h = {k.lower(): v for k, v in coord.tasks[t].headers.items()}
            assert h["x-cuckoo-device"] == "0x" + device_hash(fp).hex()
            sketch, salt = (bytes.fromhex(h[k][2:]) for k in ("x-cuckoo-sketch", "x-cuckoo-salt"))
            expected = result_commitment(
                bytes(miner.staker.public_key),
                t,
                blake2_256(png),
                device_hash(fp),
                sketch,
                salt,
            )
            assert state["commitment"] == "0x" + expected.hex()
            assert state["miner"] == miner.staker.ss58_address
            assert state["submitted_at"] is not None
        stats = kit.q("Tasks", "MinerStats", miner.staker.ss58_address)
        assert stats["submitted"] == 2


def run_cli(node: NodeProcess, suri: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cuckoo-miner")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "miner.cli"]
    return subprocess.run(
        [*cmd, "--chain-url", node.ws_url, "--coordinator", "http://127.0.0.1:9"],
        env={**os.environ, "CUCKOO_OPERATOR_SURI": suri},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_cli_refuses_unregistered_operator(node: NodeProcess) -> None:
    proc = run_cli(node, "//Unregistered" + secrets.token_hex(4))
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("cuckoo-miner: error: operator ")
    assert "Registry.register_miner" in line
    assert "Staking.bond" in line


def test_cli_refuses_unfunded_operator(
    node: NodeProcess, setup: tuple[ChainKit, Actor, Actor]
) -> None:
    kit, _, _ = setup
    poor = Actor(Keypair.create_from_uri("//Eve"), fresh(), "eve-miner")
    steps = kit.miner_steps(poor, 20_000 * CAI)[:2]  # no transfer to the operator
    kit.run_parallel([steps])
    proc = run_cli(node, poor.operator.mnemonic)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "no funds" in line
    assert poor.operator.ss58_address in line
