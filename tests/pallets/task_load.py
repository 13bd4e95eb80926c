"""A steady load of inference tasks on the real runtime, and a census of the state it leaves
(tests/pallets/test_task_state_bounded.py on the mock runtime, bench/task_state_bench.py in
real blocks stored by the node).

`SteadyLoad` plays one coordinator and its miners, all honest. Every block:
  * the coordinator commits `tasks_per_block` tasks, round-robin over the miners, each due
    `deadline_blocks` later, with a spec and a result the size of real ones (a ~170-byte
    canonical JSON spec, a full 979-byte sketch);
  * each miner submits blind results for its tasks committed the block before, except every
    `missed_every`-th task (Missed at its deadline);
  * the coordinator settles each submitted result once its draw has passed and it was not
    drawn for a check, except every `late_every`-th (Accepted at its deadline);
  * a result drawn for a check (`CheckRate`) goes through its round: the coordinator reveals the
    spec, the drawn checker re-runs it and commits, then the miner and the checker reveal.

Each block's moves are decided from the state *before* the block, as daemons reading the chain
would, so the same moves run on the mock runtime (`MockLoad`) or go into signed extrinsics of
real blocks. Every party acts in the first block it can: a checked task settles about five
blocks after its commit, the others two blocks after it (or at their deadline).

`take_census` counts the entries and the bytes (key + value, as the key/value state holds them)
of every storage item of a runtime.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from chain.frame.pallet import StorageValue
from chain.frame.runtime import Runtime
from chain.hashing import blake2_256
from chain.sketch import GRID, sketch_header
from chain.storage.overlay import Overlay
from chain.taskproto import result_commitment
from pallets.config import RuntimeConfig
from pallets.randomness import pallet as randomness
from pallets.registry import pallet as registry
from pallets.tasks import pallet as tasks
from pallets.tasks.pallet import CheckPhase, ResultCommit, Reveal, TaskCommit, TaskStatus
from tests.pallets.mock import MockRuntime

CAI = 10**18
DEVICE = blake2_256(b"cuckoo/load/device")  # every miner runs the same device class


@dataclasses.dataclass(frozen=True, slots=True)
class LoadShape:
    tasks_per_block: int = 10
    deadline_blocks: int = 10
    missed_every: int = 10  # every n-th task gets no result (0: none)
    late_every: int = 5  # every n-th result is left to its deadline (0: none)


@dataclasses.dataclass(frozen=True, slots=True)
class Party:
    staker: bytes
    operator: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    """A Tasks call its signer (an operator) makes."""

    signer: bytes
    call: str
    args: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class _Job:
    miner: Party
    spec: bytes
    is_missed: bool
    is_late: bool


def spec_of(task_id: bytes, n: int) -> bytes:
    """A canonical JSON spec the size of a real one (the coordinator's, miner/engine's format)."""
    spec = {
        "guidance_scale": "5.0",
        "height": 512,
        "model": "sd15",
        "negative_prompt": "",
        "prompt": f"a cuckoo in a pine tree, study {n}",
        "seed": int.from_bytes(task_id[:4], "little"),
        "steps": 20,
        "width": 512,
    }
    return json.dumps(spec, separators=(",", ":"), sort_keys=True).encode()


def honest_result(task_id: bytes) -> Reveal:
    """What every honest run of the task gives: one device class, one full-size sketch."""
    cells = GRID * GRID * 3
    sketch = sketch_header(512, 512) + hashlib.shake_256(b"sketch" + task_id).digest(cells)
    return Reveal(blake2_256(b"png" + task_id), DEVICE, sketch)


def salt_of(staker: bytes, task_id: bytes) -> bytes:
    return blake2_256(b"cuckoo/load/salt" + staker + task_id)


def commitment_of(staker: bytes, task_id: bytes) -> bytes:
    r = honest_result(task_id)
    return result_commitment(
        staker, task_id, r.result_hash, r.device_hash, r.sketch, salt_of(staker, task_id)
    )


def chunks(items: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(items), tasks.MAX_BATCH):
        yield items[i : i + tasks.MAX_BATCH]


class SteadyLoad:
    """The moves of one honest coordinator and its honest miners, block by block."""

    def __init__(
        self, shape: LoadShape, coordinator: Party, miners: list[Party], price: int, seed: bytes
    ) -> None:
        self.shape = shape
        self.coordinator = coordinator
        self.miners = miners
        self.by_staker = {m.staker: m for m in miners}
        self.price = price
        self.seed = seed
        self.committed = 0  # tasks committed so far
        self._open: dict[bytes, _Job] = {}  # committed, not yet seen final

    def moves(self, state: Any, block: int) -> list[Move]:
        """What everyone does in block `block`, from `state`, the state before it."""
        out: list[Move] = []
        results: dict[bytes, list[ResultCommit]] = {}
        settle: list[bytes] = []
        for task_id, job in list(self._open.items()):
            task = tasks.Tasks.get(state, task_id)
            if task is None or not task.status.is_open:
                del self._open[task_id]
            elif task.status == TaskStatus.COMMITTED:
                if not job.is_missed and block <= task.deadline:
                    commitment = commitment_of(job.miner.staker, task_id)
                    results.setdefault(job.miner.operator, []).append(
                        ResultCommit(task_id, commitment)
                    )
            elif task.status == TaskStatus.SUBMITTED:
                if task.draw_at is None and not job.is_late and block <= task.deadline:
                    settle.append(task_id)
            else:
                out.extend(self._check_moves(state, task_id, job))
        for operator, batch in results.items():
            out.extend(Move(operator, "submit_results", {"batch": b}) for b in chunks(batch))
        coordinator = self.coordinator.operator
        out.extend(Move(coordinator, "settle_tasks", {"task_ids": b}) for b in chunks(settle))
        out.extend(
            Move(coordinator, "commit_tasks", {"batch": b}) for b in chunks(self._commit(block))
        )
        return out

    def _commit(self, block: int) -> list[TaskCommit]:
        shape = self.shape
        batch = []
        for _ in range(shape.tasks_per_block):
            n = self.committed
            self.committed += 1
            task_id = blake2_256(b"cuckoo/load/task" + self.seed + n.to_bytes(8, "little"))
            miner = self.miners[n % len(self.miners)]
            spec = spec_of(task_id, n)
            self._open[task_id] = _Job(
                miner,
                spec,
                is_missed=shape.missed_every > 0 and n % shape.missed_every == 1,
                is_late=shape.late_every > 0 and n % shape.late_every == 0,
            )
            deadline = block + shape.deadline_blocks
            batch.append(TaskCommit(task_id, blake2_256(spec), miner.staker, deadline, self.price))
        return batch

    def _check_moves(self, state: Any, task_id: bytes, job: _Job) -> list[Move]:
        check = tasks.Checks.get(state, task_id)
        if check is None:
            return []
        if check.phase == CheckPhase.SPEC_DUE:
            args = {"task_id": task_id, "spec": job.spec}
            return [Move(self.coordinator.operator, "reveal_spec", args)]
        if check.phase == CheckPhase.COMMITTING:
            return [
                Move(
                    self.by_staker[c.account].operator,
                    "commit_check",
                    {"task_id": task_id, "commitment": commitment_of(c.account, task_id)},
                )
                for c in check.current()
                if c.commitment is None
            ]
        if check.phase == CheckPhase.REVEALING:
            revealing = [c.account for c in check.current() if c.commitment and not c.reveal]
            if check.miner_reveal is None:
                revealing.insert(0, job.miner.staker)
            return [self._reveal(self.by_staker[who], task_id) for who in revealing]
        return [Move(job.miner.operator, "appeal", {"task_id": task_id})]  # Appealable

    @staticmethod
    def _reveal(who: Party, task_id: bytes) -> Move:
        r = honest_result(task_id)
        args = {
            "task_id": task_id,
            "result_hash": r.result_hash,
            "device_hash": r.device_hash,
            "sketch": r.sketch,
            "salt": salt_of(who.staker, task_id),
        }
        return Move(who.operator, "reveal_result", args)


def party(kind: str, index: int) -> Party:
    return Party(
        blake2_256(f"cuckoo/load/{kind}/{index}".encode()),
        blake2_256(f"cuckoo/load/{kind}-op/{index}".encode()),
    )


class MockLoad:
    """The steady load on a `MockRuntime`: one coordinator and `n_miners` miners registered at
    block 1; `step` runs one block (fresh randomness, every `on_initialize` hook, the moves) and
    commits it, so that `state` is the post-state of the block."""

    def __init__(
        self, config: RuntimeConfig, shape: LoadShape, n_miners: int = 10, seed: bytes = b""
    ) -> None:
        coordinator = party("coordinator", 0)
        miners = [party("miner", i) for i in range(n_miners)]
        min_coordinator = config.registry.min_coordinator_stake
        min_miner = config.registry.min_miner_stake
        endowed = {coordinator.staker: 2 * min_coordinator, coordinator.operator: 1_000_000 * CAI}
        endowed |= {m.staker: 2 * min_miner for m in miners}
        self.m = MockRuntime(config, endowed, None)
        self._register(coordinator, min_coordinator, "register_coordinator")
        for miner in miners:
            self._register(miner, min_miner, "register_miner")
        self._commit_block()
        self.seed = seed
        self.load = SteadyLoad(shape, coordinator, miners, config.tasks.min_task_price, seed)
        self.hooks = [
            h
            for h in self.m.runtime.hooks("on_initialize")
            if h.__module__ != "pallets.aura.pallet"  # it needs a pre-runtime digest
        ]

    def _register(self, who: Party, stake: int, call: str) -> None:
        self.m.dispatch(who.staker, "Staking", "bond", value=stake)
        info = registry.Info(name=b"load", url=b"https://coordinator.example")
        self.m.dispatch(who.staker, "Registry", call, operator=who.operator, info=info)

    def _commit_block(self) -> None:
        self.m.backend.write_batch(self.m.state.changes().items())
        self.m.state = Overlay(self.m.backend)

    @property
    def block(self) -> int:
        return self.m.block_number

    def step(self) -> None:
        moves = self.load.moves(self.m.state, self.block + 1)
        self.m.run_to_block(self.block + 1)
        mix = blake2_256(b"cuckoo/load/mix" + self.seed + self.block.to_bytes(8, "little"))
        randomness.Mix.put(self.m.state, mix)  # as this block's RANDAO reveal would
        ctx = self.m.ctx("root", [])
        for hook in self.hooks:
            hook(ctx)
        for move in moves:
            self.m.dispatch(move.signer, "Tasks", move.call, **move.args)
        self._commit_block()


# ---- the census ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Census:
    """Entries and bytes (key + value) per storage item ("Pallet.Item"); `other` holds keys of
    no declared item."""

    entries: dict[str, int]
    sizes: dict[str, int]

    def count(self, item: str) -> int:
        return self.entries.get(item, 0)

    def pallet_bytes(self, pallet: str) -> int:
        return sum(n for item, n in self.sizes.items() if item.split(".")[0] == pallet)

    def pallet_entries(self, pallet: str) -> int:
        return sum(n for item, n in self.entries.items() if item.split(".")[0] == pallet)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def total_entries(self) -> int:
        return sum(self.entries.values())


def storage_names(runtime: Runtime[RuntimeConfig]) -> dict[bytes, str]:
    """Each storage item's 32-byte key (a value) or key prefix (a map) -> "Pallet.Item"."""
    names = {}
    for spec in runtime.pallets:
        for item in spec.storage:
            key = item.key if isinstance(item, StorageValue) else item.prefix  # type: ignore[attr-defined]
            names[key] = f"{spec.name}.{item.name}"
    return names


def take_census(names: dict[bytes, str], state: Any) -> Census:
    """Walk the whole of `state` (anything with `iterate(prefix)`: a store, an overlay, a
    trie)."""
    entries: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for key, value in state.iterate(b""):
        item = names.get(key[:32], "other")
        entries[item] = entries.get(item, 0) + 1
        sizes[item] = sizes.get(item, 0) + len(key) + len(value)
    return Census(entries, sizes)
