"""The staking economy end to end, through substrate-interface against a real `cuckoo-node`.

One user story, one step per test (each step needs the previous ones; after a failed step the rest
are skipped): a fresh account gets tokens from the faucet, bonds, registers as a miner with its own
operator key; a second fresh account bonds and votes for it; root credits work and both are paid
when the era ends; root reports an offence, the deferred slash is applied one era later (own stake
and votes by 10%, finder's fee to the reporter, miner suspended); the voter unvotes, unbonds and
withdraws after the bonding duration. A last test cancels a second miner's slash inside the window.

The module runs its own dev node (500 ms blocks, so an era is 5 s) so that no other module's work
credits or offences change the payouts. //Alice (the sudo key) is the only dev account that signs
here; every other actor is a fresh sr25519 key funded by the feeless faucet. Waits poll storage
with short sleeps against deadlines derived from the era length.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from substrateinterface import Keypair, SubstrateInterface

from tests.integration.conftest import BLOCK_TIME_MS, UNIT, NodeProcess, start_node

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

CAI = UNIT
DRIP = 100_000 * CAI
MIN_MINER_STAKE = 20_000 * CAI
VOTER_BOND = 40_000 * CAI
VOTE = 30_000 * CAI
EMISSION = 1_000 * CAI
MINER_POOL = EMISSION * 80 // 100
# Work is credited in CAI burned; the pool pays at most BurnRebate (50%) x MinerShare (80%) of it:
# this much burn backs more than the pool, so the only worker takes all of it.
WORK = 10_000 * CAI
PERBILL = 10**9
SLASH = 500_000_000  # InvalidResultSlash, 50%
FINDER_FEE = 100_000_000  # 10% of what is slashed
ERA_BLOCKS = 10
BONDING_DURATION = 2
SLASH_DEFER = 1
ERA_S = ERA_BLOCKS * BLOCK_TIME_MS / 1000
POLL_S = 0.1

ALICE = Keypair.create_from_uri("//Alice")
T = TypeVar("T")


def fresh() -> Keypair:
    return Keypair.create_from_mnemonic(Keypair.generate_mnemonic())


def names(receipt: Any) -> list[str]:
    return [f"{e.value['module_id']}.{e.value['event_id']}" for e in receipt.triggered_events]


def attrs(receipt: Any, name: str) -> list[dict[str, Any]]:
    """Attributes of each event `Module.Event` a receipt triggered."""
    return [
        e.value["attributes"]
        for e in receipt.triggered_events
        if f"{e.value['module_id']}.{e.value['event_id']}" == name
    ]


@dataclasses.dataclass(frozen=True)
class Event:
    block: int
    name: str
    attributes: Any


class Chain:
    """substrate-interface plus the few waits and reads the scenario needs."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self.si = SubstrateInterface(url=node.ws_url)
        self._next_block = 1
        self.events: list[Event] = []

    # ---- transactions ---------------------------------------------------------------------------

    def submit(
        self, signer: Keypair, module: str, fn: str, params: dict[str, Any] | None = None
    ) -> Any:
        """Sign, submit and wait for inclusion; the receipt (success or failure)."""
        call = self.si.compose_call(module, fn, params or {})
        xt = self.si.create_signed_extrinsic(call=call, keypair=signer)
        return self.si.submit_extrinsic(xt, wait_for_inclusion=True)

    def ok(
        self, signer: Keypair, module: str, fn: str, params: dict[str, Any] | None = None
    ) -> Any:
        receipt = self.submit(signer, module, fn, params)
        assert receipt.is_success, f"{module}.{fn}: {receipt.error_message}"
        return receipt

    def sudo(self, module: str, fn: str, params: dict[str, Any]) -> Any:
        """Sudo.sudo by //Alice; asserts the inner call's result is Ok."""
        inner = self.si.compose_call(module, fn, params)
        receipt = self.ok(ALICE, "Sudo", "sudo", {"call": inner})
        results = [a["sudo_result"] for a in attrs(receipt, "Sudo.Sudid")]
        assert results == [{"Ok": ()}], f"sudo {module}.{fn}: {results}"
        return receipt

    def sudo_result(self, module: str, fn: str, params: dict[str, Any]) -> Any:
        inner = self.si.compose_call(module, fn, params)
        receipt = self.ok(ALICE, "Sudo", "sudo", {"call": inner})
        (result,) = [a["sudo_result"] for a in attrs(receipt, "Sudo.Sudid")]
        return result

    def block_of(self, receipt: Any) -> int:
        return int(self.si.get_block_number(receipt.block_hash))

    # ---- reads ----------------------------------------------------------------------------------

    def q(self, module: str, item: str, *keys: Any, at: str | None = None) -> Any:
        return self.si.query(module, item, list(keys), block_hash=at).value

    def account(self, who: Keypair, at: str | None = None) -> dict[str, int]:
        data: dict[str, int] = self.q("System", "Account", who.ss58_address, at=at)["data"]
        return data

    def free(self, who: Keypair | str) -> int:
        address = who if isinstance(who, str) else who.ss58_address
        return int(self.q("System", "Account", address)["data"]["free"])

    def ledger(self, who: Keypair, at: str | None = None) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.q("Staking", "Ledger", who.ss58_address, at=at)
        return value

    def miner(self, who: Keypair) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.q("Registry", "Miners", who.ss58_address)
        return value

    def era(self) -> int:
        return int(self.q("Staking", "CurrentEra"))

    def best(self) -> int:
        return self.node.best_number()

    # ---- waits ----------------------------------------------------------------------------------

    def poll(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value is not None and value is not False:
                return value
            self.node.assert_running()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(POLL_S)

    def wait_era(self, era: int) -> int:
        """Wait until CurrentEra >= `era`; the deadline allows three times the nominal time."""
        eras = max(era - self.era(), 0) + 1
        return self.poll(
            f"era {era}", lambda: self.era() if self.era() >= era else None, 3 * eras * ERA_S + 10
        )

    def wait_era_start(self, max_offset: int = 2) -> int:
        """Wait until the best block is one of the first `max_offset` blocks of an era, so that
        a few transactions land before the next era starts. Returns the current era."""
        self.poll(
            "the start of an era",
            lambda: self.best() % ERA_BLOCKS <= max_offset,
            3 * ERA_S + 10,
        )
        return self.era()

    def scan(self) -> list[Event]:
        """Read the events of every block not read yet (up to the best block); all seen so far."""
        best = self.best()
        while self._next_block <= best:
            block_hash = self.si.get_block_hash(self._next_block)
            for record in self.si.get_events(block_hash):
                v = record.value
                self.events.append(
                    Event(self._next_block, f"{v['module_id']}.{v['event_id']}", v["attributes"])
                )
            self._next_block += 1
        return self.events

    def wait_event(self, name: str, match: Callable[[Any], bool], timeout: float) -> Event:
        def probe() -> Event | None:
            found = [e for e in self.scan() if e.name == name and match(e.attributes)]
            return found[0] if found else None

        return self.poll(name, probe, timeout)

    def seen(self, name: str, since: int = 0) -> list[Event]:
        return [e for e in self.scan() if e.name == name and e.block >= since]

    def fees_in(self, block: int) -> list[Event]:
        return [
            e for e in self.seen("TransactionPayment.TransactionFeePaid", block) if e.block == block
        ]

    def close(self) -> None:
        self.si.close()


@pytest.fixture(scope="module")
def econ_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    log: Path = tmp_path_factory.mktemp("economy-node") / "node.log"
    node = start_node(log, prometheus=False)
    try:
        node.wait_for_block(1)
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def chain(econ_node: NodeProcess) -> Iterator[Chain]:
    c = Chain(econ_node)
    yield c
    c.close()


@dataclasses.dataclass
class Story:
    """The actors and what earlier steps recorded."""

    miner: Keypair = dataclasses.field(default_factory=fresh)
    operator: Keypair = dataclasses.field(default_factory=fresh)
    voter: Keypair = dataclasses.field(default_factory=fresh)
    reporter: Keypair = dataclasses.field(default_factory=fresh)
    failed: str | None = None
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)


