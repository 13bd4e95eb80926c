"""Joining the validator set, as the README tells an operator to: a fifth node with its own
session keys (`cuckoo-node key session-keys`) bonds, calls `Session.set_keys`, and root adds it
with `Session.set_validators`; from the next session boundary it authors its Aura slots and
finality goes on with the five-member set (a new set id)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from substrateinterface import Keypair, SubstrateInterface

from tests.e2e.validators import (
    VALIDATORS,
    FinalityMonitor,
    ValidatorNet,
    finalized_number,
    wait_until,
    write_spec,
)
from tests.integration.conftest import node_executable

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CAI = 10**18


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValidatorNet]:
    tmp = tmp_path_factory.mktemp("join")
    network = ValidatorNet(tmp, write_spec(tmp / "spec.json"), extra={"eve": ["--validator"]})
    try:
        network.start_all()
        yield network
    finally:
        network.stop_all()


def _submit(
    si: SubstrateInterface, who: Keypair, module: str, fn: str, params: dict[str, Any]
) -> None:
    call = si.compose_call(call_module=module, call_function=fn, call_params=params)
    receipt = si.submit_extrinsic(
        si.create_signed_extrinsic(call=call, keypair=who), wait_for_inclusion=True
    )
    assert receipt.is_success, f"{module}.{fn}: {receipt.error_message}"


def test_a_new_validator_joins_at_the_session_boundary(net: ValidatorNet) -> None:
    alice_node = net.nodes["alice"]
    suri = net.tmp / "eve.suri"
    suri.write_text("//Eve//session\n")
    suri.chmod(0o600)
    out = subprocess.run(
        [
            *node_executable(),
            "key",
            "session-keys",
            "--base-path",
            str(net.tmp / "eve"),
            "--chain",
            str(net.spec),
            "--suri-file",
            str(suri),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    printed = json.loads(out.stdout)
    eve_node = net.start("eve", validator=False, bootnodes=[net.bootnode("alice")])
    si = SubstrateInterface(url=alice_node.ws_url)
    eve = Keypair.create_from_uri("//Eve")
    alice = Keypair.create_from_uri("//Alice")
    _submit(si, eve, "Staking", "bond", {"value": 100_000 * CAI})
    _submit(si, eve, "Session", "set_keys", {"keys": printed["keys"], "proof": printed["proof"]})
    validators = [Keypair.create_from_uri(f"//{n.capitalize()}").ss58_address for n in VALIDATORS]
    inner = si.compose_call(
        "Session", "set_validators", {"validators": [*validators, eve.ss58_address]}
    )
    _submit(si, alice, "Sudo", "sudo", {"call": inner})
    monitor = FinalityMonitor()
    wait_until(
        "the five-member set to be enacted",
        lambda: len(si.query("Aura", "Authorities").value) == 5,
        30,
        on_fail=net.logs,
        tick=lambda: monitor.sample(net.running()),
    )
    assert si.query("Finality", "CurrentSetId").value >= 1
    authorities = si.query("Aura", "Authorities").value
    assert printed["keys"]["aura"] in authorities
    changed_at = alice_node.best_number()
    # finality crosses the set change and goes on under the new set
    wait_until(
        "finality past the set change",
        lambda: finalized_number(alice_node) >= changed_at + 6,
        90,
        on_fail=net.logs,
        tick=lambda: monitor.sample(net.running()),
    )
    # the new validator authored blocks in its own slots
    eve_index = authorities.index(printed["keys"]["aura"])

    def eve_authored() -> bool:
        best = alice_node.best_number()
        for number in range(changed_at, best + 1):
            h = alice_node.rpc("chain_getBlockHash", [number])
            header = alice_node.rpc("chain_getHeader", [h])
            pre = next(d for d in header["digest"]["logs"] if d.startswith("0x06"))
            slot = int.from_bytes(bytes.fromhex(pre[14:])[:8], "little")
            if slot % 5 == eve_index:
                return True
        return False

    wait_until("a block by the new validator", eve_authored, 30, on_fail=net.logs)
    assert finalized_number(eve_node) >= changed_at
