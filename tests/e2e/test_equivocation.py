"""A validator that equivocates is reported by the others and slashed exactly once; an honest
validator killed and restarted mid-way is never reported.

//Dave runs with the test-only `--unsafe-test-equivocate`: it seals two different blocks for
the first slot it authors and announces both. The other nodes see two blocks by one author for
one slot, submit `Finality.report_equivocation` (unsigned), and the Slashing pallet takes
`EquivocationSlash` (5%) of Dave's bonded stake when the deferral window ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from substrateinterface import Keypair, SubstrateInterface

from tests.e2e.validators import VALIDATORS, FinalityMonitor, ValidatorNet, wait_until, write_spec

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CAI = 10**18
GENESIS_BOND = 1_000_000 * CAI
EQUIVOCATION_SLASH_PERBILL = 50_000_000


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValidatorNet]:
    tmp = tmp_path_factory.mktemp("equivocation")
    network = ValidatorNet(
        tmp, write_spec(tmp / "spec.json"), extra={"dave": ["--unsafe-test-equivocate"]}
    )
    try:
        network.start_all()
        yield network
    finally:
        network.stop_all()


def _ledger_active(si: SubstrateInterface, who: str) -> int:
    ledger: Any = si.query("Staking", "Ledger", [who]).value
    return int(ledger["active"]) if ledger else 0


def _slash_history(si: SubstrateInterface, who: str) -> list[Any]:
    return list(si.query("Slashing", "SlashHistory", [who]).value or [])


def _offences(si: SubstrateInterface) -> list[Any]:
    return [(k.value, v.value) for k, v in si.query_map("Slashing", "Offences")]


def test_equivocating_validator_is_slashed_exactly_once(net: ValidatorNet) -> None:
    alice = net.nodes["alice"]
    si = SubstrateInterface(url=alice.ws_url)
    dave = Keypair.create_from_uri("//Dave").ss58_address
    bob = Keypair.create_from_uri("//Bob").ss58_address
    monitor = FinalityMonitor()
    wait_until(
        "an equivocation report on chain",
        lambda: _offences(si),
        90,
        on_fail=net.logs,
        tick=lambda: monitor.sample(net.running()),
    )
    # an honest validator crashes and restarts while the slash is pending
    net.kill("bob")
    net.start("bob")
    wait_until(
        "Dave's slash to be applied",
        lambda: _slash_history(si, dave),
        120,
        on_fail=net.logs,
        tick=lambda: monitor.sample(net.running()),
    )
    expected = GENESIS_BOND * EQUIVOCATION_SLASH_PERBILL // 1_000_000_000
    assert _ledger_active(si, dave) == GENESIS_BOND - expected
    # two more eras: nothing else is reported or slashed
    era = si.query("Staking", "CurrentEra").value
    wait_until(
        "two more eras",
        lambda: si.query("Staking", "CurrentEra").value >= era + 2,
        60,
        tick=lambda: monitor.sample(net.running()),
    )
    assert len(_offences(si)) == 1
    assert len(_slash_history(si, dave)) == 1
    assert _ledger_active(si, dave) == GENESIS_BOND - expected
    for name in VALIDATORS[:3]:
        who = Keypair.create_from_uri(f"//{name.capitalize()}").ss58_address
        assert _slash_history(si, who) == [], f"{name} was slashed"
    assert _ledger_active(si, bob) == GENESIS_BOND
    # finality survived the equivocation
    time.sleep(1)
    monitor.sample(net.running())
    assert max(monitor.last.values()) > 10
