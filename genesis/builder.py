"""Chain specs (Substrate's JSON layout) and the builder from a spec to the genesis state.

A spec is either "human" (`genesis.runtimeGenesis` with `parameters` and per-pallet `config`)
or "raw" (`genesis.raw.top`: the storage key/value pairs). `build-spec --raw` turns the first
into the second; both give the same genesis hash.

Validators: `config.session.keys` lists `[account, {"aura", "grandpa", "bls", "blsPop"}]` (SS58
addresses for the sr25519/ed25519 keys, hex for the BLS key and its proof of possession, as
`scripts/gen_session_keys.py` prints them); it sets the validator set, Aura's authorities and the
finality set 0. `config.staking.stakers` bonds `[account, amount]` at genesis. A spec without a
session section may give `config.aura.authorities` instead (Aura authorship, no validator set);
giving both is an error.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from chain.codec import CodecError, parse_hex
from chain.crypto import CryptoError, ss58_decode
from chain.frame.code import CODE_KEY
from chain.frame.pallet import Origin
from chain.primitives import Header
from chain.storage.kv import MemoryKV
from chain.storage.overlay import Overlay
from chain.storage.trie import EMPTY_ROOT, MemoryNodeStore, Trie, ordered_root
from pallets.aura import pallet as aura
from pallets.balances import pallet as balances
from pallets.runtime import (
    RUNTIME_CONFIG_KEY,
    RuntimeConfig,
    build_runtime,
    decode_runtime_config,
    runtime_config,
)
from pallets.session import pallet as session
from pallets.staking import pallet as staking
from pallets.sudo import pallet as sudo

SPEC_DIR = Path(__file__).resolve().parent
BUILTIN = {"dev": "dev.json", "local": "local.json"}


class ChainSpecError(ValueError):
    """A chain spec that cannot be loaded or built."""


@dataclasses.dataclass(frozen=True)
class ChainSpec:
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def id(self) -> str:
        return str(self.raw["id"])

    @property
    def chain_type(self) -> str:
        return str(self.raw.get("chainType", "Live"))

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.raw.get("properties") or {})

    @property
    def boot_nodes(self) -> list[str]:
        return list(self.raw.get("bootNodes") or [])

    @property
    def is_raw(self) -> bool:
        return "raw" in self.raw.get("genesis", {})


def load_spec(chain: str) -> ChainSpec:
    """`dev`, `local`, or a path to a JSON chain spec."""
    path = SPEC_DIR / BUILTIN[chain] if chain in BUILTIN else Path(chain)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ChainSpecError(
            f"chain spec {chain!r} not found (use dev, local or a JSON file path)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ChainSpecError(f"chain spec {path} is not valid JSON: {exc}") from exc
    for field in ("name", "id", "genesis"):
        if field not in raw:
            raise ChainSpecError(f"chain spec {path} lacks the field {field!r}")
    return ChainSpec(raw)


def _account(address: str, what: str) -> bytes:
    try:
        return ss58_decode(address)[0]
    except CryptoError as exc:
        raise ChainSpecError(f"{what}: {address!r} is not a valid SS58 address: {exc}") from exc


def genesis_storage(spec: ChainSpec) -> dict[bytes, bytes]:
    """The genesis key/value pairs of a spec (raw or built from its runtime genesis config)."""
    genesis = spec.raw["genesis"]
    if "raw" in genesis:
        top = genesis["raw"].get("top", {})
        try:
            return {
                bytes.fromhex(k.removeprefix("0x")): bytes.fromhex(v.removeprefix("0x"))
                for k, v in top.items()
            }
        except ValueError as exc:
            raise ChainSpecError(f"raw genesis has a malformed hex key or value: {exc}") from exc
    rg = genesis.get("runtimeGenesis")
    if not isinstance(rg, dict) or "parameters" not in rg:
        raise ChainSpecError("genesis.runtimeGenesis.parameters is missing")
    config = runtime_config(rg["parameters"])
    runtime = build_runtime(config)
    cfg = rg.get("config", {})
    kv = MemoryKV()
    state = Overlay(kv)
    ctx = runtime.ctx(state, Origin.root(), 0, [])
    state.put(RUNTIME_CONFIG_KEY, config.encode())
    state.put(CODE_KEY, runtime.code())  # the runtime's identity (chain/frame/code.py)
    try:
        endowed = [
            (_account(a, "balances"), int(v))
            for a, v in cfg.get("balances", {}).get("balances", [])
        ]
        balances.build_genesis(ctx, endowed)
        stakers = [
            (_account(a, "staking staker"), int(v))
            for a, v in cfg.get("staking", {}).get("stakers", [])
        ]
        staking.build_genesis(ctx, stakers)
        session_keys = cfg.get("session", {}).get("keys")
        authorities = cfg.get("aura", {}).get("authorities")
        if session_keys is not None:
            if authorities is not None:
                raise ChainSpecError(
                    "give either session.keys or aura.authorities, not both (the session keys "
                    "decide Aura's authorities)"
                )
            session.build_genesis(ctx, [_session_entry(e) for e in session_keys])
        else:
            aura_authorities = [_account(a, "aura authority") for a in authorities or []]
            aura.build_genesis(ctx, aura_authorities)
            staking.set_validator_count(ctx, len(aura_authorities))  # they author, unchanged
        key = cfg.get("sudo", {}).get("key")
        if key:
            sudo.Key.put(state, _account(key, "sudo key"))
    except (ValueError, TypeError) as exc:
        raise ChainSpecError(f"invalid genesis config: {exc}") from exc
    return {k: v for k, v in sorted(state.changes().items()) if v is not None}


def _hex_bytes(value: Any, length: int, what: str) -> bytes:
    try:
        return parse_hex(value, what, length)
    except CodecError as exc:
        raise ChainSpecError(str(exc)) from exc


def _session_entry(entry: Any) -> tuple[bytes, session.SessionKeys, bytes]:
    """`[account, {"aura": ss58, "grandpa": ss58, "bls": "0x..", "blsPop": "0x.."}]`."""
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
        raise ChainSpecError("session.keys entries are [account, {aura, grandpa, bls, blsPop}]")
    who = _account(entry[0], "session validator")
    keys = entry[1]
    missing = {"aura", "grandpa", "bls", "blsPop"} - set(keys)
    if missing:
        raise ChainSpecError(f"session keys of {entry[0]} lack {sorted(missing)}")
    return (
        who,
        session.SessionKeys(
            aura=_account(keys["aura"], "session aura key"),
            grandpa=_account(keys["grandpa"], "session grandpa key"),
            bls=_hex_bytes(keys["bls"], 48, "session bls key"),
        ),
        _hex_bytes(keys["blsPop"], 96, "session blsPop"),
    )


def runtime_config_of(storage: dict[bytes, bytes]) -> RuntimeConfig:
    raw = storage.get(RUNTIME_CONFIG_KEY)
    if raw is None:
        raise ChainSpecError("genesis state lacks the runtime parameters (:cuckoo:runtime_config)")
    return decode_runtime_config(raw)


@dataclasses.dataclass(frozen=True)
class Genesis:
    header: Header
    nodes: dict[bytes, bytes]
    storage: dict[bytes, bytes]
    config: RuntimeConfig

    @property
    def hash(self) -> bytes:
        return self.header.hash()


def build_genesis(spec: ChainSpec) -> Genesis:
    storage = genesis_storage(spec)
    config = runtime_config_of(storage)
    root, nodes = Trie(MemoryNodeStore(), EMPTY_ROOT).apply(storage)
    header = Header(
        parent_hash=bytes(32),
        number=0,
        state_root=root,
        extrinsics_root=ordered_root([]),
        digest=(),
    )
    return Genesis(header, nodes, storage, config)


def to_raw(spec: ChainSpec) -> dict[str, Any]:
    out = dict(spec.raw)
    storage = genesis_storage(spec)
    out["genesis"] = {
        "raw": {
            "top": {"0x" + k.hex(): "0x" + v.hex() for k, v in storage.items()},
            "childrenDefault": {},
        }
    }
    return out
