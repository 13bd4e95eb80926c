"""Calls carried by calls: decoding counts the nesting and refuses a call deeper than
`MAX_CALL_DEPTH` levels as it reads it (Substrate's `MAX_EXTRINSIC_DEPTH`), whatever Python's
recursion limit. Before the limit, 46,000 nested `Sudo.sudo` (92 KB) took seconds and a 17 MB
traceback per request where py-ecc had raised the recursion limit, and a RecursionError (an
internal error) from a 500-byte call where it had not.

`main()` runs the same checks in a fresh interpreter with Python's default recursion limit and
without py-ecc (which raises it on import): `test_in_a_fresh_interpreter_with_the_default_limit`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest

from chain.codec import Decoder, encode_compact
from chain.frame.common import Weight
from chain.frame.outer import MAX_CALL_DEPTH, CallTooDeep, DecodedCall
from chain.frame.pallet import PalletSpec, call
from chain.frame.runtime import Runtime
from chain.frame.types import Lazy, Vec
from chain.primitives import encode_unsigned_extrinsic
from chain.storage.trie import MemoryNodeStore, Trie
from genesis.builder import build_genesis, load_spec
from pallets.executive import Executive, InvalidTransaction
from pallets.runtime import build_runtime, runtime_config

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RECURSION_LIMIT = 1000
TOO_DEEP = (MAX_CALL_DEPTH + 1, 46_001)  # levels; 46,001 = the 92 KB call of the report
LONGEST_HEAD = 35  # bytes before the inner call: sudo_as's indices and MultiAddress::Id

# ---- a batch-like pallet: calls carried in a Vec<RuntimeCall> ---------------------------------

UTILITY = PalletSpec("Utility", 40)
UTILITY_CALL = Lazy("RuntimeCall")


@call(UTILITY, 0, weight=Weight())
def batch(
    ctx: Any, calls: Annotated[list[DecodedCall], Vec(UTILITY_CALL), "Vec<RuntimeCall>"]
) -> None:
    """Dispatch calls in order (never dispatched here: decoding only)."""


@call(UTILITY, 1, weight=Weight())
def noop(ctx: Any) -> None:
    """Nothing."""


def dev_runtime() -> Runtime[Any]:
    return build_runtime(
        runtime_config(load_spec("dev").raw["genesis"]["runtimeGenesis"]["parameters"])
    )


def batch_runtime(version_of: Runtime[Any]) -> Runtime[Any]:
    return Runtime(
        name="batch_test",
        version=version_of.version,
        pallets=[UTILITY],
        config=None,
        call_refs=(UTILITY_CALL,),
    )


# ---- call bytes ----------------------------------------------------------------------------------


def _remark(rt: Runtime[Any]) -> bytes:
    return rt.call_type.encode(rt.call("System", "remark", remark=b""))


def nested_sudo(rt: Runtime[Any], levels: int) -> bytes:
    """`Sudo.sudo` wrapping ... `System.remark`: `levels` calls, each inside the one before."""
    return bytes((rt.by_name["Sudo"].index, 0)) * (levels - 1) + _remark(rt)


def nested_sudo_as(rt: Runtime[Any], levels: int) -> bytes:
    """`Sudo.sudo_as(who, call)` and `Sudo.sudo(call)` alternating around `System.remark`."""
    sudo = rt.by_name["Sudo"].index
    heads = (bytes((sudo, 0)), bytes((sudo, 3)) + b"\x00" + bytes(32))  # sudo; sudo_as(Id(0))
    return b"".join(heads[level % 2] for level in range(levels - 1)) + _remark(rt)


def nested_batch(levels: int) -> bytes:
    """`batch([noop, batch([noop, ...])])`: `levels` levels of batches and the innermost noop."""
    head = bytes((UTILITY.index, 0)) + encode_compact(2) + bytes((UTILITY.index, 1))
    return head * (levels - 1) + bytes((UTILITY.index, 1))


def depth_of(value: DecodedCall) -> int:
    """How many call levels a decoded call holds (its deepest chain), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        c, level = stack.pop()
        deepest = max(deepest, level)
        for arg in c.args.values():
            inner = arg if isinstance(arg, list) else [arg]
            stack.extend((x, level + 1) for x in inner if isinstance(x, DecodedCall))
    return deepest


# ---- the checks (also run by main() in a fresh interpreter) -----------------------------------


def check_the_deepest_calls_decode_and_encode_back(rt: Runtime[Any], brt: Runtime[Any]) -> None:
    for raw, runtime in (
        (nested_sudo(rt, MAX_CALL_DEPTH), rt),
        (nested_sudo_as(rt, MAX_CALL_DEPTH), rt),
        (nested_batch(MAX_CALL_DEPTH), brt),
    ):
        decoded = runtime.decode_call(raw)
        assert depth_of(decoded) == MAX_CALL_DEPTH
        assert runtime.call_type.encode(decoded) == raw
        assert decoded.weight.ref_time >= 0  # the weight sums over the levels