@pytest.fixture(scope="module")
def _story() -> Story:
    return Story()


@pytest.fixture
def story(request: pytest.FixtureRequest, _story: Story) -> Iterator[Story]:
    """The shared story; skips a step whose predecessor failed, and marks this one when it fails."""
    if _story.failed is not None:
        pytest.skip(f"an earlier step failed: {_story.failed}")
    before = request.session.testsfailed
    yield _story
    if request.session.testsfailed != before:
        _story.failed = request.node.name


# ---- the story ----------------------------------------------------------------------------------


def test_dev_chain_economy_parameters(chain: Chain, story: Story) -> None:
    const = chain.si.get_constant
    assert const("Staking", "EraLength").value == ERA_BLOCKS
    assert const("Staking", "BondingDuration").value == BONDING_DURATION
    assert const("Registry", "MinMinerStake").value == MIN_MINER_STAKE
    assert const("Rewards", "EmissionPerEra").value == EMISSION
    assert const("Rewards", "MinerShare").value == 800_000_000
    assert const("Slashing", "SlashDeferDuration").value == SLASH_DEFER
    assert const("Slashing", "InvalidResultSlash").value == SLASH
    assert const("Slashing", "FinderFee").value == FINDER_FEE
    assert const("Faucet", "DripAmount").value == DRIP
    story.notes["treasury"] = const("Slashing", "Treasury").value


