"""A node on a kept `--base-path` survives SIGTERM and a restart: same chain, same state, and it
goes on authoring on top of the block it stopped at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from substrateinterface import Keypair, SubstrateInterface

from tests.integration.conftest import UNIT, NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

ALICE = Keypair.create_from_uri("//Alice")
BOB = Keypair.create_from_uri("//Bob")


def account_at(
    si: SubstrateInterface, who: Keypair, block_hash: str | None = None
) -> dict[str, Any]:
    return si.query("System", "Account", [who.ss58_address], block_hash=block_hash).value  # type: ignore[no-any-return]


def transfer(si: SubstrateInterface, value: int) -> str:
    call = si.compose_call(
        "Balances", "transfer_keep_alive", {"dest": BOB.ss58_address, "value": value}
    )
    receipt = si.submit_extrinsic(
        si.create_signed_extrinsic(call=call, keypair=ALICE), wait_for_inclusion=True
    )
    assert receipt.is_success, receipt.error_message
    return receipt.block_hash  # type: ignore[no-any-return]


def parent_chain(node: NodeProcess, from_hash: str, down_to: int) -> list[tuple[int, str]]:
    """(number, hash) from `from_hash` back to block `down_to`, following parentHash."""
    out = []
    h = from_hash
    while True:
        header = node.rpc("chain_getHeader", [h])
        assert header is not None, f"block {h} is not stored"
        number = int(header["number"], 16)
        out.append((number, h))
        if number <= down_to:
            return out
        h = header["parentHash"]


def test_restart_keeps_the_chain_and_builds_on_it(node_factory: Any, tmp_path: Path) -> None:
    base = tmp_path / "chain-data"
    first = node_factory(base_path=base, name="before", prometheus=False)
    first.wait_for_block(3)
    genesis = first.rpc("chain_getBlockHash", [0])

    si = SubstrateInterface(url=first.ws_url)
    tx_block = transfer(si, 42 * UNIT)
    first.wait_for_block(first.best_number() + 1)  # one more block on top of the transfer

    best_hash = first.rpc("chain_getBlockHash", [])
    best_header = first.rpc("chain_getHeader", [best_hash])
    best_number = int(best_header["number"], 16)
    tx_header = first.rpc("chain_getHeader", [tx_block])
    finalized_before = int(
        first.rpc("chain_getHeader", [first.rpc("chain_getFinalizedHead")])["number"], 16
    )
    bob = account_at(si, BOB, best_hash)
    alice = account_at(si, ALICE, best_hash)
    si.close()
    assert alice["nonce"] == 1
    assert bob["data"]["free"] == 10_000_042 * UNIT

    status = first.stop(timeout=10)
    assert status == 0, (
        f"SIGTERM: exit status {status} (None: still running after 10 s)\n{first.log_tail()}"
    )
    assert (base / "chains").is_dir(), "nothing was written under --base-path"

    second = node_factory(base_path=base, name="after", prometheus=False)
    si = SubstrateInterface(url=second.ws_url)
    assert second.rpc("chain_getBlockHash", [0]) == genesis
    assert second.best_number() >= best_number
    # the old best block and the transfer's block are unchanged and their state is readable
    assert second.rpc("chain_getBlockHash", [best_number]) == best_hash
    assert second.rpc("chain_getHeader", [best_hash]) == best_header
    assert second.rpc("chain_getHeader", [tx_block]) == tx_header
    assert account_at(si, BOB, best_hash) == bob
    assert account_at(si, ALICE, best_hash) == alice
    # balances at the new head are the same (nothing moved since)
    assert account_at(si, BOB)["data"]["free"] == bob["data"]["free"]
    assert account_at(si, ALICE)["nonce"] == 1

    # it authors new blocks, and they descend from the old best block
    target = second.best_number() + 3
    second.wait_for_block(target)
    head = second.rpc("chain_getBlockHash", [])
    chain = parent_chain(second, head, best_number)
    assert chain[-1] == (best_number, best_hash)
    numbers = [n for n, _ in chain]
    assert numbers == list(range(numbers[0], best_number - 1, -1))
    fin = second.rpc("chain_getHeader", [second.rpc("chain_getFinalizedHead")])
    assert int(fin["number"], 16) >= finalized_before  # finality is not lost either

    # and it still takes transactions (nonce continues from the stored state)
    transfer(si, UNIT)
    assert account_at(si, ALICE)["nonce"] == 2
    si.close()
    assert second.stop(timeout=10) == 0


def test_sigterm_on_a_fresh_tmp_node_exits_zero(node_factory: Any) -> None:
    node = node_factory(name="tmp", prometheus=False)
    node.wait_for_block(1)
    assert node.stop(timeout=10) == 0, node.log_tail()
