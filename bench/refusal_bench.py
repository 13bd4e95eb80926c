"""What refusing hostile input costs a node, measured in one run against references. A script,
not a test:

    python bench/refusal_bench.py [--quick] [--repeat N]

1. A call nested 46,001 levels deep (92 KB of `Sudo.sudo`) and one nested 257 levels (one more
   than `MAX_CALL_DEPTH`): the time of each JSON-RPC entry point that decodes an extrinsic to
   refuse it, through the node's RPC dispatcher in process (a dev node, no network), against
   `payment_queryInfo` of a valid signed transfer. py-ecc is loaded first, as in a validator
   node, which raises Python's recursion limit to 100,000 on import (before the limit, that let
   the nested call decode for seconds; without it the call overflowed the stack).
2. The pool's ban list: the cost of refusing a new invalid transaction (an undecodable call,
   each one distinct, so each is validated and banned) with an empty ban list and with a full
   one (100,000 live bans), and their ratio (target about 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

import chain.bls  # noqa: F401  (py-ecc: raises the recursion limit, as in a validator node)
from chain.codec import encode_u32
from chain.primitives import encode_unsigned_extrinsic
from genesis.builder import load_spec
from node.rpc.api import build_rpc
from node.service import Node, NodeConfig
from node.txpool import PoolError, PoolLimits, TxPool
from tests.chaingen import dev_account, sign_transfer


def per_call_ms(fn: Callable[[int], object], n: int) -> tuple[float, object]:
    """Median milliseconds of `fn(i)` over n calls (i = 0..n-1), and what the first returned."""
    times = []
    first: object = None
    for i in range(n):
        t0 = time.perf_counter()
        out = fn(i)
        times.append(time.perf_counter() - t0)
        first = out if i == 0 else first
    return statistics.median(times) * 1e3, first


def nested(node: Node, levels: int, tag: int) -> bytes:
    rt = node.runtime
    remark = rt.call_type.encode(rt.call("System", "remark", remark=tag.to_bytes(4, "little")))
    return encode_unsigned_extrinsic(bytes((rt.by_name["Sudo"].index, 0)) * (levels - 1) + remark)


def nested_calls(node: Node, n: int) -> None:
    server = build_rpc(node.rpc_api())
    request_id = iter(range(10**9))

    def call(method: str, params: list[object]) -> dict[str, object]:
        body = orjson.dumps(
            {"jsonrpc": "2.0", "id": next(request_id), "method": method, "params": params}
        )
        out = server._dispatch(body, None, [])
        assert isinstance(out, bytes)
        answer: dict[str, object] = orjson.loads(out)
        return answer

    alice, bob = dev_account("alice"), dev_account("bob")
    valid = "0x" + sign_transfer(node, alice, 0, bob.public, 10**18).hex()
    reference, answer = per_call_ms(lambda i: call("payment_queryInfo", [valid]), n)
    assert isinstance(answer, dict), answer
    assert "result" in answer, answer
    print(f"reference: payment_queryInfo of a signed transfer  {reference:8.3f} ms")
    print(f"recursion limit {sys.getrecursionlimit():,} (py-ecc loaded, as in a validator node)")
    for levels in (46_001, 257):
        raws = [nested(node, levels, i) for i in range(n)]
        hexes = ["0x" + raw.hex() for raw in raws]
        api = ["0x" + (raw + encode_u32(len(raw))).hex() for raw in raws]
        print(f"\ncall nested {levels:,} levels ({len(raws[0]):,} bytes):")
        cases: list[tuple[str, str, list[str]]] = [
            ("author_submitExtrinsic", "", hexes),
            ("payment_queryInfo", "", hexes),
            ("payment_queryFeeDetails", "", hexes),
            ("state_call", "TransactionPaymentApi_query_info", api),
            ("state_call", "TransactionPaymentApi_query_fee_details", api),
        ]
        for method, api_name, inputs in cases:

            def request(
                i: int, method: str = method, api_name: str = api_name, inputs: list[str] = inputs
            ) -> object:
                return call(method, [api_name, inputs[i]] if api_name else [inputs[i]])

            ms, answer = per_call_ms(request, n)
            error = answer.get("error") if isinstance(answer, dict) else None
            code = error.get("code") if isinstance(error, dict) else "no error"
            name = f"{method} {api_name.split('_', 1)[-1]}".strip()
            print(f"  {name:36s} {ms:7.3f} ms  x{ms / reference:6.2f} of the reference  ({code})")


def ban_list(node: Node, n: int) -> None:
    limits = PoolLimits()
    pool = TxPool(node.executive, node.pool.best, limits)
    counter = iter(range(10**9))

    def refuse(_: int) -> None:
        raw = encode_unsigned_extrinsic(bytes((99, 0)) + next(counter).to_bytes(8, "little"))
        try:
            pool.submit(raw)
        except PoolError:
            return
        raise AssertionError("an undecodable call was accepted")

    empty, _ = per_call_ms(refuse, n)
    pool.banned.clear()
    t0 = time.perf_counter()
    for i in range(limits.max_banned):
        pool.drop(i.to_bytes(32, "little"), ban=True)
    fill_s = time.perf_counter() - t0
    assert len(pool.banned) == limits.max_banned
    full, _ = per_call_ms(refuse, n)
    print(f"\nban list: refusing a new invalid transaction ({n} each, median)")
    print(f"  empty ban list               {empty * 1e3:8.1f} us")
    print(f"  full ({limits.max_banned:,} live bans)      {full * 1e3:8.1f} us")
    print(f"  ratio full / empty           {full / empty:8.2f}   (target ~1)")
    print(f"  filling the list: {fill_s / limits.max_banned * 1e6:.2f} us a ban")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--repeat", type=int, help="requests per case (default 100; 20 quick)")
    args = parser.parse_args()
    n = args.repeat or (20 if args.quick else 100)
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(NodeConfig(spec=load_spec("dev"), base_path=Path(tmp), prometheus_port=None))
        try:
            nested_calls(node, n)
            ban_list(node, n * 20)
        finally:
            node.close()


if __name__ == "__main__":
    main()
