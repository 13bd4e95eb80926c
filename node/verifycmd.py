"""`cuckoo-node verify-finality`: check a stored per-session BLS finality proof, fully.

    cuckoo-node verify-finality [--rpc URL] [--session N] [--at BLOCKHASH]
    cuckoo-node verify-finality --proof-hex HEX --keys-hex HEX --genesis HEX

Online, over JSON-RPC (`state_getStorage`, `chain_getBlockHash`, `chain_getFinalizedHead`,
`chain_getHeader`), at the finalized head unless `--at` says otherwise: reads the proof of
session N (default: the latest stored, scanning down from `Session.CurrentIndex`), the BLS keys
and proofs of possession of its set (`Finality.SetBlsKeys[set_id]`), and checks
- the signer bitfield: well formed, more than 2/3 of the set;
- that the proven block is the canonical block at its number;
- every signer's proof of possession (the defence against rogue-key aggregates);
- the aggregate signature over `finality_proof_message(genesis, session, set_id, number, hash)`.
Offline, the same checks but the canonical one, on the SCALE `FinalityProof` and
`Vec<([u8; 48], [u8; 96])>` given in hex. The checks of the proof itself are
node.finality.verify's; this module reads the chain and reports.

Exit status: 0 valid, 1 invalid (or no proof stored), 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TextIO

from chain.codec import CodecError, Decoder
from chain.consensus import ConsensusError, bitfield_decode, threshold
from node.errors import NodeError
from node.finality.bls_proofs import (
    FinalityProof,
    decode_set_bls_keys,
    finality_proof_key,
    session_index_key,
    set_bls_keys_key,
)
from node.finality.verify import ProofCheck, check_proof

COMMAND = "verify-finality"
DEFAULT_RPC = "http://127.0.0.1:9944"
EXIT_VALID, EXIT_INVALID, EXIT_ERROR = 0, 1, 2
SCAN_LIMIT = 1_000  # sessions scanned down from the current one for the latest proof


class VerifyError(NodeError):
    """A usage or connection problem (exit status 2), as one operator-facing line."""


# ---- JSON-RPC ---------------------------------------------------------------------------------


class RpcClient:
    """Blocking JSON-RPC 2.0 over HTTP POST (urllib): enough for a one-shot command."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise VerifyError(f"--rpc must be an http(s) URL, got {url!r}")
        self.url = url
        self.timeout = timeout
        self._id = 0

    def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise VerifyError(f"{method}: HTTP {exc.code} from {self.url}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise VerifyError(f"cannot reach {self.url}: {reason}") from None
        except ValueError:
            raise VerifyError(f"{method}: the reply from {self.url} is not JSON") from None
        if not isinstance(reply, dict):
            raise VerifyError(f"{method}: malformed JSON-RPC reply")
        if reply.get("error") is not None:
            error = reply["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise VerifyError(f"{method}: {message}")
        return reply.get("result")

    def storage(self, key: bytes, at: str) -> bytes | None:
        value = self.call("state_getStorage", "0x" + key.hex(), at)
        return None if value is None else _unhex(value, "storage value")


def _unhex(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise VerifyError(f"{what}: expected a hex string")
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise VerifyError(f"{what}: not valid hex") from None


# ---- command line -----------------------------------------------------------------------------


def add_verify_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `verify-finality` on the `cuckoo-node` parser."""
    p = subparsers.add_parser(
        COMMAND,
        help="check a per-session BLS finality proof (over JSON-RPC, or offline)",
        description="Check a stored per-session BLS finality proof: signers' proofs of "
        "possession, the signer bitfield, the aggregate signature and (online) that the "
        "proven block is canonical. Exit status: 0 valid, 1 invalid, 2 usage/connection error.",
    )
    # `--rpc` needs allow_abbrev=False on the top-level parser when that one has options
    # starting with --rpc (argparse matches prefixes against it first); --rpc-url always works
    p.add_argument(
        "--rpc",
        "--rpc-url",
        dest="rpc",
        default=DEFAULT_RPC,
        help=f"node JSON-RPC URL (default {DEFAULT_RPC})",
    )
    p.add_argument(
        "--session",
        type=int,
        default=None,
        metavar="N",
        help="session whose proof to check (default: the latest stored)",
    )
    p.add_argument(
        "--at",
        default=None,
        metavar="BLOCKHASH",
        help="read the chain state at this block (default: the finalized head)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="RPC timeout in seconds")
    p.add_argument("--proof-hex", default=None, help="offline: SCALE FinalityProof, hex")
    p.add_argument(
        "--keys-hex", default=None, help="offline: SCALE Vec<([u8;48],[u8;96])> of the set, hex"
    )
    p.add_argument("--genesis", default=None, help="offline: genesis hash, hex")


def run_verify(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run `verify-finality`; returns the exit status (0 valid, 1 invalid, 2 error)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr

    def progress(line: str) -> None:
        out.flush()  # what the report printed so far comes first
        print(line + " ...", file=err, flush=True)

    try:
        offline = (args.proof_hex, args.keys_hex, args.genesis)
        if any(v is not None for v in offline):
            return _run_offline(args, out, progress)
        return _run_online(args, out, progress)
    except VerifyError as exc:
        print(f"verify-finality: {exc}", file=err)
        return EXIT_ERROR


def _run_offline(args: argparse.Namespace, out: TextIO, progress: Callable[[str], None]) -> int:
    if args.proof_hex is None or args.keys_hex is None or args.genesis is None:
        raise VerifyError("offline mode needs all of --proof-hex, --keys-hex and --genesis")
    if args.session is not None or args.at is not None:
        raise VerifyError("--session and --at are for the online mode")
    genesis = _unhex(args.genesis, "--genesis")
    if len(genesis) != 32:
        raise VerifyError("--genesis must be a 32-byte hash")
    try:
        proof = FinalityProof.decode(_unhex(args.proof_hex, "--proof-hex"))
    except CodecError as exc:
        raise VerifyError(f"--proof-hex is not a SCALE FinalityProof: {exc}") from None
    try:
        keys = decode_set_bls_keys(_unhex(args.keys_hex, "--keys-hex"))
    except CodecError as exc:
        raise VerifyError(f"--keys-hex is not a SCALE list of BLS keys: {exc}") from None
    check = check_proof(proof, keys, genesis, progress=progress)
    return _report(out, proof, genesis, check, "not checked (offline)")


def _run_online(args: argparse.Namespace, out: TextIO, progress: Callable[[str], None]) -> int:
    rpc = RpcClient(args.rpc, args.timeout)
    genesis = _unhex(rpc.call("chain_getBlockHash", 0), "genesis hash")
    if args.at is not None:
        at_bytes = _unhex(args.at, "--at")
        if len(at_bytes) != 32:
            raise VerifyError("--at must be a 32-byte block hash")
        at = "0x" + at_bytes.hex()
    else:
        at = rpc.call("chain_getFinalizedHead")
        _unhex(at, "finalized head")
    header = rpc.call("chain_getHeader", at)
    if not isinstance(header, dict):
        raise VerifyError(f"no block {at} on this node")
    at_number = _number(header.get("number"))

    if args.session is not None:
        if args.session < 0:
            raise VerifyError("--session must be >= 0")
        session: int = args.session
        raw = rpc.storage(finality_proof_key(session), at)
        if raw is None:
            print(f"NO PROOF: no finality proof stored for session {session} at {at}", file=out)
            return EXIT_INVALID
    else:
        found = _latest_proof(rpc, at)
        if found is None:
            print(f"NO PROOF: no finality proof stored at {at}", file=out)
            return EXIT_INVALID
        session, raw = found

    try:
        proof = FinalityProof.decode(raw)
    except CodecError as exc:
        return _invalid(out, f"the stored proof of session {session} does not decode: {exc}")
    if proof.session != session:
        return _invalid(out, f"the proof stored for session {session} is for {proof.session}")
    raw_keys = rpc.storage(set_bls_keys_key(proof.set_id), at)
    if raw_keys is None:
        return _invalid(out, f"no BLS keys stored for set {proof.set_id}")
    try:
        keys = decode_set_bls_keys(raw_keys)
    except CodecError as exc:
        return _invalid(out, f"the BLS keys of set {proof.set_id} do not decode: {exc}")

    canonical = rpc.call("chain_getBlockHash", proof.block_number)
    canonical_hash = None if canonical is None else _unhex(canonical, "block hash")
    if canonical_hash != proof.block_hash:
        try:
            signers = tuple(bitfield_decode(proof.signers, len(keys)))
        except ConsensusError:
            signers = ()
        if canonical_hash is None:
            reason = f"this chain has no block #{proof.block_number}"
        else:
            reason = (
                f"block #{proof.block_number} of this chain is 0x{canonical_hash.hex()}, "
                "not the proven block"
            )
        return _report(out, proof, genesis, ProofCheck(False, reason, signers, len(keys)), "no")
    where = f"yes (state at #{at_number} {at})"
    if proof.block_number > at_number:
        where = f"yes, beyond the state's block #{at_number}"
    check = check_proof(proof, keys, genesis, progress=progress)
    return _report(out, proof, genesis, check, where)


def _latest_proof(rpc: RpcClient, at: str) -> tuple[int, bytes] | None:
    raw_index = rpc.storage(session_index_key(), at)
    if raw_index is None:
        current = 0
    else:
        try:
            d = Decoder(raw_index)
            current = d.u32()
            d.finish()
        except CodecError:
            raise VerifyError("Session.CurrentIndex does not decode as a u32") from None
    for session in range(current, max(-1, current - SCAN_LIMIT), -1):
        raw = rpc.storage(finality_proof_key(session), at)
        if raw is not None:
            return session, raw
    return None


def _number(value: Any) -> int:
    try:
        if isinstance(value, str):
            return int(value, 16) if value.startswith("0x") else int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    except ValueError:
        pass
    raise VerifyError("chain_getHeader: malformed block number")


def _invalid(out: TextIO, reason: str) -> int:
    print(f"INVALID: {reason}", file=out)
    return EXIT_INVALID


def _report(
    out: TextIO, proof: FinalityProof, genesis: bytes, check: ProofCheck, canonical: str
) -> int:
    if check.set_size:
        listed = ", ".join(map(str, check.signers)) or "none"
        signers = (
            f"{len(check.signers)}/{check.set_size} (validators {listed}; "
            f"threshold {threshold(check.set_size)})"
        )
    else:
        signers = f"bitfield 0x{proof.signers.hex()}"
    lines = [
        f"finality proof of session {proof.session}",
        f"  set id:    {proof.set_id}",
        f"  block:     #{proof.block_number} 0x{proof.block_hash.hex()}",
        f"  signers:   {signers}",
        f"  genesis:   0x{genesis.hex()}",
        f"  canonical: {canonical}",
        "VALID" if check.valid else f"INVALID: {check.reason}",
    ]
    print("\n".join(lines), file=out, flush=True)
    return EXIT_VALID if check.valid else EXIT_INVALID