def check_deeper_calls_are_refused_as_they_are_read(rt: Runtime[Any], brt: Runtime[Any]) -> None:
    for levels in TOO_DEEP:
        for raw, runtime in (
            (nested_sudo(rt, levels), rt),
            (nested_sudo_as(rt, levels), rt),
            (nested_batch(levels), brt),
        ):
            d = Decoder(raw)
            with pytest.raises(CallTooDeep, match=f"deeper than {MAX_CALL_DEPTH}"):
                runtime.call_type.decode(d)
            # refused on reaching the first level too many: no further than its head
            assert d.pos < len(raw)
            assert d.pos <= LONGEST_HEAD * MAX_CALL_DEPTH


def check_the_pool_refuses_them_as_undecodable(rt: Runtime[Any]) -> None:
    genesis = build_genesis(load_spec("dev"))
    state = Trie(MemoryNodeStore(genesis.nodes), genesis.header.state_root)
    ex = Executive(rt)
    for levels in TOO_DEEP:
        with pytest.raises(InvalidTransaction) as info:
            ex.validate_transaction(
                state, genesis.hash, 0, encode_unsigned_extrinsic(nested_sudo(rt, levels))
            )
        assert info.value.kind == "BadFormat"
        assert f"deeper than {MAX_CALL_DEPTH}" in info.value.detail


def check_the_deepest_call_dispatches() -> None:
    """256 levels of `Sudo.sudo_as` by the sudo key, each dispatching the next: nested dispatch
    takes a few frames per level and still fits the default limit."""
    from tests.pallets.mock import ALICE, GENESIS_BALANCES, SUDO_KEY, MockRuntime, mock_config

    mock = MockRuntime(mock_config(), GENESIS_BALANCES, SUDO_KEY)
    rt = mock.runtime
    inner = rt.call("System", "remark_with_event", remark=b"x")
    for _ in range(MAX_CALL_DEPTH - 2):
        inner = rt.call("Sudo", "sudo_as", who=("Id", ALICE), call=inner)
    inner = rt.decode_call(rt.call_type.encode(inner))
    mock.dispatch(ALICE, "Sudo", "sudo_as", who=("Id", ALICE), call=inner)
    events = mock.events()
    assert len(events) == MAX_CALL_DEPTH  # the remark's, then one SudoAsDone per sudo_as
    assert all(getattr(e, "sudo_result", ("Ok", ())) == ("Ok", ()) for e in events)
    rt.try_state(mock.state)


def main() -> None:
    """The checks above in this interpreter, which must have the default recursion limit and no
    py-ecc; prints "ok"."""
    assert sys.getrecursionlimit() == DEFAULT_RECURSION_LIMIT, sys.getrecursionlimit()
    rt = dev_runtime()
    brt = batch_runtime(rt)
    check_the_deepest_calls_decode_and_encode_back(rt, brt)
    check_deeper_calls_are_refused_as_they_are_read(rt, brt)
    check_the_pool_refuses_them_as_undecodable(rt)
    check_the_deepest_call_dispatches()
    assert "py_ecc" not in sys.modules
    assert sys.getrecursionlimit() == DEFAULT_RECURSION_LIMIT
    print("ok")


# ---- tests ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runtimes() -> tuple[Runtime[Any], Runtime[Any]]:
    rt = dev_runtime()
    return rt, batch_runtime(rt)


def test_the_deepest_calls_decode_and_encode_back(
    runtimes: tuple[Runtime[Any], Runtime[Any]],
) -> None:
    check_the_deepest_calls_decode_and_encode_back(*runtimes)


def test_deeper_calls_are_refused_as_they_are_read(
    runtimes: tuple[Runtime[Any], Runtime[Any]],
) -> None:
    check_deeper_calls_are_refused_as_they_are_read(*runtimes)


def test_the_pool_refuses_them_as_undecodable(runtimes: tuple[Runtime[Any], Runtime[Any]]) -> None:
    check_the_pool_refuses_them_as_undecodable(runtimes[0])


def test_the_deepest_call_dispatches() -> None:
    check_the_deepest_call_dispatches()


def test_in_a_fresh_interpreter_with_the_default_limit() -> None:
    """The same checks where nothing raised Python's recursion limit (py-ecc does on import)."""
    out = subprocess.run(
        [sys.executable, "-c", "import tests.frame.test_call_depth as t; t.main()"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"
