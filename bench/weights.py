"""Benchmarks of every call of the runtime, and the weights generated from them (FRAME's
benchmarking, docs/weights.md).

    python bench/weights.py [--pallet Tasks] [--repeat 15]

For every call of every pallet of the runtime (pallets/runtime.py), a benchmark below prepares a
worst-case-ish state in the in-process mock runtime (tests/pallets/mock.py) and the call's
arguments at the smallest and the largest size of the call's *component* (the input its cost
grows with: a batch's length, a spec's bytes ...; calls without one are measured once). The
apply time of a point is the median, over `--repeat` runs, of dispatching the call on a fresh
overlay over the prepared state, in a checkpoint, as the executive does; the proof size is the
bytes of the storage keys and values the call read from that state.

The two end points fix a line, base + per_item * n, in integer picoseconds of ref_time (FRAME's
unit: 1 ms = 1_000_000_000) and bytes of proof_size; a third point, in the middle, is measured
to check that the cost is linear (the test holds it to the same bounds as the ends). The
command writes the measured points to bench/data/weights.json (`--pallet` replaces that
pallet's entries only) and the generated module pallets/weights.py, one function per call,
which the pallets declare as their weights.
tests/frame/test_weights.py checks both against each other.

The benchmarks run in a fixed state that is the bound the weights assume where no argument
bounds the cost (the checks draw among N_MINERS miners, a target has MAX_VOTERS_PER_TARGET
voters, the slash queue holds QUEUED_SLASHES offences): the docstring of each benchmark says
what it prepares.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import textwrap
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chain.frame.code import CODE_KEY, RuntimeCode  # noqa: E402
from chain.frame.common import PERBILL_ONE  # noqa: E402
from chain.frame.outer import DecodedCall  # noqa: E402
from chain.frame.pallet import DispatchError, snake  # noqa: E402
from chain.hashing import blake2_256  # noqa: E402
from chain.sketch import GRID, sketch_header  # noqa: E402
from chain.storage.kv import MemoryKV  # noqa: E402
from chain.storage.overlay import Overlay  # noqa: E402
from chain.taskproto import result_commitment  # noqa: E402
from node.keystore import derive_key  # noqa: E402
from pallets.config import VerificationConfig  # noqa: E402
from pallets.finality.pallet import FinalityProof  # noqa: E402
from pallets.registry import pallet as registry  # noqa: E402
from pallets.session.pallet import MAX_VALIDATORS, SessionKeys  # noqa: E402
from pallets.slashing import pallet as slashing  # noqa: E402
from pallets.staking import pallet as staking  # noqa: E402
from pallets.system import pallet as system  # noqa: E402
from pallets.tasks import pallet as tasks  # noqa: E402
from pallets.tasks.pallet import Reveal, TaskCommit  # noqa: E402
from pallets.voting.pallet import MAX_TARGETS_PER_VOTER, MAX_VOTERS_PER_TARGET  # noqa: E402
from tests.pallets.mock import (  # noqa: E402
    MockRuntime,
    OriginLike,
    add_validators,
    as_origin,
    fake_pop,
    mock_config,
    slot_equivocation,
)

DATA = ROOT / "bench" / "data" / "weights.json"
MODULE = ROOT / "pallets" / "weights.py"

CAI = 10**18
RICH = 10**9 * CAI  # what every benchmark account holds (1e27 planck)
N_MINERS = 256  # active miners a check draws its checkers among
QUEUED_SLASHES = 16  # offences already waiting in the era's slash queue ...
QUEUED_EXPOSURE = 16  # ... each with this many voters exposed
MIN_MINER = 20_000 * CAI  # dev registry.minMinerStake
MIN_COORDINATOR = 2_000_000 * CAI  # dev registry.minCoordinatorStake


# ---- what a benchmark is -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """A prepared dispatch: the state (in `mock`), who dispatches, and the call."""

    mock: MockRuntime
    origin: OriginLike
    call: DecodedCall


@dataclasses.dataclass(frozen=True)
class Bench:
    pallet: str
    call: str
    component: str | None  # what n counts (None: the call's cost does not depend on its input)
    low: int
    high: int
    build: Callable[[int], Case]  # the case at component size n
    state: str  # what the benchmark prepares (its docstring)
    nested: str | None  # the call it dispatches (Sudo), whose own weight is added to its own

    @property
    def name(self) -> str:
        return f"{self.pallet}.{self.call}"

    @property
    def function(self) -> str:
        return function_name(self.pallet, self.call)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Where it is measured: the ends fix the line, the middle checks that it is one."""
        if self.component is None:
            return (self.low,)
        return (self.low, (self.low + self.high) // 2, self.high)


BENCHES: list[Bench] = []


def function_name(pallet: str, call: str) -> str:
    """The generated weight function of a call: `Tasks.commit_tasks` -> tasks_commit_tasks."""
    return f"{snake(pallet)}_{call}"


def bench(
    pallet: str,
    call: str,
    component: str | None = None,
    low: int = 1,
    high: int = 1,
    *,
    nested: str | None = None,
) -> Callable[[Callable[[int], Case]], Callable[[int], Case]]:
    def register(build: Callable[[int], Case]) -> Callable[[int], Case]:
        doc = " ".join((build.__doc__ or "").split())
        BENCHES.append(Bench(pallet, call, component, low, high, build, doc, nested))
        return build

    return register


# ---- shared state builders -----------------------------------------------------------------------


def acct(tag: int, i: int = 0) -> bytes:
    """A distinct benchmark account (`tag` names its kind, `i` counts)."""
    return bytes([tag]) + i.to_bytes(4, "big") + bytes(27)


SUDO = acct(0xA0)
USER = acct(0xA1)
OTHER = acct(0xA2)
COORD = acct(0xB0)  # the coordinator's staker ...
COORD_OP = acct(0xB1)  # ... and operator
MINERS = [acct(0xC0, i) for i in range(N_MINERS)]
MINER_OPS = {m: acct(0xC1, i) for i, m in enumerate(MINERS)}
VOTERS = [acct(0xD0, i) for i in range(MAX_VOTERS_PER_TARGET)]


def world(*accounts: bytes, check_rate: int = 0) -> MockRuntime:
    """The mock runtime (dev parameters, ED 10, cheap fees, `check_rate` for Tasks) with these
    accounts endowed with RICH each, SUDO holding the sudo key."""
    config = dataclasses.replace(
        mock_config(), verification=VerificationConfig(check_rate=check_rate)
    )
    return MockRuntime(config, dict.fromkeys((SUDO, *accounts), RICH), SUDO)


def run_blocks(m: MockRuntime, n: int) -> None:
    """Execute blocks up to `n` with every on_initialize hook but Aura's (it needs a digest)."""
    from pallets.aura import pallet as aura

    hooks = [h for h in m.runtime.hooks("on_initialize") if h is not aura.on_initialize]
    while m.block_number < n:
        m.run_to_block(m.block_number + 1)
        ctx = m.ctx("root", [])
        for hook in hooks:
            hook(ctx)


def full_info(url: bytes = b"") -> registry.Info:
    """A registration's info with every field at its byte limit."""
    return registry.Info(
        name=b"n" * registry.MAX_NAME,
        description=b"d" * registry.MAX_DESCRIPTION,
        url=(url or b"https://") + b"u" * (registry.MAX_URL - len(url or b"https://")),
        gpu_model=b"g" * registry.MAX_GPU,
    )


def register(m: MockRuntime, who: bytes, operator: bytes, role: str, stake: int) -> None:
    m.dispatch(who, "Staking", "bond", value=stake)
    call = "register_coordinator" if role == "coordinator" else "register_miner"
    m.dispatch(who, "Registry", call, operator=operator, info=full_info(b"https://"))


def add_voters(m: MockRuntime, target: bytes, count: int = MAX_VOTERS_PER_TARGET) -> None:
    """`count` voters (of VOTERS) back `target`."""
    for voter in VOTERS[:count]:
        if staking.get_ledger(m.state, voter) is None:
            m.dispatch(voter, "Staking", "bond", value=1_000 * CAI)
        m.dispatch(voter, "Voting", "vote", target=target, value=CAI)


def fill_slash_queue(m: MockRuntime, count: int = QUEUED_SLASHES) -> None:
    """The slash queue that new offences join holds `count` offences, each exposing
    QUEUED_EXPOSURE voters (written directly: a busy era, not a particular history)."""
    era = staking.CurrentEra.get(m.state) + m.config.slashing.slash_defer_duration
    exposure = [(acct(0xE0, i), CAI) for i in range(QUEUED_EXPOSURE)]
    queue = []
    for i in range(count):
        oid = blake2_256(b"queued" + i.to_bytes(4, "little"))
        slashing.Offences.put(m.state, oid, staking.CurrentEra.get(m.state))
        queue.append(
            slashing.UnappliedSlash(acct(0xE1, i), None, "InvalidResult", oid, 10**8, exposure)
        )
    slashing.UnappliedSlashes.put(m.state, era, queue)


def case(m: MockRuntime, origin: OriginLike, pallet: str, name: str, /, **args: Any) -> Case:
    return Case(m, origin, m.call(pallet, name, **args))


def dispatch(m: MockRuntime, c: Case) -> None:
    """Run a prepared case's call as part of another benchmark's setup."""
    m.dispatch(c.origin, c.call.call.pallet.name, c.call.call.name, **c.call.args)


# ---- System, Timestamp ---------------------------------------------------------------------------


@bench("System", "remark")
def _remark(n: int) -> Case:
    """An empty remark (the call does nothing with its bytes; their length pays the byte fee)."""
    return case(world(USER), USER, "System", "remark", remark=b"")


REMARK_MAX = 4 * 1024 * 1024 - 1024  # about the largest that fits an extrinsic


@bench("System", "remark_with_event", "remark bytes", 0, REMARK_MAX)
def _remark_with_event(n: int) -> Case:
    """A remark of n bytes (hashed into the event)."""
    return case(world(USER), USER, "System", "remark_with_event", remark=b"r" * n)


@bench("System", "set_code")
def _set_code(n: int) -> Case:
    """Root sets the running runtime's descriptor at a higher spec version (both descriptors
    decoded and compared)."""
    m = world(USER)
    current = RuntimeCode.decode(m.runtime.code())
    m.state.put(CODE_KEY, current.encode())
    new = dataclasses.replace(current, spec_version=current.spec_version + 1)
    return case(m, "root", "System", "set_code", code=new.encode())


@bench("Timestamp", "set")
def _timestamp_set(n: int) -> Case:
    """The inherent of block 2 after block 1's time."""
    m = world()
    m.dispatch("none", "Timestamp", "set", now=1_000)
    from pallets.timestamp import pallet as timestamp

    timestamp.DidUpdate.kill(m.state)
    m.run_to_block(2)
    return case(m, "none", "Timestamp", "set", now=2_000)


# ---- Balances ------------------------------------------------------------------------------------


@bench("Balances", "transfer_allow_death")
def _transfer_allow_death(n: int) -> Case:
    """A transfer that creates the destination account."""
    return case(
        world(USER), USER, "Balances", "transfer_allow_death", dest=("Id", OTHER), value=CAI
    )


@bench("Balances", "force_transfer")
def _force_transfer(n: int) -> Case:
    """Root moves funds to a new account."""
    m = world(USER)
    return case(
        m, "root", "Balances", "force_transfer", source=("Id", USER), dest=("Id", OTHER), value=CAI
    )


@bench("Balances", "transfer_keep_alive")
def _transfer_keep_alive(n: int) -> Case:
    """A transfer that creates the destination account."""
    return case(world(USER), USER, "Balances", "transfer_keep_alive", dest=("Id", OTHER), value=CAI)


@bench("Balances", "transfer_all")
def _transfer_all(n: int) -> Case:
    """Everything but the existential deposit to a new account."""
    return case(world(USER), USER, "Balances", "transfer_all", dest=("Id", OTHER), keep_alive=True)


@bench("Balances", "force_set_balance")
def _force_set_balance(n: int) -> Case:
    """Root endows a new account."""
    return case(world(), "root", "Balances", "force_set_balance", who=("Id", OTHER), new_free=CAI)


# ---- Sudo ----------------------------------------------------------------------------------------


def _remark_call(m: MockRuntime) -> DecodedCall:
    return m.call("System", "remark", remark=b"")


@bench("Sudo", "sudo", nested="System.remark")
def _sudo(n: int) -> Case:
    """Root dispatch of an empty remark (the inner call's own weight is added to sudo's)."""
    m = world()
    return case(m, SUDO, "Sudo", "sudo", call=_remark_call(m))


@bench("Sudo", "set_key")
def _sudo_set_key(n: int) -> Case:
    """The key moves to another account."""
    return case(world(), SUDO, "Sudo", "set_key", new=("Id", OTHER))


@bench("Sudo", "sudo_as", nested="System.remark")
def _sudo_as(n: int) -> Case:
    """A signed empty remark for another account (plus the inner call's own weight)."""
    m = world()
    return case(m, SUDO, "Sudo", "sudo_as", who=("Id", USER), call=_remark_call(m))


@bench("Sudo", "remove_key")
def _sudo_remove_key(n: int) -> Case:
    """The key is removed."""
    return case(world(), SUDO, "Sudo", "remove_key")


# ---- Faucet --------------------------------------------------------------------------------------


@bench("Faucet", "drip")
def _drip(n: int) -> Case:
    """A drip that creates the account."""
    return case(world(), USER, "Faucet", "drip")


# ---- Staking -------------------------------------------------------------------------------------


def staked_miner(unlocking: int = 0) -> MockRuntime:
    """USER is a registered miner with `unlocking` chunks of unbonding stake (each a later era)."""
    m = world(USER)
    register(m, USER, OTHER, "miner", MIN_MINER + 1_000 * CAI)
    for _ in range(unlocking):
        m.dispatch(USER, "Staking", "unbond", value=CAI)
        staking.CurrentEra.put(m.state, staking.CurrentEra.get(m.state) + 1)
    return m


@bench("Staking", "bond")
def _bond(n: int) -> Case:
    """A first bond."""
    return case(world(USER), USER, "Staking", "bond", value=1_000 * CAI)


@bench("Staking", "bond_extra")
def _bond_extra(n: int) -> Case:
    """More stake for a registered miner (its registration follows)."""
    return case(staked_miner(), USER, "Staking", "bond_extra", max_additional=CAI)


@bench("Staking", "unbond")
def _unbond(n: int) -> Case:
    """A registered miner opens its last unlocking chunk (MAX_UNLOCKING_CHUNKS - 1 exist)."""
    m = staked_miner(staking.MAX_UNLOCKING_CHUNKS - 1)
    return case(m, USER, "Staking", "unbond", value=CAI)


@bench("Staking", "rebond")
def _rebond(n: int) -> Case:
    """A registered miner takes back every one of MAX_UNLOCKING_CHUNKS chunks."""
    m = staked_miner(staking.MAX_UNLOCKING_CHUNKS)
    return case(m, USER, "Staking", "rebond", value=staking.MAX_UNLOCKING_CHUNKS * CAI)


@bench("Staking", "withdraw_unbonded")
def _withdraw_unbonded(n: int) -> Case:
    """A registered miner withdraws all of MAX_UNLOCKING_CHUNKS chunks."""
    m = staked_miner(staking.MAX_UNLOCKING_CHUNKS)
    staking.CurrentEra.put(m.state, 10_000)
    return case(m, USER, "Staking", "withdraw_unbonded")


# ---- Registry ------------------------------------------------------------------------------------


def bonded(stake: int) -> MockRuntime:
    m = world(USER)
    m.dispatch(USER, "Staking", "bond", value=stake)
    return m


@bench("Registry", "register_miner")
def _register_miner(n: int) -> Case:
    """A bonded account registers with every info field at its limit."""
    m = bonded(MIN_MINER)
    return case(m, USER, "Registry", "register_miner", operator=OTHER, info=full_info())


@bench("Registry", "register_coordinator")
def _register_coordinator(n: int) -> Case:
    """A bonded account registers with every info field at its limit."""
    m = bonded(MIN_COORDINATOR)
    info = full_info(b"https://")
    return case(m, USER, "Registry", "register_coordinator", operator=OTHER, info=info)


@bench("Registry", "update_info")
def _update_info(n: int) -> Case:
    """A coordinator replaces its (full) info."""
    m = world(USER)
    register(m, USER, OTHER, "coordinator", MIN_COORDINATOR)
    return case(m, USER, "Registry", "update_info", info=full_info(b"http://"))


@bench("Registry", "set_operator")
def _set_operator(n: int) -> Case:
    """A miner rotates its operator key."""
    m = world(USER)
    register(m, USER, OTHER, "miner", MIN_MINER)
    return case(m, USER, "Registry", "set_operator", operator=acct(0xA3))


@bench("Registry", "set_commission")
def _set_commission(n: int) -> Case:
    """A miner sets its commission."""
    m = world(USER)
    register(m, USER, OTHER, "miner", MIN_MINER)
    return case(m, USER, "Registry", "set_commission", commission=10**8)


@bench("Registry", "deregister")
def _deregister(n: int) -> Case:
    """A coordinator leaves."""
    m = world(USER)
    register(m, USER, OTHER, "coordinator", MIN_COORDINATOR)
    return case(m, USER, "Registry", "deregister")


# ---- Voting --------------------------------------------------------------------------------------


def voting_world() -> MockRuntime:
    """COORD is a registered coordinator with MAX_VOTERS_PER_TARGET - 1 voters; USER is bonded
    and votes for MAX_TARGETS_PER_VOTER - 1 miners."""
    m = world(COORD, USER, *VOTERS, *MINERS[:MAX_TARGETS_PER_VOTER])
    register(m, COORD, COORD_OP, "coordinator", MIN_COORDINATOR)
    add_voters(m, COORD, MAX_VOTERS_PER_TARGET - 1)
    m.dispatch(USER, "Staking", "bond", value=1_000 * CAI)
    for miner in MINERS[: MAX_TARGETS_PER_VOTER - 1]:
        register(m, miner, MINER_OPS[miner], "miner", MIN_MINER)
        m.dispatch(USER, "Voting", "vote", target=miner, value=CAI)
    return m


@bench("Voting", "vote")
def _vote(n: int) -> Case:
    """A voter's last target (MAX_TARGETS_PER_VOTER) and a target's last voter."""
    return case(voting_world(), USER, "Voting", "vote", target=COORD, value=CAI)


@bench("Voting", "unvote")
def _unvote(n: int) -> Case:
    """A voter of MAX_TARGETS_PER_VOTER targets takes back all of one vote (the target has
    MAX_VOTERS_PER_TARGET voters)."""
    m = voting_world()
    m.dispatch(USER, "Voting", "vote", target=COORD, value=CAI)
    return case(m, USER, "Voting", "unvote", target=COORD, value=CAI)


# ---- Rewards -------------------------------------------------------------------------------------


@bench("Rewards", "credit_work")
def _credit_work(n: int) -> Case:
    """Root credits work to a registered miner (adding to its era's entry)."""
    m = world(USER)
    register(m, USER, OTHER, "miner", MIN_MINER)
    m.dispatch("root", "Rewards", "credit_work", who=USER, role="Miner", units=1)
    return case(m, "root", "Rewards", "credit_work", who=USER, role="Miner", units=5)


# ---- Slashing ------------------------------------------------------------------------------------


@bench("Slashing", "force_report_offence")
def _force_report_offence(n: int) -> Case:
    """Root reports a coordinator with MAX_VOTERS_PER_TARGET voters (all exposed), joining a
    queue of QUEUED_SLASHES offences, with 4 KiB of evidence."""
    m = world(COORD, *VOTERS)
    register(m, COORD, COORD_OP, "coordinator", MIN_COORDINATOR)
    add_voters(m, COORD)
    fill_slash_queue(m)
    return case(
        m,
        "root",
        "Slashing",
        "force_report_offence",
        offender=COORD,
        reporter=USER,
        kind="InvalidResult",
        evidence=b"e" * 4096,
    )


@bench("Slashing", "cancel_deferred_slash")
def _cancel_deferred_slash(n: int) -> Case:
    """Root cancels one offence of a full queue (MAX_UNAPPLIED_PER_ERA offences of
    QUEUED_EXPOSURE exposed voters each), which is decoded and written back without it. The
    cost is the queue's, not the number of indices: cancelling all of them writes nothing back
    and measured about half of this."""
    m = world()
    fill_slash_queue(m, slashing.MAX_UNAPPLIED_PER_ERA)
    era = m.config.slashing.slash_defer_duration
    return case(m, "root", "Slashing", "cancel_deferred_slash", era=era, slash_indices=[0])


# ---- Session, Finality ---------------------------------------------------------------------------


VALIDATORS = [acct(0xF0, i) for i in range(MAX_VALIDATORS)]


def session_keys(who: bytes, version: int = 0) -> SessionKeys:
    """Distinct (not real) session keys of `who`."""
    tag = who + bytes([version])
    return SessionKeys(
        aura=blake2_256(b"aura" + tag),
        grandpa=blake2_256(b"gran" + tag),
        bls=blake2_256(b"bls" + tag) + bytes(16),
    )


def validators_world() -> MockRuntime:
    """MAX_VALIDATORS bonded validators with session keys (a full set)."""
    m = world(*VALIDATORS, USER)
    keys = {v: session_keys(v) for v in VALIDATORS}
    add_validators(m, VALIDATORS, bond=1_000 * CAI, keys=keys)
    return m


@bench("Session", "set_keys")
def _set_keys(n: int) -> Case:
    """A bonded account replaces its keys (the old ones are unindexed) in a full set."""
    m = validators_world()
    m.dispatch(USER, "Staking", "bond", value=CAI)
    m.dispatch(USER, "Session", "set_keys", keys=session_keys(USER), proof=fake_pop(USER))
    keys = session_keys(USER, 1)
    return case(m, USER, "Session", "set_keys", keys=keys, proof=fake_pop(USER, 1))


@bench("Session", "purge_keys")
def _purge_keys(n: int) -> Case:
    """A non-validator purges its keys; the current set and the queued set are full."""
    m = validators_world()
    m.dispatch("root", "Session", "set_validators", validators=VALIDATORS)
    m.dispatch(USER, "Staking", "bond", value=CAI)
    m.dispatch(USER, "Session", "set_keys", keys=session_keys(USER), proof=fake_pop(USER))
    return case(m, USER, "Session", "purge_keys")


@bench("Session", "set_validators", "validators", 1, MAX_VALIDATORS)
def _set_validators(n: int) -> Case:
    """Root queues a set of n keyed validators."""
    m = validators_world()
    return case(m, "root", "Session", "set_validators", validators=VALIDATORS[:n])


@bench("Finality", "submit_finality_proof")
def _submit_finality_proof(n: int) -> Case:
    """The proof of session 2 signed by all of a full set (MAX_VALIDATORS)."""
    from chain.consensus import bitfield_encode

    m = validators_world()
    length = m.config.session.length
    run_blocks(m, 2 * length + 3)
    for b in range(m.block_number):
        system.BlockHash.put(m.state, b, bytes([b % 256]) * 32)
    proof = FinalityProof(
        session=2,
        set_id=0,
        block_number=2 * length,
        block_hash=bytes([(2 * length) % 256]) * 32,
        signers=bitfield_encode(list(range(MAX_VALIDATORS)), MAX_VALIDATORS),
        signature=b"\x5a" * 96,
    )
    return case(m, "none", "Finality", "submit_finality_proof", proof=proof)


@bench("Finality", "report_equivocation")
def _report_equivocation(n: int) -> Case:
    """A slot equivocation (two sr25519-sealed headers; the dearer of the two proof kinds) by a
    validator with MAX_VOTERS_PER_TARGET voters, joining a queue of QUEUED_SLASHES offences."""
    signer = derive_key("//Alice", "sr25519").signer()
    grandpa = derive_key("//Alice", "ed25519").signer()
    m = world(USER, *VOTERS)
    keys = SessionKeys(aura=signer.public, grandpa=grandpa.public, bls=b"\x42" * 48)
    add_validators(m, [USER], bond=MIN_COORDINATOR, keys={USER: keys})
    m.dispatch(USER, "Registry", "register_coordinator", operator=OTHER, info=full_info())
    add_voters(m, USER)
    fill_slash_queue(m)
    proof = slot_equivocation(signer, 77)
    return case(m, "none", "Finality", "report_equivocation", proof=proof)


# ---- Tasks ---------------------------------------------------------------------------------------
# The network: COORD (operator COORD_OP) and N_MINERS active miners, each with its operator;
# MAX_VOTERS_PER_TARGET voters back the coordinator (they are exposed when it is slashed).


def fund_operator(m: MockRuntime, operator: bytes) -> None:
    """The coordinator's operator pays for the tasks it commits (a price and a deposit per task
    are reserved from its free balance): give it plenty."""
    m.dispatch("root", "Balances", "force_set_balance", who=("Id", operator), new_free=RICH)


def task_commit(task_id: bytes, spec_hash: bytes, miner: bytes, deadline: int) -> TaskCommit:
    """One item of a `commit_tasks` batch (paying 0.1 CAI)."""
    return TaskCommit(task_id, spec_hash, miner, deadline, 10**17)


_NETWORK: list[tuple[MockRuntime, int]] = []


def network(check_rate: int = 0) -> MockRuntime:
    """A fresh copy of the Tasks network (built once per check rate, then copied)."""
    for built, rate in _NETWORK:
        if rate == check_rate:
            return fork(built)
    m = world(COORD, *MINERS, *VOTERS, check_rate=check_rate)
    register(m, COORD, COORD_OP, "coordinator", MIN_COORDINATOR)
    fund_operator(m, COORD_OP)
    for miner in MINERS:
        register(m, miner, MINER_OPS[miner], "miner", MIN_MINER)
    add_voters(m, COORD)
    _NETWORK.append((m, check_rate))
    return fork(m)


def fork(m: MockRuntime) -> MockRuntime:
    """An independent copy of a mock's state (same runtime and block number)."""
    backend = MemoryKV(m.backend.iterate())
    backend.write_batch(m.state.changes().items())
    copy = object.__new__(MockRuntime)
    copy.__dict__.update(m.__dict__)
    copy.backend = backend
    copy.state = Overlay(backend)
    copy._events = []
    return copy


def task_id(i: int) -> bytes:
    return blake2_256(b"bench task" + i.to_bytes(4, "little"))


SPEC_BYTES = b'{"model":"tiny","prompt":"a cuckoo in the snow","seed":7}'
SALT = b"\x5a" * 32
SKETCH_VALUES = GRID * GRID * 3
MINER_REVEAL = Reveal(b"\x60" * 32, b"\xd1" * 32, sketch_header(512, 512) + bytes(SKETCH_VALUES))
# Another device class whose sketch is within the agreement distance: compared by sketch.
CHECKER_REVEAL = Reveal(
    b"\x61" * 32, b"\xd2" * 32, sketch_header(512, 512) + bytes([3]) * SKETCH_VALUES
)
FAKE_REVEAL = Reveal(
    b"\x62" * 32, b"\xd2" * 32, sketch_header(512, 512) + bytes([200]) * SKETCH_VALUES
)


def commit_n(
    m: MockRuntime, n: int, *, miner: bytes | None = None, spec: bytes = SPEC_BYTES
) -> None:
    """COORD commits tasks 0..n-1 (to `miner`, or round-robin over the miners), deadline 100
    blocks ahead."""
    batch = [
        task_commit(
            task_id(i), blake2_256(spec), miner or MINERS[i % N_MINERS], m.block_number + 100
        )
        for i in range(n)
    ]
    m.dispatch(COORD_OP, "Tasks", "commit_tasks", batch=batch)


def commitment(who: bytes, tid: bytes, reveal: Reveal) -> bytes:
    return result_commitment(who, tid, reveal.result_hash, reveal.device_hash, reveal.sketch, SALT)


def submit_n(m: MockRuntime, n: int, miner: bytes) -> None:
    batch = [
        tasks.ResultCommit(task_id(i), commitment(miner, task_id(i), MINER_REVEAL))
        for i in range(n)
    ]
    m.dispatch(MINER_OPS[miner], "Tasks", "submit_results", batch=batch)


def reveal(m: MockRuntime, who: bytes, tid: bytes, r: Reveal) -> Case:
    return case(
        m,
        MINER_OPS[who],
        "Tasks",
        "reveal_result",
        task_id=tid,
        result_hash=r.result_hash,
        device_hash=r.device_hash,
        sketch=r.sketch,
        salt=SALT,
    )


def round_checkers(m: MockRuntime, tid: bytes) -> list[bytes]:
    check = tasks.Checks.get(m.state, tid)
    assert check is not None
    return [c.account for c in check.current()]


def disputed(spec: bytes = SPEC_BYTES) -> MockRuntime:
    """Task 0 (MINERS[0]'s, result submitted) disputed by COORD: round 1, its spec due."""
    m = network()
    commit_n(m, 1, miner=MINERS[0], spec=spec)
    submit_n(m, 1, MINERS[0])
    m.dispatch(COORD_OP, "Tasks", "dispute_task", task_id=task_id(0))
    return m


def revealing(answer: Reveal) -> tuple[MockRuntime, list[bytes]]:
    """Task 0 disputed, its spec revealed and every checker of round 1 committed to `answer`:
    the Revealing phase. Returns the checkers."""
    m = disputed()
    tid = task_id(0)
    m.dispatch(COORD_OP, "Tasks", "reveal_spec", task_id=tid, spec=SPEC_BYTES)
    checkers = round_checkers(m, tid)
    for who in checkers:
        c = commitment(who, tid, answer)
        m.dispatch(MINER_OPS[who], "Tasks", "commit_check", task_id=tid, commitment=c)
    return m, checkers


@bench("Tasks", "commit_tasks", "batch", 1, tasks.MAX_BATCH)
def _commit_tasks(n: int) -> Case:
    """COORD commits n tasks, round-robin to the miners."""
    m = network()
    batch = [
        task_commit(task_id(i), blake2_256(SPEC_BYTES), MINERS[i % N_MINERS], 100) for i in range(n)
    ]
    return case(m, COORD_OP, "Tasks", "commit_tasks", batch=batch)


@bench("Tasks", "submit_results", "batch", 1, tasks.MAX_BATCH)
def _submit_results(n: int) -> Case:
    """A miner submits results to n tasks committed to it."""
    m = network()
    miner = MINERS[0]
    commit_n(m, n, miner=miner)
    batch = [
        tasks.ResultCommit(task_id(i), commitment(miner, task_id(i), MINER_REVEAL))
        for i in range(n)
    ]
    return case(m, MINER_OPS[miner], "Tasks", "submit_results", batch=batch)


@bench("Tasks", "settle_tasks", "batch", 1, tasks.MAX_BATCH)
def _settle_tasks(n: int) -> Case:
    """COORD accepts n submitted, drawn (unchecked) results: each is credited to the miner and
    the coordinator."""
    m = network()
    miner = MINERS[0]
    commit_n(m, n, miner=miner)
    submit_n(m, n, miner)
    run_blocks(m, m.block_number + tasks.draw_delay(m.state))  # drawn: not checked
    ids = [task_id(i) for i in range(n)]
    return case(m, COORD_OP, "Tasks", "settle_tasks", task_ids=ids)


@bench("Tasks", "dispute_task")
def _dispute_task(n: int) -> Case:
    """COORD disputes a result whose draw is pending: round 1's three checkers are drawn among
    the N_MINERS miners."""
    m = network()
    commit_n(m, 1, miner=MINERS[0])
    submit_n(m, 1, MINERS[0])
    return case(m, COORD_OP, "Tasks", "dispute_task", task_id=task_id(0))


@bench("Tasks", "reveal_spec", "spec bytes", 1, tasks.MAX_SPEC_BYTES)
def _reveal_spec(n: int) -> Case:
    """COORD reveals the n-byte spec of a disputed task."""
    spec = (SPEC_BYTES * (n // len(SPEC_BYTES) + 1))[:n]
    m = disputed(spec)
    return case(m, COORD_OP, "Tasks", "reveal_spec", task_id=task_id(0), spec=spec)


@bench("Tasks", "commit_check")
def _commit_check(n: int) -> Case:
    """The last checker of round 1 commits (the check moves to Revealing)."""
    m = disputed()
    tid = task_id(0)
    m.dispatch(COORD_OP, "Tasks", "reveal_spec", task_id=tid, spec=SPEC_BYTES)
    *first, last = round_checkers(m, tid)
    for who in first:
        c = commitment(who, tid, CHECKER_REVEAL)
        m.dispatch(MINER_OPS[who], "Tasks", "commit_check", task_id=tid, commitment=c)
    c = commitment(last, tid, CHECKER_REVEAL)
    return case(m, MINER_OPS[last], "Tasks", "commit_check", task_id=tid, commitment=c)


@bench("Tasks", "reveal_result")
def _reveal_result(n: int) -> Case:
    """The last reveal of round 0 of a drawn task (its checker on another device class:
    sketches compared) disagrees with the miner: round 1's three checkers are drawn among the
    N_MINERS miners. (The dearest way a reveal can close a round: a final verdict that credits
    the checkers and reports a false dispute measured 0.4 ms against 2.8 ms for this.)"""
    m = network(PERBILL_ONE)
    commit_n(m, 1, miner=MINERS[0])
    submit_n(m, 1, MINERS[0])
    tid = task_id(0)
    run_blocks(m, m.block_number + tasks.draw_delay(m.state))  # drawn for a check
    m.dispatch(COORD_OP, "Tasks", "reveal_spec", task_id=tid, spec=SPEC_BYTES)
    (checker,) = round_checkers(m, tid)
    c = commitment(checker, tid, FAKE_REVEAL)
    m.dispatch(MINER_OPS[checker], "Tasks", "commit_check", task_id=tid, commitment=c)
    dispatch(m, reveal(m, MINERS[0], tid, MINER_REVEAL))
    return reveal(m, checker, tid, FAKE_REVEAL)


@bench("Tasks", "appeal")
def _appeal(n: int) -> Case:
    """The miner appeals a round-1 Guilty verdict: round 2's five checkers are drawn among the
    N_MINERS miners."""
    m, checkers = revealing(FAKE_REVEAL)
    tid = task_id(0)
    for who, r in [(MINERS[0], MINER_REVEAL), *((c, FAKE_REVEAL) for c in checkers)]:
        dispatch(m, reveal(m, who, tid, r))
    check = tasks.Checks.get(m.state, tid)
    assert check is not None
    assert check.phase == "Appealable", check
    return case(m, MINER_OPS[MINERS[0]], "Tasks", "appeal", task_id=tid)


# ---- measuring -----------------------------------------------------------------------------------


class BenchmarkError(Exception):
    """A benchmark's call failed: its setup is wrong."""


class _Recorder:
    """A read-through view of a state that records the keys read and their values' sizes."""

    def __init__(self, backend: MemoryKV) -> None:
        self.backend = backend
        self.read: dict[bytes, int] = {}

    def get(self, key: bytes) -> bytes | None:
        value = self.backend.get(key)
        self.read[key] = len(value) if value is not None else 0
        return value

    def iterate(
        self, prefix: bytes = b"", start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self.backend.iterate(prefix, start):
            self.read[key] = len(value)
            yield key, value

    @property
    def proof_size(self) -> int:
        return sum(len(key) + size for key, size in self.read.items())


@dataclasses.dataclass(frozen=True)
class Point:
    n: int
    ref_time: int  # median apply time, picoseconds
    proof_size: int  # bytes of storage read
    spread: tuple[int, int]  # fastest and slowest run, picoseconds
    call: bytes  # the encoded call that was measured


def _run(b: Bench, c: Case, backend: Any, call: DecodedCall) -> int:
    m = c.mock
    state = Overlay(backend)
    ctx = m.runtime.ctx(state, as_origin(c.origin), m.block_number, [])
    start = time.perf_counter_ns()
    state.checkpoint()
    try:
        m.runtime.dispatch(ctx, call)
    except DispatchError as exc:
        raise BenchmarkError(f"{b.name}: the benchmarked call failed: {exc}") from exc
    state.commit_checkpoint()
    return time.perf_counter_ns() - start


def measure(b: Bench, n: int, repeat: int) -> Point:
    """Prepare the case at size n, then time `repeat` dispatches of its call (after a warm-up
    that records what it reads) on fresh overlays over the prepared state."""
    c = b.build(n)
    m = c.mock
    if m.state.depth:
        raise BenchmarkError(f"{b.name}: a checkpoint was left open")
    backend = MemoryKV(m.backend.iterate())
    backend.write_batch(m.state.changes().items())
    raw = m.runtime.call_type.encode(c.call)
    call = m.runtime.decode_call(raw)  # as a block carries it
    recorder = _Recorder(backend)
    _run(b, c, recorder, call)
    times = []
    for _ in range(repeat):
        gc.collect()
        times.append(_run(b, c, backend, call) * 1000)
    return Point(
        n, int(statistics.median_low(times)), recorder.proof_size, (min(times), max(times)), raw
    )


STORAGE_OPS = 1_000  # storage operations per timed run (one is too short to time)


def measure_storage(repeat: int) -> dict[str, int]:
    """The ref_time of one storage read and one write as the benchmarks see them (FRAME's
    `DbWeight`): `get` of an existing 32-byte value and `put` of one, on fresh overlays over
    a world's state, median of `repeat` runs of STORAGE_OPS operations each. Call weights are
    measured whole and include their storage accesses: nothing adds these to a weight."""
    m = world(*VOTERS)
    backend = MemoryKV(m.backend.iterate())
    backend.write_batch(m.state.changes().items())
    keys = [system.Account.key_for(v) for v in VOTERS][:STORAGE_OPS]
    keys = (keys * (STORAGE_OPS // len(keys) + 1))[:STORAGE_OPS]
    value = bytes(32)

    def timed(op: Callable[[Overlay, bytes], object]) -> int:
        times = []
        for _ in range(repeat):
            state = Overlay(backend)
            gc.collect()
            start = time.perf_counter_ns()
            for key in keys:
                op(state, key)
            times.append((time.perf_counter_ns() - start) * 1000 // STORAGE_OPS)
        return int(statistics.median_low(times))

    return {
        "read": timed(lambda state, key: state.get(key)),
        "write": timed(lambda state, key: state.put(key, value)),
    }


# ---- fitting and rendering (pure: the test regenerates the module from the data) -----------------


@dataclasses.dataclass(frozen=True)
class Fit:
    ref_base: int
    ref_per: int
    proof_base: int
    proof_per: int


def fits(data: dict[str, Any]) -> dict[str, Fit]:
    """Each call's weight function, by call name: the line through its points, less the weight
    of the call it nests (a wrapper's declared weight is its own plus the nested call's)."""
    lines = {entry["call"]: fit(entry["points"]) for entry in data["calls"]}
    out = dict(lines)
    for entry in data["calls"]:
        inner = lines.get(entry.get("nested") or "")
        if inner is not None:
            own = lines[entry["call"]]
            out[entry["call"]] = dataclasses.replace(
                own,
                ref_base=max(0, own.ref_base - inner.ref_base),
                proof_base=max(0, own.proof_base - inner.proof_base),
            )
    return out


def fit(points: list[dict[str, Any]]) -> Fit:
    """The line through the smallest and the largest point (integers; no negative part)."""
    lo = min(points, key=lambda p: p["n"])
    hi = max(points, key=lambda p: p["n"])

    def line(key: str) -> tuple[int, int]:
        if hi["n"] == lo["n"]:
            return int(lo[key]), 0
        per = max(0, (hi[key] - lo[key]) // (hi["n"] - lo["n"]))
        base = max(0, lo[key] - per * lo["n"])
        return base, per

    (rb, rp), (pb, pp) = line("ref_time"), line("proof_size")
    return Fit(rb, rp, pb, pp)


def _num(x: int) -> str:
    return f"{x:_}"


def render(data: dict[str, Any]) -> str:
    """The source of pallets/weights.py implied by the data file."""
    dates = sorted({entry["date"] for entry in data["calls"]})
    repeats = sorted({entry["repeat"] for entry in data["calls"]})
    made = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    about = (
        f"Made on {data['machine']}, {made}, median of {'/'.join(map(str, repeats))} runs per"
        " point; the measured points are in bench/data/weights.json. Regenerate both with"
        " `python bench/weights.py` (docs/weights.md). ref_time: picoseconds of dispatch on that"
        " machine (1 ms = 1_000_000_000); proof_size: bytes of storage the call read. A function"
        " of n takes the size of its call's component."
    )
    lines = [
        '"""Weights of the runtime\'s calls: generated by bench/weights.py, do not edit.',
        "",
        *textwrap.wrap(about, 96, break_on_hyphens=False),
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from chain.frame.common import Weight",
    ]
    weights = fits(data)
    for entry in data["calls"]:
        f = weights[entry["call"]]
        lines += ["", ""]
        if entry["component"] is None:
            nested = f" (without {entry['nested']}'s)" if entry.get("nested") else ""
            lines += [
                f"def {entry['function']}() -> Weight:",
                f'    """{entry["call"]}{nested}."""',
                f"    return Weight({_num(f.ref_base)}, {_num(f.proof_base)})",
            ]
        else:
            ns = sorted(p["n"] for p in entry["points"])
            lines += [
                f"def {entry['function']}(n: int) -> Weight:",
                f'    """{entry["call"]}; n: {entry["component"]} ({ns[0]}..{ns[-1]})."""',
                f"    return Weight({_num(f.ref_base)} + {_num(f.ref_per)} * n, "
                f"{_num(f.proof_base)} + {_num(f.proof_per)} * n)",
            ]
    storage = data.get("storage")
    if storage is not None:
        for op, what in (("read", "One storage read"), ("write", "One storage write")):
            lines += [
                "",
                "",
                f"def db_{op}() -> Weight:",
                f'    """{what} (System.DbWeight; call weights already include their own)."""',
                f"    return Weight({_num(storage[op])}, 0)",
            ]
    return "\n".join(lines) + "\n"


def encode_call(raw: bytes) -> str:
    """How the data file stores a measured call: zlib-compressed, base64."""
    return base64.b64encode(zlib.compress(raw, 9)).decode()


def decode_call(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores), Python {platform.python_version()}"


def entry_of(b: Bench, points: list[Point], repeat: int, date: str) -> dict[str, Any]:
    return {
        "call": b.name,
        "function": b.function,
        "component": b.component,
        "nested": b.nested,
        "state": b.state,
        "date": date,
        "repeat": repeat,
        "points": [
            {
                "n": p.n,
                "ref_time": p.ref_time,
                "proof_size": p.proof_size,
                "fastest": p.spread[0],
                "slowest": p.spread[1],
                "call": encode_call(p.call),
            }
            for p in points
        ],
    }


def runtime_order() -> list[tuple[str, str]]:
    """(pallet, call) of every call of the runtime, in pallet and call index order."""
    from pallets.runtime import PALLETS

    return [
        (p.name, p.calls[i].name)
        for p in sorted(PALLETS, key=lambda p: p.index)
        for i in sorted(p.calls)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pallet", help="benchmark this pallet's calls only (keep the others)")
    parser.add_argument("--repeat", type=int, default=15, help="runs per point (median)")
    args = parser.parse_args(argv)
    order = runtime_order()
    by_name = {b.name: b for b in BENCHES}
    missing = [f"{p}.{c}" for p, c in order if f"{p}.{c}" not in by_name]
    if missing:
        print(f"no benchmark for: {', '.join(missing)}", file=sys.stderr)
        return 1
    selected = [by_name[f"{p}.{c}"] for p, c in order if args.pallet in (None, p)]
    if not selected:
        print(f"no calls in pallet {args.pallet}", file=sys.stderr)
        return 1
    old: dict[str, dict[str, Any]] = {}
    if args.pallet and DATA.exists():
        old = {e["call"]: e for e in json.loads(DATA.read_text())["calls"]}
    date = datetime.datetime.now(datetime.UTC).date().isoformat()
    print(f"{'call':40} {'n':>8} {'apply ms':>10} {'proof B':>9}")
    for b in selected:
        t0 = time.perf_counter()
        points = [measure(b, n, args.repeat) for n in b.sizes]
        for p in points:
            print(f"{b.name:40} {p.n:>8} {p.ref_time / 1e9:>10.3f} {p.proof_size:>9}")
        old[b.name] = entry_of(b, points, args.repeat, date)
        print(f"{'':40} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    storage = measure_storage(args.repeat)
    print(
        f"{'storage read / write':40} {'':>8} {storage['read'] / 1e9:>10.6f} / "
        f"{storage['write'] / 1e9:.6f}"
    )
    data = {
        "generated_by": "bench/weights.py",
        "machine": machine(),
        "calls": [old[f"{p}.{c}"] for p, c in order if f"{p}.{c}" in old],
        "storage": {**storage, "date": date, "repeat": args.repeat, "ops": STORAGE_OPS},
    }
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(data, indent=1) + "\n")
    MODULE.write_text(render(data))
    print(f"wrote {DATA.relative_to(ROOT)} and {MODULE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