def test_faucet_drip_funds_a_fresh_account_without_a_fee(chain: Chain, story: Story) -> None:
    miner = story.miner
    assert chain.account(miner)["free"] == 0
    assert chain.si.get_account_nonce(miner.ss58_address) == 0
    receipt = chain.ok(miner, "Faucet", "drip")
    assert attrs(receipt, "Faucet.Dripped") == [{"who": miner.ss58_address, "amount": DRIP}]
    assert "TransactionPayment.TransactionFeePaid" not in names(receipt)
    assert "Balances.Withdraw" not in names(receipt)
    (success,) = attrs(receipt, "System.ExtrinsicSuccess")
    assert success["dispatch_info"]["pays_fee"] == "No"
    data = chain.account(miner)
    assert data["free"] == DRIP, "the drip cost a fee"
    assert data["frozen"] == 0


def test_bond_freezes_the_stake_and_a_transfer_of_it_fails(chain: Chain, story: Story) -> None:
    miner = story.miner
    receipt = chain.ok(miner, "Staking", "bond", {"value": MIN_MINER_STAKE})
    assert attrs(receipt, "Staking.Bonded") == [
        {"stash": miner.ss58_address, "amount": MIN_MINER_STAKE}
    ]
    (fee,) = [a["actual_fee"] for a in attrs(receipt, "TransactionPayment.TransactionFeePaid")]
    data = chain.account(miner)
    assert data["frozen"] == MIN_MINER_STAKE
    assert data["free"] == DRIP - fee, "bonded funds stay in the account"
    assert chain.ledger(miner) == {
        "stash": miner.ss58_address,
        "total": MIN_MINER_STAKE,
        "active": MIN_MINER_STAKE,
        "unlocking": [],
        "allocated": 0,
    }

    # 90,000 of the ~100,000 free would eat 10,000 into the 20,000 frozen
    sink = fresh()
    failed = chain.submit(
        miner, "Balances", "transfer_keep_alive", {"dest": sink.ss58_address, "value": 90_000 * CAI}
    )
    assert not failed.is_success
    assert failed.error_message["name"] == "LiquidityRestrictions", failed.error_message
    (ev,) = attrs(failed, "System.ExtrinsicFailed")
    assert ev["dispatch_error"] == {"Module": {"index": 2, "error": "0x01000000"}}
    (fee2,) = [a["actual_fee"] for a in attrs(failed, "TransactionPayment.TransactionFeePaid")]
    after = chain.account(miner)
    assert after["free"] == DRIP - fee - fee2, "only the fee left the account"
    assert after["frozen"] == MIN_MINER_STAKE
    assert chain.free(sink) == 0


