"""Codec micro-benchmarks: chain.codec / chain.primitives against scalecodec, and signature
verification throughput. A script, not a test:

    python bench/codec_bench.py [--quick]

scalecodec decodes the same extrinsic bytes through an equivalent byte-level struct (it cannot
decode an extrinsic without runtime metadata), so both sides do the same work.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scalecodec.base import RuntimeConfiguration, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

from chain.codec import Decoder, encode_compact
from chain.crypto import SignatureScheme, verify_signature
from chain.primitives import (
    DigestItem,
    Era,
    Extrinsic,
    Header,
    encode_signed_extrinsic,
    signing_payload,
)
from node.keystore import derive_key

BENCH_EXTRINSIC = {
    "type": "struct",
    "type_mapping": [
        ["length", "Compact<u32>"],
        ["version", "u8"],
        ["address_kind", "u8"],
        ["signer", "[u8; 32]"],
        ["signature_kind", "u8"],
        ["signature", "[u8; 64]"],
        ["era", "Era"],
        ["nonce", "Compact<u32>"],
        ["tip", "Compact<u128>"],
        ["pallet_index", "u8"],
        ["call_index", "u8"],
        ["dest_kind", "u8"],
        ["dest", "[u8; 32]"],
        ["value", "Compact<u128>"],
    ],
}


def per_op(fn: Callable[[], object], seconds: float) -> float:
    """Median-of-3 seconds per call, each run lasting about `seconds / 3`."""
    n = 1
    while True:  # calibrate
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > 0.02:
            break
        n *= 4
    reps = max(1, int(n * (seconds / 3) / dt))
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        samples.append((time.perf_counter() - t0) / reps)
    return sorted(samples)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args()
    seconds = 0.3 if args.quick else 1.5

    rc = RuntimeConfiguration()
    rc.update_type_registry(load_type_registry_preset("core"))
    rc.update_type_registry(load_type_registry_preset("legacy"))
    rc.update_type_registry({"types": {"BenchExtrinsic": BENCH_EXTRINSIC}})

    # a signed sr25519 balances.transfer_keep_alive(dest, 1 unit), mortal era, nonce 5
    sr_key = derive_key("0x" + "01" * 32, "sr25519")
    public = sr_key.public
    call = bytes([5, 3, 0]) + bytes(range(32)) + encode_compact(10**12)
    era = Era.mortal(64, 1000)
    genesis = b"\x11" * 32
    payload = signing_payload(call, era, 5, 0, 100, 1, genesis, genesis)
    signature = sr_key.signer().sign(payload)
    raw = encode_signed_extrinsic(call, public, SignatureScheme.SR25519, signature, era, 5, 0)
    assert Extrinsic.decode(raw).signer == public

    def sc_decode_xt() -> object:
        obj = rc.create_scale_object("BenchExtrinsic", data=ScaleBytes(bytearray(raw)))
        return obj.decode()

    sc_value = sc_decode_xt()
    assert isinstance(sc_value, dict)
    assert sc_value["nonce"] == 5
    assert sc_value["value"] == 10**12

    header = Header(
        b"\x22" * 32,
        1_234_567,
        b"\x33" * 32,
        b"\x44" * 32,
        (
            DigestItem.pre_runtime(b"aura", (98_765).to_bytes(8, "little")),
            DigestItem.seal(b"aura", b"\x55" * 64),
        ),
    )
    sc_header_value = {
        "parent_hash": "0x" + header.parent_hash.hex(),
        "number": header.number,
        "state_root": "0x" + header.state_root.hex(),
        "extrinsics_root": "0x" + header.extrinsics_root.hex(),
        "digest": {
            "logs": [
                {"PreRuntime": ("0x" + d.engine.hex(), "0x" + d.data.hex())}
                if d.kind == DigestItem.PRE_RUNTIME
                else {"Seal": ("0x" + d.engine.hex(), "0x" + d.data.hex())}
                for d in header.digest
            ]
        },
    }
    encoded_header = header.encode()
    sc_header = bytes(rc.create_scale_object("Header").encode(sc_header_value).data)
    assert sc_header == encoded_header

    value = 10**18 + 12345  # a Balance-sized compact (big-integer mode)
    compact_bytes = encode_compact(value)

    def ours_compact_decode() -> int:
        return Decoder(compact_bytes).compact()

    def sc_compact_encode() -> object:
        return rc.create_scale_object("Compact<u128>").encode(value)

    def sc_compact_decode() -> object:
        return rc.create_scale_object("Compact<u128>", data=ScaleBytes(compact_bytes)).decode()

    assert sc_compact_decode() == ours_compact_decode() == value

    rows: list[tuple[str, float, float | None]] = [
        (
            f"Extrinsic.decode (sr25519 transfer, {len(raw)} B)",
            per_op(lambda: Extrinsic.decode(raw), seconds),
            per_op(sc_decode_xt, seconds),
        ),
        (
            "Header.encode (2 digest items)",
            per_op(header.encode, seconds),
            per_op(lambda: rc.create_scale_object("Header").encode(sc_header_value), seconds),
        ),
        (
            "Header.decode (2 digest items)",
            per_op(lambda: Header.decode(encoded_header), seconds),
            None,
        ),
        (
            "Compact<u128> encode",
            per_op(lambda: encode_compact(value), seconds),
            per_op(sc_compact_encode, seconds),
        ),
        (
            "Compact<u128> decode",
            per_op(ours_compact_decode, seconds),
            per_op(sc_compact_decode, seconds),
        ),
        (
            "signing_payload (transfer)",
            per_op(lambda: signing_payload(call, era, 5, 0, 100, 1, genesis, genesis), seconds),
            None,
        ),
    ]

    print(f"{'operation':<46} {'ours µs/op':>11} {'scalecodec':>11} {'ratio':>7}")
    for name, ours, theirs in rows:
        if theirs is None:
            print(f"{name:<46} {ours * 1e6:>11.2f} {'-':>11} {'-':>7}")
        else:
            ratio = theirs / ours
            print(f"{name:<46} {ours * 1e6:>11.2f} {theirs * 1e6:>11.2f} {ratio:>6.0f}x")

    import sr25519  # the raw binding, for the library's own ceiling

    ed_key = derive_key("0x" + "42" * 32, "ed25519")
    ed_public, ed_sig = ed_key.public, ed_key.signer().sign(payload)
    ec_key = derive_key("0x" + "07" * 32, "ecdsa")
    ec_account, ec_sig = ec_key.account_id, ec_key.signer().sign(payload)
    sr = SignatureScheme.SR25519
    verify_rows = [
        ("sr25519.verify (raw binding)", lambda: sr25519.verify(signature, payload, public)),
        ("verify_signature sr25519", lambda: verify_signature(sr, signature, payload, public)),
        (
            "verify_signature ed25519",
            lambda: verify_signature(SignatureScheme.ED25519, ed_sig, payload, ed_public),
        ),
        (
            "verify_signature ecdsa (recover + blake2)",
            lambda: verify_signature(SignatureScheme.ECDSA, ec_sig, payload, ec_account),
        ),
    ]
    print()
    print(f"{'signature check':<46} {'µs/op':>11} {'verify/s':>11}")
    for name, fn in verify_rows:
        assert fn() is True
        t = per_op(fn, seconds)
        print(f"{name:<46} {t * 1e6:>11.1f} {1 / t:>11,.0f}")


if __name__ == "__main__":
    main()
