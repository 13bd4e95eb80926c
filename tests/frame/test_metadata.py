"""Metadata V14 as clients read it: scalecodec decodes it, and every call, event, storage default,
constant and error it describes agrees byte for byte with what the runtime encodes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scalecodec.base import ScaleBytes

from chain.frame.pallet import ModuleError, pascal
from chain.frame.runtime import Runtime
from genesis.builder import load_spec
from pallets.runtime import PALLETS, build_runtime, runtime_config
from pallets.system import pallet as system
from tests.frame.strategies import (
    call_as_scalecodec,
    call_to_scalecodec,
    call_values,
    decode_metadata,
    events,
)

RUNTIME_NAME = "cuckoo_runtime"
FRAME_SIGNED_EXTENSIONS = [
    "CheckNonZeroSender",
    "CheckSpecVersion",
    "CheckTxVersion",
    "CheckGenesis",
    "CheckMortality",
    "CheckNonce",
    "CheckWeight",
    "ChargeTransactionPayment",
]
CORE_PALLETS = [
    (0, "System"),
    (1, "Timestamp"),
    (2, "Balances"),
    (3, "TransactionPayment"),
    (4, "Sudo"),
    (5, "Aura"),
    (6, "Faucet"),
]
SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Scale:
    """The runtime and its metadata decoded by scalecodec, with lookups by path."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.raw = runtime.metadata()
        self.rc, self.m = decode_metadata(self.raw)
        self.v14 = self.m.value[1]["V14"]
        self.types = {t["id"]: t["type"] for t in self.v14["types"]["types"]}

    def ids_by_path(self, path: str) -> list[int]:
        want = path.split("::")
        return [i for i, t in self.types.items() if t["path"] == want]

    def id_of(self, path: str) -> int:
        ids = self.ids_by_path(path)
        assert len(ids) == 1, f"{path}: {ids}"
        return ids[0]

    def obj(self, type_string: str, data: bytes | None = None) -> Any:
        if data is None:
            return self.rc.create_scale_object(type_string, metadata=self.m)
        return self.rc.create_scale_object(type_string, data=ScaleBytes(data), metadata=self.m)

    def decode(self, type_id: int, data: bytes) -> Any:
        return self.obj(f"scale_info::{type_id}", data).decode(check_remaining=True)

    def encode(self, type_id: int, value: Any) -> bytes:
        return bytes(self.obj(f"scale_info::{type_id}").encode(value).data)

    def pallet(self, name: str) -> dict[str, Any]:
        return next(p for p in self.v14["pallets"] if p["name"] == name)

    def storage_default(self, pallet: str, entry: str) -> bytes:
        """Raw default bytes (the decoded JSON shows `Bytes` as text when it is valid UTF-8)."""
        entries = self.m.get_metadata_pallet(pallet)["storage"]["entries"]
        return bytes(next(e for e in entries if e["name"].value == entry)["default"].value_object)