def test_register_miner_with_a_distinct_operator_key(chain: Chain, story: Story) -> None:
    miner, operator = story.miner, story.operator
    info = {
        "name": b"e2e-miner",
        "description": b"economy end-to-end test",
        "url": b"https://miner.example",
        "gpu_model": b"H100",
    }
    same = chain.submit(
        miner, "Registry", "register_miner", {"operator": miner.ss58_address, "info": info}
    )
    assert not same.is_success
    assert same.error_message["name"] == "OperatorIsStaker", same.error_message
    assert chain.miner(miner) is None

    receipt = chain.ok(
        miner, "Registry", "register_miner", {"operator": operator.ss58_address, "info": info}
    )
    assert attrs(receipt, "Registry.MinerRegistered") == [
        {"staker": miner.ss58_address, "operator": operator.ss58_address}
    ]
    assert chain.q("Registry", "OperatorOf", operator.ss58_address) == {
        "role": "Miner",
        "staker": miner.ss58_address,
    }

    rows = {k.value: v.value for k, v in chain.si.query_map("Registry", "Miners")}
    assert miner.ss58_address in rows, rows
    reg = rows[miner.ss58_address]
    assert reg["operator"] == operator.ss58_address != miner.ss58_address
    assert reg["status"] == "Active"
    assert reg["commission"] == 0
    assert reg["own_stake"] == MIN_MINER_STAKE
    assert reg["votes"] == 0
    assert reg["own_stake"] + reg["votes"] == MIN_MINER_STAKE  # the weight a client ranks by
    assert reg["registered_at"] == chain.block_of(receipt)
    assert reg["info"] == {
        "name": "e2e-miner",
        "description": "economy end-to-end test",
        "url": "https://miner.example",
        "gpu_model": "H100",
    }


def test_second_account_bonds_and_votes_for_the_miner(chain: Chain, story: Story) -> None:
    miner, voter = story.miner, story.voter
    dripped = chain.ok(voter, "Faucet", "drip")
    assert "TransactionPayment.TransactionFeePaid" not in names(dripped)
    assert chain.free(voter) == DRIP
    chain.ok(voter, "Staking", "bond", {"value": VOTER_BOND})
    receipt = chain.ok(voter, "Voting", "vote", {"target": miner.ss58_address, "value": VOTE})
    assert attrs(receipt, "Voting.Voted") == [
        {"voter": voter.ss58_address, "target": miner.ss58_address, "amount": VOTE}
    ]
    assert chain.q("Voting", "Votes", voter.ss58_address, miner.ss58_address) == VOTE
    assert chain.q("Voting", "TotalVotes", miner.ss58_address) == VOTE
    ledger = chain.ledger(voter)
    assert ledger is not None
    assert (ledger["total"], ledger["active"], ledger["allocated"]) == (
        VOTER_BOND,
        VOTER_BOND,
        VOTE,
    )
    assert chain.account(voter)["frozen"] == VOTER_BOND

    rows = {k.value: v.value for k, v in chain.si.query_map("Registry", "Miners")}
    reg = rows[miner.ss58_address]
    assert (reg["own_stake"], reg["votes"], reg["status"]) == (MIN_MINER_STAKE, VOTE, "Active")
    assert reg["own_stake"] + reg["votes"] == MIN_MINER_STAKE + VOTE


def test_root_credits_work_to_the_miner(chain: Chain, story: Story) -> None:
    miner, voter = story.miner, story.voter
    # root only: a signed credit is refused
    refused = chain.submit(
        voter, "Rewards", "credit_work", {"who": miner.ss58_address, "role": "Miner", "units": 1}
    )
    assert refused.error_message["name"] == "BadOrigin", refused.error_message

    # keep the balances read before the payout and the credit inside one era
    chain.wait_era_start(max_offset=6)
    story.notes["free_before_reward"] = (chain.free(miner), chain.free(voter))
    receipt = chain.sudo(
        "Rewards", "credit_work", {"who": miner.ss58_address, "role": "Miner", "units": WORK}
    )
    (credited,) = attrs(receipt, "Rewards.WorkCredited")
    era = credited["era"]
    assert credited == {"who": miner.ss58_address, "role": "Miner", "units": WORK, "era": era}
    assert era == chain.q("Staking", "CurrentEra", at=receipt.block_hash)
    assert chain.q("Rewards", "MinerWork", era, miner.ss58_address, at=receipt.block_hash) == WORK
    assert chain.q("Rewards", "EraTotals", era, at=receipt.block_hash) == {
        "miner_work": WORK,
        "coordinator_work": 0,
    }
    story.notes["work_era"] = era


