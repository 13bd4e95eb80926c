"""Chain set-up for miner integration and end-to-end tests, through substrate-interface: bond,
register miners and coordinators with distinct operator keys, vote, commit tasks as a
coordinator, read tasks. Independent actors' transactions run in parallel threads (one
connection each), so a set-up costs a few blocks rather than one block per transaction."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from substrateinterface import Keypair, SubstrateInterface

CAI = 10**18
TASK_PRICE = 10**17  # 0.1 CAI: what test tasks pay (dev Tasks.MinTaskPrice is 0.01 CAI)
T = TypeVar("T")
Step = tuple[Keypair, str, str, dict[str, Any]]
# Two SubstrateInterface objects setting up their runtime (metadata, type registry) at once in
# one process can break each other ('Decoder class for "Compact<u32>" not found'): seen here.
_INIT_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Actor:
    """A staker and its operator (hot) key."""

    staker: Keypair
    operator: Keypair
    name: str


class ChainKit:
    def __init__(self, ws_url: str) -> None:
        self.url = ws_url
        self.si = SubstrateInterface(url=ws_url, ws_options={"timeout": 30})

    def close(self) -> None:
        self.si.close()

    # ---- transactions ---------------------------------------------------------------------------

    @staticmethod
    def _submit(
        si: SubstrateInterface, signer: Keypair, module: str, fn: str, params: dict[str, Any]
    ) -> Any:
        call = si.compose_call(module, fn, params)
        xt = si.create_signed_extrinsic(call=call, keypair=signer)
        receipt = si.submit_extrinsic(xt, wait_for_inclusion=True)
        assert receipt.is_success, (
            f"{module}.{fn} by {signer.ss58_address}: {receipt.error_message}"
        )
        return receipt

    def ok(
        self, signer: Keypair, module: str, fn: str, params: dict[str, Any] | None = None
    ) -> Any:
        return self._submit(self.si, signer, module, fn, params or {})

    def submit(
        self, signer: Keypair, module: str, fn: str, params: dict[str, Any] | None = None
    ) -> Any:
        call = self.si.compose_call(module, fn, params or {})
        xt = self.si.create_signed_extrinsic(call=call, keypair=signer)
        return self.si.submit_extrinsic(xt, wait_for_inclusion=True)

    def run_parallel(self, chains: Sequence[Sequence[Step]]) -> None:
        """Each chain of steps in order, on its own connection; the chains side by side."""

        def run_chain(steps: Sequence[Step]) -> None:
            with _INIT_LOCK:  # substrate-interface's runtime set-up is not thread-safe
                si = SubstrateInterface(url=self.url, ws_options={"timeout": 30})
                si.init_runtime()
            try:
                for signer, module, fn, params in steps:
                    self._submit(si, signer, module, fn, params)
            finally:
                si.close()

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(chains), 1)) as pool:
            for f in [pool.submit(run_chain, c) for c in chains if c]:
                f.result()

    # ---- registrations --------------------------------------------------------------------------

    @staticmethod
    def miner_steps(actor: Actor, bond: int, fee_money: int = 100 * CAI) -> list[Step]:
        info = {"name": actor.name, "description": "test miner", "url": "", "gpu_model": "cpu"}
        return [
            (actor.staker, "Staking", "bond", {"value": bond}),
            (
                actor.staker,
                "Registry",
                "register_miner",
                {"operator": actor.operator.ss58_address, "info": info},
            ),
            (
                actor.staker,
                "Balances",
                "transfer_keep_alive",
                {"dest": actor.operator.ss58_address, "value": fee_money},
            ),
        ]

    @staticmethod
    def coordinator_steps(
        actor: Actor, bond: int, url: str, fee_money: int = 1_000 * CAI
    ) -> list[Step]:
        info = {"name": actor.name, "description": "test coordinator", "url": url, "gpu_model": ""}
        return [
            (actor.staker, "Staking", "bond", {"value": bond}),
            (
                actor.staker,
                "Registry",
                "register_coordinator",
                {"operator": actor.operator.ss58_address, "info": info},
            ),
            (
                actor.staker,
                "Balances",
                "transfer_keep_alive",
                {"dest": actor.operator.ss58_address, "value": fee_money},
            ),
        ]

    @staticmethod
    def voter_steps(voter: Keypair, bond: int, target: Keypair, amount: int) -> list[Step]:
        return [
            (voter, "Staking", "bond", {"value": bond}),
            (voter, "Voting", "vote", {"target": target.ss58_address, "value": amount}),
        ]

    # ---- tasks ----------------------------------------------------------------------------------

    def commit_tasks(
        self,
        coordinator_operator: Keypair,
        items: Sequence[tuple[bytes, bytes, Keypair, int]],
        price: int = TASK_PRICE,
    ) -> int:
        """Commit (task_id, spec_hash, miner staker, deadline) items, each paying `price`; the
        block number."""
        batch = [
            {
                "task_id": "0x" + task_id.hex(),
                "spec_hash": "0x" + spec.hex(),
                "miner": miner.ss58_address,
                "deadline": deadline,
                "price": price,
            }
            for task_id, spec, miner, deadline in items
        ]
        receipt = self.ok(coordinator_operator, "Tasks", "commit_tasks", {"batch": batch})
        return int(self.si.get_block_number(receipt.block_hash))

    def task(self, task_id: bytes) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.si.query("Tasks", "Tasks", ["0x" + task_id.hex()]).value
        return value

    def best(self) -> int:
        return int(self.si.get_block_header()["header"]["number"])

    def q(self, module: str, item: str, *keys: Any) -> Any:
        return self.si.query(module, item, list(keys)).value

    def events(self, first: int, last: int | None = None) -> list[tuple[int, str, Any]]:
        """(block, "Module.Event", attributes) of blocks first..last (default: best)."""
        end = self.best() if last is None else last
        out = []
        for n in range(first, end + 1):
            for record in self.si.get_events(self.si.get_block_hash(n)):
                v = record.value
                out.append((n, f"{v['module_id']}.{v['event_id']}", v["attributes"]))
        return out


def poll_until(
    what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.1
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:  # truthy: an empty list or dict means "not yet"
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
