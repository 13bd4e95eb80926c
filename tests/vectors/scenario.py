"""A recorded chain: one deterministic dev chain that touches every pallet, for pinning.

`record()` builds the `dev` genesis and authors blocks #1..#N with the real executive over an
in-memory trie: every call signed with a deterministic sr25519 signer (`tests.chaingen`), every
timestamp derived from the slot number. The chain exercises the economy end to end (transfers,
faucet, bond/unbond/rebond/withdraw, miner and coordinator registration, votes, tasks with
results, settlements, an invalid-result report, era rewards, a deferred slash, root calls through
sudo), session keys and a validator-set change, an equivocation report (unsigned, through
`ValidateUnsigned`), and failing calls (module errors in `ExtrinsicFailed`).

The state root and hash of every block are pinned in `pins.json`: a change to how any pallet
stores, encodes or orders its data (events included) changes them. Regenerate deliberately with
`python -m tests.vectors.scenario --write` and say so in the commit (consensus-visible).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chain.consensus import SlotEquivocation
from chain.crypto import SignatureScheme
from chain.hashing import blake2_256
from chain.primitives import (
    DigestItem,
    Era,
    Header,
    encode_signed_extrinsic,
    encode_unsigned_extrinsic,
    signing_payload,
)
from chain.storage.trie import MemoryNodeStore, Trie
from genesis.builder import build_genesis, load_spec
from pallets.aura import pallet as aura
from pallets.executive import Executive
from pallets.registry.pallet import Info
from pallets.runtime import build_runtime
from pallets.session.pallet import SessionKeys
from pallets.tasks.pallet import ResultCommit, TaskCommit
from tests.chaingen import Account, account_from_seed, dev_account

PINS = Path(__file__).with_name("pins.json")
METADATA_DEV = Path(__file__).with_name("metadata_dev.hex")  # the dev runtime's metadata bytes
START_SLOT = 2_000_000
CAI = 10**18
N_BLOCKS = 36


@dataclasses.dataclass
class Recorded:
    genesis_hash: bytes
    metadata_hash: bytes
    blocks: list[tuple[int, bytes, bytes]]  # (number, block hash, state root)
    failed: int  # extrinsics that failed dispatch (ExtrinsicFailed)


class _Chain:
    """Authors blocks on an in-memory trie with the dev runtime."""

    def __init__(self) -> None:
        spec = load_spec("dev")
        genesis = build_genesis(spec)
        self.runtime = build_runtime(genesis.config)
        self.executive = Executive(self.runtime)
        self.store = MemoryNodeStore(genesis.nodes)
        self.genesis_hash = genesis.hash
        self.head: Header = genesis.header
        self.head_hash = genesis.hash
        self.nonces: dict[bytes, int] = {}
        self.blocks: list[tuple[int, bytes, bytes]] = []
        self.failed = 0
        self.author = dev_account("alice")

    def call(self, pallet: str, name: str, **args: Any) -> bytes:
        return self.runtime.call_type.encode(self.runtime.call(pallet, name, **args))

    def signed(self, who: Account, pallet: str, name: str, **args: Any) -> bytes:
        call = self.call(pallet, name, **args)
        nonce = self.nonces.get(who.public, 0)
        self.nonces[who.public] = nonce + 1
        v = self.executive.version
        payload = signing_payload(
            call,
            Era.immortal(),
            nonce,
            0,
            v.spec_version,
            v.transaction_version,
            self.genesis_hash,
            self.genesis_hash,
        )
        return encode_signed_extrinsic(
            call, who.public, SignatureScheme.SR25519, who.sign(payload), Era.immortal(), nonce, 0
        )

    def sudo(self, pallet: str, name: str, **args: Any) -> bytes:
        inner = self.runtime.call(pallet, name, **args)
        return self.signed(self.author, "Sudo", "sudo", call=inner)

    def block(self, *txs: bytes) -> Header:
        number = self.head.number + 1
        slot = START_SLOT + number
        parent = Trie(self.store, self.head.state_root)
        digest = [DigestItem.pre_runtime(aura.ENGINE_ID, slot.to_bytes(8, "little"))]
        builder = self.executive.begin_block(parent, self.head_hash, number, digest)
        now = self.call("Timestamp", "set", now=slot * self.runtime.config.aura.slot_duration_ms)
        builder.apply_inherent(encode_unsigned_extrinsic(now))
        for raw in txs:
            outcome = builder.apply(raw)
            self.failed += 0 if outcome.success else 1
        built = builder.finalize()
        self.store.update(built.nodes)
        seal = DigestItem.seal(aura.ENGINE_ID, self.author.sign(built.header.hash()))
        header = dataclasses.replace(built.header, digest=(*built.header.digest, seal))
        self.head, self.head_hash = header, header.hash()
        self.blocks.append((number, self.head_hash, header.state_root))
        return header

    def until(self, number: int) -> None:
        while self.head.number < number:
            self.block()


def _op(name: str) -> Account:
    return account_from_seed(blake2_256(b"recorded-chain operator " + name.encode()))


def _task(n: int) -> bytes:
    return blake2_256(b"task %d" % n)


def _spec(n: int) -> bytes:
    return blake2_256(b"spec %d" % n)


def _fake_keys(who: Account) -> SessionKeys:
    tag = who.public[:2]
    return SessionKeys(aura=who.public, grandpa=b"\x9a" * 30 + tag, bls=tag * 24)


def _scenario(c: _Chain) -> None:
    alice, bob, charlie = dev_account("alice"), dev_account("bob"), dev_account("charlie")
    dave, eve, ferdie = dev_account("dave"), dev_account("eve"), dev_account("ferdie")
    bob_op, charlie_op, dave_op, eve_op = _op("bob"), _op("charlie"), _op("dave"), _op("eve")
    newcomer = _op("newcomer")
    url = b"http://127.0.0.1:8000"

    def info(name: bytes) -> Info:
        return Info(name=name, description=b"recorded", url=url, gpu_model=b"cpu")

    # 1: transfers, a faucet drip to an empty account, a remark; a transfer that fails
    c.block(
        c.signed(
            alice, "Balances", "transfer_keep_alive", dest=("Id", bob_op.public), value=10 * CAI
        ),
        c.signed(
            alice,
            "Balances",
            "transfer_allow_death",
            dest=("Id", charlie_op.public),
            value=10 * CAI,
        ),
        c.signed(newcomer, "Faucet", "drip"),
        c.signed(bob, "System", "remark_with_event", remark=b"hello"),
        c.signed(
            ferdie, "Balances", "transfer_keep_alive", dest=("Id", alice.public), value=10**9 * CAI
        ),  # InsufficientBalance
    )
    for who in (dave_op, eve_op):
        c.block(
            c.signed(
                alice, "Balances", "transfer_keep_alive", dest=("Id", who.public), value=10 * CAI
            )
        )
    # bonds
    c.block(
        c.signed(bob, "Staking", "bond", value=100_000 * CAI),
        c.signed(charlie, "Staking", "bond", value=3_000_000 * CAI),
        c.signed(dave, "Staking", "bond", value=60_000 * CAI),
        c.signed(eve, "Staking", "bond", value=50_000 * CAI),
        c.signed(ferdie, "Staking", "bond", value=200_000 * CAI),
    )
    # registrations (one fails: operator in use)
    c.block(
        c.signed(bob, "Registry", "register_miner", operator=bob_op.public, info=info(b"bob")),
        c.signed(
            charlie,
            "Registry",
            "register_coordinator",
            operator=charlie_op.public,
            info=info(b"charlie"),
        ),
        c.signed(dave, "Registry", "register_miner", operator=dave_op.public, info=info(b"dave")),
        c.signed(eve, "Registry", "register_miner", operator=eve_op.public, info=info(b"eve")),
        c.signed(ferdie, "Registry", "register_miner", operator=bob_op.public, info=info(b"f")),
    )
    c.block(
        c.signed(ferdie, "Voting", "vote", target=bob.public, value=50_000 * CAI),
        c.signed(ferdie, "Voting", "vote", target=charlie.public, value=40_000 * CAI),
        c.signed(bob, "Registry", "set_commission", commission=100_000_000),
        c.signed(charlie, "Registry", "update_info", info=info(b"charlie v2")),
    )
    # tasks to Dave, Bob and Eve; one settled early, one disputed (a check opens)
    deadline = c.head.number + 6
    c.block(
        c.signed(
            charlie_op,
            "Tasks",
            "commit_tasks",
            batch=[
                TaskCommit(_task(1), _spec(1), dave.public, deadline, CAI // 1),
                TaskCommit(_task(2), _spec(1), bob.public, deadline, CAI // 2),
                TaskCommit(_task(3), _spec(1), eve.public, deadline, CAI // 3),
                TaskCommit(_task(4), _spec(2), bob.public, deadline, CAI // 4),
                TaskCommit(_task(5), _spec(3), eve.public, deadline, CAI // 5),
            ],
        ),
    )
    device = blake2_256(b"device class")
    c.block(
        c.signed(
            dave_op,
            "Tasks",
            "submit_results",
            batch=[ResultCommit(_task(1), blake2_256(b"fake" + device))],
        ),
        c.signed(
            bob_op,
            "Tasks",
            "submit_results",
            batch=[
                ResultCommit(_task(2), blake2_256(b"image 1" + device)),
                ResultCommit(_task(4), blake2_256(b"image 2" + device)),
            ],
        ),
        c.signed(
            eve_op,
            "Tasks",
            "submit_results",
            batch=[ResultCommit(_task(3), blake2_256(b"image 1" + device))],
        ),
    )
    c.block(
        c.signed(charlie_op, "Tasks", "settle_tasks", task_ids=[_task(4)]),
        c.signed(charlie_op, "Tasks", "dispute_task", task_id=_task(1)),
    )
    # session keys and a new validator set; root calls
    c.block(
        c.signed(bob, "Session", "set_keys", keys=_fake_keys(bob), proof=bytes(96)),
        c.sudo("Session", "set_validators", validators=[alice.public, bob.public]),
        c.sudo("Balances", "force_set_balance", who=("Id", newcomer.public), new_free=5 * CAI),
        c.sudo(
            "Slashing",
            "force_report_offence",
            offender=eve.public,
            reporter=None,
            kind="Equivocation",
            evidence=b"recorded",
        ),
    )
    c.block(c.sudo("Slashing", "cancel_deferred_slash", era=2, slash_indices=[0]))
    # an equivocation report: two blocks by Alice for one slot (unsigned, ValidateUnsigned)
    c.block(
        encode_unsigned_extrinsic(
            c.call("Finality", "report_equivocation", proof=_slot_equivocation(alice))
        )
    )
    # unbonding and its reversal, through the era boundaries (rewards and the slash apply)
    c.block(
        c.signed(ferdie, "Voting", "unvote", target=charlie.public, value=10_000 * CAI),
        c.signed(ferdie, "Staking", "unbond", value=5_000 * CAI),
        c.signed(bob, "Staking", "bond_extra", max_additional=1_000 * CAI),
    )
    c.block(c.signed(ferdie, "Staking", "rebond", value=2_000 * CAI))
    c.until(21)
    c.block(
        c.signed(ferdie, "Staking", "unbond", value=1_000 * CAI),
        c.signed(eve, "Registry", "set_operator", operator=_op("eve 2").public),
    )
    c.until(31)
    c.block(
        c.signed(ferdie, "Staking", "withdraw_unbonded"),
        c.signed(eve, "Registry", "deregister"),
        c.signed(dave, "Voting", "vote", target=bob.public, value=1 * CAI),  # own stake needed
    )
    c.until(N_BLOCKS)


def _slot_equivocation(author: Account) -> bytes:
    def header(variant: bytes) -> Header:
        unsealed = Header(
            parent_hash=blake2_256(b"recorded parent"),
            number=3,
            state_root=blake2_256(variant),
            extrinsics_root=blake2_256(b"recorded extrinsics"),
            digest=(
                DigestItem.pre_runtime(aura.ENGINE_ID, (START_SLOT + 3).to_bytes(8, "little")),
            ),
        )
        seal = DigestItem.seal(aura.ENGINE_ID, author.sign(unsealed.hash()))
        return dataclasses.replace(unsealed, digest=(*unsealed.digest, seal))

    return SlotEquivocation(author.public, START_SLOT + 3, header(b"a"), header(b"b")).encode()


def record(scenario: Callable[[_Chain], None] = _scenario) -> Recorded:
    chain = _Chain()
    scenario(chain)
    return Recorded(
        chain.genesis_hash,
        blake2_256(chain.runtime.metadata()),
        chain.blocks,
        chain.failed,
    )


def to_json(rec: Recorded) -> dict[str, Any]:
    return {
        "genesis_hash": "0x" + rec.genesis_hash.hex(),
        "metadata_blake2_256": "0x" + rec.metadata_hash.hex(),
        "failed_extrinsics": rec.failed,
        "blocks": [
            {"number": n, "hash": "0x" + h.hex(), "state_root": "0x" + r.hex()}
            for n, h, r in rec.blocks
        ],
    }


def spec_pins(name: str) -> tuple[dict[str, Any], bytes]:
    """The genesis hash and metadata of a bundled chain spec; and the metadata bytes."""
    genesis = build_genesis(load_spec(name))
    metadata = build_runtime(genesis.config).metadata()
    return {
        "genesis_hash": "0x" + genesis.hash.hex(),
        "metadata_blake2_256": "0x" + blake2_256(metadata).hex(),
        "metadata_bytes": len(metadata),
    }, metadata


def all_pins() -> tuple[dict[str, Any], bytes]:
    dev, dev_metadata = spec_pins("dev")
    local, _ = spec_pins("local")
    return {
        "specs": {"dev": dev, "local": local},
        "recorded_chain": to_json(record()),
    }, dev_metadata


def main(argv: list[str]) -> int:
    pins, dev_metadata = all_pins()
    if "--write" in argv:
        PINS.write_text(json.dumps(pins, indent=1) + "\n")
        METADATA_DEV.write_text(dev_metadata.hex() + "\n")
        print(f"wrote {PINS} and {METADATA_DEV}")
    else:
        print(json.dumps(pins, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