def test_miner_and_voter_are_paid_by_stake_after_the_era(chain: Chain, story: Story) -> None:
    miner, voter = story.miner, story.voter
    era = story.notes["work_era"]
    miner_before, voter_before = story.notes["free_before_reward"]
    chain.wait_era(era + 1)
    paid = chain.wait_event("Rewards.EraPaid", lambda a: a["era"] == era, 2 * ERA_S + 5)
    assert paid.block >= (era + 1) * ERA_BLOCKS, "paid before the era ended"
    assert paid.attributes["minted"] == MINER_POOL, "the only worker takes the whole miner pool"

    rewarded = {
        e.attributes["who"]: e.attributes["amount"]
        for e in chain.seen("Rewards.Rewarded")
        if e.attributes["era"] == era
    }
    # commission 0: the reward is shared by stake, own 20,000 : votes 30,000
    want_voter = MINER_POOL * VOTE // (MIN_MINER_STAKE + VOTE)
    want_miner = MINER_POOL - want_voter
    assert rewarded == {miner.ss58_address: want_miner, voter.ss58_address: want_voter}
    assert (want_miner, want_voter) == (320 * CAI, 480 * CAI)
    assert rewarded[voter.ss58_address] * MIN_MINER_STAKE == rewarded[miner.ss58_address] * VOTE
    assert chain.free(miner) - miner_before == want_miner
    assert chain.free(voter) - voter_before == want_voter
    # rewards are liquid: stake and freezes are unchanged
    assert chain.account(miner)["frozen"] == MIN_MINER_STAKE
    assert chain.account(voter)["frozen"] == VOTER_BOND
    assert chain.q("Rewards", "MinerWork", era, miner.ss58_address) is None
    # the payout mints exactly what it pays (less any fee burned in that block)
    at, parent = chain.si.get_block_hash(paid.block), chain.si.get_block_hash(paid.block - 1)
    burned = sum(e.attributes["actual_fee"] for e in chain.fees_in(paid.block))
    minted = chain.q("Balances", "TotalIssuance", at=at) - chain.q(
        "Balances", "TotalIssuance", at=parent
    )
    assert minted == MINER_POOL - burned


def test_root_reports_an_offence_and_the_slash_is_deferred(chain: Chain, story: Story) -> None:
    miner, voter, reporter = story.miner, story.voter, story.reporter
    era = chain.wait_era_start(max_offset=2)
    story.notes["before_slash"] = {
        "miner": chain.free(miner),
        "voter": chain.free(voter),
        "treasury": chain.free(story.notes["treasury"]),
    }
    assert chain.free(reporter) == 0
    evidence = "0x" + b"e2e: invalid result of task 1".hex()
    params = {
        "offender": miner.ss58_address,
        "reporter": reporter.ss58_address,
        "kind": "InvalidResult",
        "evidence": evidence,
    }
    receipt = chain.sudo("Slashing", "force_report_offence", params)
    (reported,) = attrs(receipt, "Slashing.OffenceReported")
    apply_era = reported["apply_era"]
    assert reported["offender"] == miner.ss58_address
    assert reported["kind"] == "InvalidResult"
    assert apply_era == era + SLASH_DEFER, (reported, era)
    assert chain.q("Slashing", "Offences", reported["offence_id"]) == era

    queue = chain.q("Slashing", "UnappliedSlashes", apply_era)
    assert queue == [
        {
            "offender": miner.ss58_address,
            "reporter": reporter.ss58_address,
            "kind": "InvalidResult",
            "offence_id": reported["offence_id"],
            "fraction": SLASH,
            # the votes standing on the offender when it was reported: they pay their share even
            # if they are withdrawn inside the deferral window
            "exposure": [(voter.ss58_address, VOTE)],
        }
    ]
    # the same offence cannot be reported twice
    again = chain.sudo_result("Slashing", "force_report_offence", params)
    assert "Err" in again, again
    assert chain.q("Slashing", "UnappliedSlashes", apply_era) == queue
    assert chain.era() < apply_era, "the test was too slow to see the deferral"
    # nothing is taken yet
    assert chain.ledger(miner)["total"] == MIN_MINER_STAKE  # type: ignore[index]
    assert chain.miner(miner)["status"] == "Active"  # type: ignore[index]
    story.notes["apply_era"] = apply_era