@pytest.fixture(scope="module")
def scale() -> Scale:
    config = runtime_config(load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"])
    return Scale(build_runtime(config))


ALL_CALLS = [(p.name, c.name) for p in PALLETS for c in p.calls.values()]
ALL_EVENTS = [(p.name, cls) for p in PALLETS for cls in p.events]


# ---- structure -----------------------------------------------------------------------------------


def test_metadata_is_prefixed_v14(scale: Scale) -> None:
    assert scale.raw[:5] == b"meta\x0e"
    assert list(scale.m.value[1]) == ["V14"]


def test_metadata_is_deterministic(scale: Scale) -> None:
    assert build_runtime(scale.runtime.config).metadata() == scale.raw


def test_metadata_pallet_indices_and_names(scale: Scale) -> None:
    listed = [(p["index"], p["name"]) for p in scale.v14["pallets"]]
    assert listed == sorted((p.index, p.name) for p in scale.runtime.pallets)
    assert set(CORE_PALLETS) <= set(listed)  # consensus-visible indices never move
    assert len({name for _, name in listed}) == len(listed)


@pytest.mark.parametrize(
    "path",
    [
        "sp_core::crypto::AccountId32",
        "sp_runtime::multiaddress::MultiAddress",
        "sp_runtime::MultiSignature",
        "sp_runtime::generic::era::Era",
        "sp_runtime::generic::unchecked_extrinsic::UncheckedExtrinsic",
        "frame_system::EventRecord",
        "frame_system::AccountInfo",
        "frame_system::Phase",
        "sp_weights::weight_v2::Weight",
        "sp_runtime::generic::digest::DigestItem",
        "sp_runtime::DispatchError",
        "sp_runtime::ModuleError",
        "frame_support::dispatch::DispatchInfo",
        "pallet_balances::types::AccountData",
        "primitive_types::H256",
    ],
)
def test_metadata_type_path_present_once(scale: Scale, path: str) -> None:
    scale.id_of(path)


def test_metadata_runtime_call_and_event_paths(scale: Scale) -> None:
    for name in ("RuntimeCall", "RuntimeEvent"):
        (type_id,) = scale.ids_by_path(f"{RUNTIME_NAME}::{name}")
        assert scale.types[type_id]["path"] == [RUNTIME_NAME, name]
        variants = scale.types[type_id]["def"]["variant"]["variants"]
        assert [v["index"] for v in variants] == sorted(v["index"] for v in variants)
    assert scale.types[scale.v14["runtime_type"]]["path"] == [RUNTIME_NAME, "Runtime"]


def test_metadata_pallet_call_event_error_paths(scale: Scale) -> None:
    for p in scale.v14["pallets"]:
        spec = next(s for s in PALLETS if s.name == p["name"])
        for kind in ("calls", "event", "error"):
            if p[kind] is not None:
                path = scale.types[p[kind]["ty"]]["path"]
                assert path == [
                    *spec.module.split("::"),
                    "pallet",
                    {"calls": "Call"}.get(kind, kind.title()),
                ]


def test_metadata_unchecked_extrinsic_params(scale: Scale) -> None:
    xt = scale.types[scale.v14["extrinsic"]["ty"]]
    assert xt["path"] == ["sp_runtime", "generic", "unchecked_extrinsic", "UncheckedExtrinsic"]
    params = {p["name"]: p["type"] for p in xt["params"]}
    assert list(params) == ["Address", "Call", "Signature", "Extra"]
    assert scale.types[params["Address"]]["path"][-1] == "MultiAddress"
    assert scale.types[params["Call"]]["path"] == [RUNTIME_NAME, "RuntimeCall"]
    assert scale.types[params["Signature"]]["path"] == ["sp_runtime", "MultiSignature"]
    extra = scale.types[params["Extra"]]["def"]["tuple"]
    assert extra == [e["ty"] for e in scale.v14["extrinsic"]["signed_extensions"]]
    assert scale.v14["extrinsic"]["version"] == 4


def test_metadata_signed_extensions_in_frame_order(scale: Scale) -> None:
    exts = scale.v14["extrinsic"]["signed_extensions"]
    assert [e["identifier"] for e in exts] == FRAME_SIGNED_EXTENSIONS
    assert scale.m.get_signed_extensions().keys() == set(FRAME_SIGNED_EXTENSIONS)
    by_name = {e["identifier"]: e for e in exts}
    assert scale.types[by_name["CheckMortality"]["additional_signed"]]["path"] == [
        "primitive_types",
        "H256",
    ]
    era = scale.types[
        scale.types[by_name["CheckMortality"]["ty"]]["def"]["composite"]["fields"][0]["type"]
    ]
    assert era["path"] == ["sp_runtime", "generic", "era", "Era"]
    assert len(era["def"]["variant"]["variants"]) == 256


def test_metadata_era_encodes_like_primitives(scale: Scale) -> None:
    from chain.primitives import Era

    era_id = scale.id_of("sp_runtime::generic::era::Era")
    for era in (Era.immortal(), Era.mortal(64, 1000), Era.mortal(4, 3)):
        assert scale.encode(era_id, scale.decode(era_id, era.encode())) == era.encode()


# ---- calls ---------------------------------------------------------------------------------------


@SLOW
@pytest.mark.parametrize(("pallet", "name"), ALL_CALLS)
@given(data=st.data())
def test_call_ours_decodes_in_scalecodec(
    scale: Scale, pallet: str, name: str, data: st.DataObject
) -> None:
    spec = scale.runtime.by_name[pallet].call_by_name(name)
    call = data.draw(call_values(scale.runtime, spec))
    raw = scale.runtime.call_type.encode(call)
    decoded = scale.obj("Call", raw).decode(check_remaining=True)
    assert (decoded["call_module"], decoded["call_function"]) == (pallet, name)
    assert [a["name"] for a in decoded["call_args"]] == [f.name for f in spec.args]
    reencoded = bytes(scale.obj("Call").encode(call_to_scalecodec(decoded)).data)
    assert reencoded == raw
    assert scale.runtime.decode_call(reencoded) == call


@SLOW
@pytest.mark.parametrize(("pallet", "name"), ALL_CALLS)
@given(data=st.data())
def test_call_scalecodec_encoding_decodes_in_runtime(
    scale: Scale, pallet: str, name: str, data: st.DataObject
) -> None:
    spec = scale.runtime.by_name[pallet].call_by_name(name)
    call = data.draw(call_values(scale.runtime, spec))
    raw = bytes(scale.obj("Call").encode(call_as_scalecodec(call)).data)
    assert scale.runtime.decode_call(raw) == call
    assert raw == scale.runtime.call_type.encode(call)


def test_call_index_matches_metadata(scale: Scale) -> None:
    for p in scale.v14["pallets"]:
        if p["calls"] is None:
            continue
        variants = scale.types[p["calls"]["ty"]]["def"]["variant"]["variants"]
        spec = scale.runtime.by_index[p["index"]]
        assert {v["index"]: v["name"] for v in variants} == {
            i: c.name for i, c in spec.calls.items()
        }


# ---- events --------------------------------------------------------------------------------------


@SLOW
@pytest.mark.parametrize(
    ("pallet", "cls"), ALL_EVENTS, ids=[f"{p}.{c.__name__}" for p, c in ALL_EVENTS]
)
@given(data=st.data())
def test_event_round_trips_through_scalecodec(
    scale: Scale, pallet: str, cls: type, data: st.DataObject
) -> None:
    event = data.draw(events(scale.runtime, cls))
    raw = scale.runtime.event_type.encode(event)
    event_id = scale.id_of(f"{RUNTIME_NAME}::RuntimeEvent")
    decoded = scale.decode(event_id, raw)
    assert (decoded["module_id"], decoded["event_id"]) == (pallet, cls.__name__)
    ev = scale.runtime.event_type.by_class[cls]
    if ev.fields:
        assert list(decoded["attributes"]) == [f.name for f in ev.fields]
    reencoded = scale.encode(event_id, {pallet: {cls.__name__: decoded["attributes"]}})
    assert reencoded == raw
    assert scale.runtime.event_type.decode_all(raw) == event


def test_event_records_decode_as_system_events(scale: Scale) -> None:
    from chain.frame.common import DispatchInfo, Weight
    from pallets.balances.pallet import Transfer

    recs = [
        system.EventRecord(("ApplyExtrinsic", 1), Transfer(bytes(32), b"\x01" * 32, 5), []),
        system.EventRecord(
            ("Finalization", None),
            system.ExtrinsicSuccess(DispatchInfo(Weight(1, 2))),
            [b"\x02" * 32],
        ),
    ]
    raw = system.Events.value_ty.encode(recs)
    entry = next(e for e in scale.pallet("System")["storage"]["entries"] if e["name"] == "Events")
    decoded = scale.decode(entry["type"]["Plain"], raw)
    assert [(d["phase"], d["extrinsic_idx"], d["event_id"]) for d in decoded] == [
        ("ApplyExtrinsic", 1, "Transfer"),
        ("Finalization", None, "ExtrinsicSuccess"),
    ]
    assert decoded[1]["topics"] == ["0x" + "02" * 32]
    assert system.Events.value_ty.decode_all(raw)[0] == recs[0]


# ---- storage and constants -----------------------------------------------------------------------


def test_system_account_default_decodes(scale: Scale) -> None:
    entry = next(e for e in scale.pallet("System")["storage"]["entries"] if e["name"] == "Account")
    assert entry["modifier"] == "Default"
    assert entry["type"]["Map"]["hashers"] == ["Blake2_128Concat"]
    assert scale.types[entry["type"]["Map"]["key"]]["path"] == ["sp_core", "crypto", "AccountId32"]
    raw = scale.storage_default("System", "Account")
    value = scale.decode(entry["type"]["Map"]["value"], raw)
    assert value == {
        "nonce": 0,
        "consumers": 0,
        "providers": 0,
        "sufficients": 0,
        "data": {"free": 0, "reserved": 0, "frozen": 0, "flags": 1 << 127},
    }
    assert system.ACCOUNT_INFO.decode_all(raw) == system.AccountInfo()


def test_every_storage_default_decodes(scale: Scale) -> None:
    for p in scale.v14["pallets"]:
        for entry in (p["storage"] or {"entries": []})["entries"]:
            ty = entry["type"].get("Plain")
            if ty is None:
                ty = entry["type"]["Map"]["value"]
            raw = scale.storage_default(p["name"], entry["name"])
            item = next(
                i for i in scale.runtime.by_name[p["name"]].storage if i.name == entry["name"]
            )
            assert raw == item.default_bytes()
            if entry["modifier"] == "Optional":
                assert raw == b"\x00", entry["name"]
            else:
                assert scale.encode(ty, scale.decode(ty, raw)) == raw, entry["name"]


def test_every_constant_decodes_to_config_value(scale: Scale) -> None:
    for spec in PALLETS:
        pallet = scale.m.get_metadata_pallet(spec.name)
        consts = {c["name"].value: c for c in pallet["constants"]}
        assert list(consts) == [c.name for c in spec.constants]
        for c in spec.constants:
            raw = bytes(consts[c.name]["value"].value_object)
            source = scale.runtime if c.of_runtime else scale.runtime.config
            expected = c.ty.decode_all(c.ty.encode(c.getter(source)))
            assert c.ty.decode_all(raw) == expected, f"{spec.name}.{c.name}"
            scale.decode(consts[c.name]["type"].value, raw)


# ---- errors --------------------------------------------------------------------------------------

ALL_ERRORS = [(p, member) for p in PALLETS if p.error is not None for member in p.error]


@pytest.mark.parametrize(
    ("spec", "member"), ALL_ERRORS, ids=[f"{p.name}.{m.name}" for p, m in ALL_ERRORS]
)
def test_module_error_resolves_by_index(scale: Scale, spec: Any, member: Any) -> None:
    err = ModuleError(member)
    index, error = err.payload["index"], err.payload["error"][0]
    assert index == spec.index
    resolved = scale.m.get_module_error(index, error)
    assert resolved is not None
    assert resolved.value["name"] == pascal(member.name)
    assert re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", resolved.value["name"]), resolved.value["name"]
    assert resolved.value["index"] == int(member)
    assert str(err) == f"{spec.name}.{resolved.value['name']}"


def test_module_error_encodes_as_dispatch_error(scale: Scale) -> None:
    from pallets.balances.pallet import Error

    err = ModuleError(Error.INSUFFICIENT_BALANCE)
    decoded = scale.decode(scale.id_of("sp_runtime::DispatchError"), err.encode())
    assert decoded == {"Module": {"index": 2, "error": "0x02000000"}}