def test_slash_applies_after_the_deferral_window(chain: Chain, story: Story) -> None:
    miner, voter, reporter = story.miner, story.voter, story.reporter
    apply_era = story.notes["apply_era"]
    before = story.notes["before_slash"]
    chain.wait_era(apply_era)
    slashed = chain.wait_event(
        "Slashing.OffenderSlashed", lambda a: a["offender"] == miner.ss58_address, ERA_S
    )
    first = apply_era * ERA_BLOCKS
    assert slashed.block == first, "applied in the first block of the apply era"
    # still whole in the last block of the window
    last_of_window = chain.si.get_block_hash(first - 1)
    assert chain.ledger(miner, at=last_of_window)["total"] == MIN_MINER_STAKE  # type: ignore[index]

    own = MIN_MINER_STAKE * SLASH // PERBILL
    from_votes = VOTE * SLASH // PERBILL
    fee = (own + from_votes) * FINDER_FEE // PERBILL
    assert (own, from_votes, fee) == (10_000 * CAI, 15_000 * CAI, 2_500 * CAI)
    assert slashed.attributes == {
        "offender": miner.ss58_address,
        "own": own,
        "voters": from_votes,
        "reporter_fee": fee,
    }

    # the miner: own stake -10%, frozen follows, balance leaves the account, suspended
    assert chain.ledger(miner) == {
        "stash": miner.ss58_address,
        "total": MIN_MINER_STAKE - own,
        "active": MIN_MINER_STAKE - own,
        "unlocking": [],
        "allocated": 0,
    }
    assert chain.account(miner)["frozen"] == MIN_MINER_STAKE - own
    assert chain.free(miner) == before["miner"] - own
    reg = chain.miner(miner)
    assert reg is not None
    assert reg["status"] == "Suspended"
    assert (reg["own_stake"], reg["votes"]) == (MIN_MINER_STAKE - own, VOTE - from_votes)

    # the voter: vote and ledger -10% of the vote
    assert chain.q("Voting", "Votes", voter.ss58_address, miner.ss58_address) == VOTE - from_votes
    assert chain.q("Voting", "TotalVotes", miner.ss58_address) == VOTE - from_votes
    ledger = chain.ledger(voter)
    assert ledger is not None
    assert (ledger["total"], ledger["active"], ledger["allocated"]) == (
        VOTER_BOND - from_votes,
        VOTER_BOND - from_votes,
        VOTE - from_votes,
    )
    assert chain.account(voter)["frozen"] == VOTER_BOND - from_votes
    assert chain.free(voter) == before["voter"] - from_votes
    assert from_votes * MIN_MINER_STAKE == own * VOTE, "slashed in proportion to stake"

    # finder's fee to the reporter, the rest to the treasury
    assert chain.free(reporter) == fee
    assert chain.free(story.notes["treasury"]) - before["treasury"] == own + from_votes - fee
    assert chain.q("Slashing", "UnappliedSlashes", apply_era) == []
    # slashed funds are burned and re-minted to reporter and treasury: issuance is unchanged
    burned = sum(e.attributes["actual_fee"] for e in chain.fees_in(first))
    issuance = [
        chain.q("Balances", "TotalIssuance", at=chain.si.get_block_hash(n))
        for n in (first - 1, first)
    ]
    assert issuance[1] - issuance[0] == -burned
    assert chain.q("Slashing", "SlashHistory", miner.ss58_address) == [
        {"own": own, "voters": from_votes, "era": apply_era}
    ]
    statuses = [
        e.attributes["status"]
        for e in chain.seen("Registry.StatusChanged", since=first)
        if e.attributes["staker"] == miner.ss58_address
    ]
    assert statuses[-1] == "Suspended", statuses
    # a suspended miner takes no new votes
    refused = chain.submit(voter, "Voting", "vote", {"target": miner.ss58_address, "value": CAI})
    assert refused.error_message["name"] == "TargetInactive", refused.error_message


def test_voter_unvotes_unbonds_and_withdraws_after_the_bonding_duration(
    chain: Chain, story: Story
) -> None:
    miner, voter = story.miner, story.voter
    left = VOTER_BOND - VOTE * SLASH // PERBILL
    voted = VOTE - VOTE * SLASH // PERBILL

    # allocated stake cannot be unbonded before the vote is taken back
    blocked = chain.submit(voter, "Staking", "unbond", {"value": left})
    assert blocked.error_message["name"] == "StakeAllocated", blocked.error_message

    receipt = chain.ok(voter, "Voting", "unvote", {"target": miner.ss58_address, "value": voted})
    assert attrs(receipt, "Voting.Unvoted") == [
        {"voter": voter.ss58_address, "target": miner.ss58_address, "amount": voted}
    ]
    assert chain.q("Voting", "Votes", voter.ss58_address, miner.ss58_address) is None
    assert chain.q("Voting", "TotalVotes", miner.ss58_address) == 0
    assert chain.miner(miner)["votes"] == 0  # type: ignore[index]

    receipt = chain.ok(voter, "Staking", "unbond", {"value": left})
    (unbonded,) = attrs(receipt, "Staking.Unbonded")
    era = chain.q("Staking", "CurrentEra", at=receipt.block_hash)
    unlock_era = era + BONDING_DURATION
    assert unbonded == {"stash": voter.ss58_address, "amount": left, "era": unlock_era}
    assert chain.ledger(voter) == {
        "stash": voter.ss58_address,
        "total": left,
        "active": 0,
        "unlocking": [{"value": left, "era": unlock_era}],
        "allocated": 0,
    }
    assert chain.account(voter)["frozen"] == left, "unlocking stake stays frozen"

    # too early: nothing is withdrawn
    early = chain.ok(voter, "Staking", "withdraw_unbonded")
    assert "Staking.Withdrawn" not in names(early)
    assert chain.account(voter)["frozen"] == left

    chain.wait_era(unlock_era)
    receipt = chain.ok(voter, "Staking", "withdraw_unbonded")
    assert attrs(receipt, "Staking.Withdrawn") == [{"stash": voter.ss58_address, "amount": left}]
    assert chain.ledger(voter) is None
    data = chain.account(voter)
    assert data["frozen"] == 0
    assert data["free"] > left, "the withdrawn stake is in the free balance"


# ---- a cancelled slash --------------------------------------------------------------------------


def test_cancelled_slash_leaves_stakes_untouched(chain: Chain) -> None:
    miner, operator, reporter = fresh(), fresh(), fresh()
    chain.ok(miner, "Faucet", "drip")
    chain.ok(miner, "Staking", "bond", {"value": MIN_MINER_STAKE})
    chain.ok(
        miner,
        "Registry",
        "register_miner",
        {
            "operator": operator.ss58_address,
            "info": {"name": b"m2", "description": b"", "url": b"", "gpu_model": b"L4"},
        },
    )
    era = chain.wait_era_start(max_offset=2)
    free_before = chain.free(miner)
    receipt = chain.sudo(
        "Slashing",
        "force_report_offence",
        {
            "offender": miner.ss58_address,
            "reporter": reporter.ss58_address,
            "kind": "InvalidResult",
            "evidence": "0x" + b"e2e: the second miner".hex(),
        },
    )
    (reported,) = attrs(receipt, "Slashing.OffenceReported")
    apply_era = reported["apply_era"]
    assert apply_era == era + SLASH_DEFER
    queue = chain.q("Slashing", "UnappliedSlashes", apply_era)
    (index,) = [i for i, s in enumerate(queue) if s["offender"] == miner.ss58_address]

    receipt = chain.sudo(
        "Slashing", "cancel_deferred_slash", {"era": apply_era, "slash_indices": [index]}
    )
    assert attrs(receipt, "Slashing.SlashCancelled") == [
        {"era": apply_era, "offender": miner.ss58_address}
    ]
    assert chain.era() < apply_era, "cancelled too late: the test was too slow"
    assert chain.q("Slashing", "UnappliedSlashes", apply_era) == []
    # an index that is not there is refused
    bad = chain.sudo_result(
        "Slashing", "cancel_deferred_slash", {"era": apply_era, "slash_indices": [0]}
    )
    assert "Err" in bad, bad

    chain.wait_era(apply_era)
    chain.node.wait_for_block(apply_era * ERA_BLOCKS + 1)
    assert not [
        e
        for e in chain.seen("Slashing.OffenderSlashed", since=apply_era * ERA_BLOCKS)
        if e.attributes["offender"] == miner.ss58_address
    ]
    assert chain.ledger(miner) == {
        "stash": miner.ss58_address,
        "total": MIN_MINER_STAKE,
        "active": MIN_MINER_STAKE,
        "unlocking": [],
        "allocated": 0,
    }
    assert chain.account(miner)["frozen"] == MIN_MINER_STAKE
    assert chain.free(miner) == free_before
    reg = chain.miner(miner)
    assert reg is not None
    assert (reg["status"], reg["own_stake"]) == ("Active", MIN_MINER_STAKE)
    assert chain.q("Slashing", "SlashHistory", miner.ss58_address) == []
    assert chain.free(reporter) == 0
