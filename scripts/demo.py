"""Start a dev node and show a signed transfer landing and finalizing.

Uses only public interfaces: the `cuckoo-node` command and the substrate-interface client, as a
user or wallet would. Run through `bash scripts/dev.sh` (installs first) or directly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CAI = 10**18


def rpc(url: str, method: str, params: list[object] | None = None) -> object:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    ).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        out = json.loads(resp.read())
    if "error" in out:
        raise RuntimeError(out["error"])
    return out["result"]


def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(
                f"cuckoo-node exited early with status {proc.returncode}; see its log above"
            )
        try:
            rpc(url, "system_health")
            header = rpc(url, "chain_getHeader")
            if isinstance(header, dict) and int(header["number"], 16) >= 1:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the node did not answer on {url} within {deadline_s:.0f} s")


def fmt(amount: int) -> str:
    return f"{amount / CAI:,.6f} CAI"


def demo(ws_url: str) -> None:
    from substrateinterface import Keypair, SubstrateInterface

    si = SubstrateInterface(url=ws_url)
    alice = Keypair.create_from_uri("//Alice")
    bob = Keypair.create_from_uri("//Bob")
    version = si.rpc_request("state_getRuntimeVersion", [])["result"]
    print(
        f"\nConnected to {si.chain} ({si.token_symbol}, {si.token_decimals} decimals, "
        f"SS58 prefix {si.ss58_format}), runtime {version['specName']} v{version['specVersion']}"
    )

    def free(who: Keypair) -> int:
        return int(si.query("System", "Account", [who.ss58_address]).value["data"]["free"])

    before_alice, before_bob = free(alice), free(bob)
    print(f"//Alice {alice.ss58_address}: {fmt(before_alice)}")
    print(f"//Bob   {bob.ss58_address}: {fmt(before_bob)}")
    amount = 10 * CAI
    call = si.compose_call(
        "Balances", "transfer_keep_alive", {"dest": bob.ss58_address, "value": amount}
    )
    fee = si.get_payment_info(call, alice)["partialFee"]
    print(
        f"\nSigning Balances.transfer_keep_alive(//Bob, {fmt(amount)}) with //Alice (sr25519, "
        f"mortal era of 64 blocks), estimated fee {fmt(fee)}"
    )
    xt = si.create_signed_extrinsic(call=call, keypair=alice, era={"period": 64})
    started = time.monotonic()
    receipt = si.submit_extrinsic(xt, wait_for_finalization=True)
    elapsed = time.monotonic() - started
    block = si.get_block_header(receipt.block_hash)["header"]
    print(
        f"Included and finalized in block #{block['number']} ({receipt.block_hash}) "
        f"after {elapsed:.2f} s"
    )
    print(
        f"  extrinsic hash {receipt.extrinsic_hash}, success: {receipt.is_success}, "
        f"fee paid: {fmt(receipt.total_fee_amount)}"
    )
    for ev in receipt.triggered_events:
        print(f"  event {ev.value['module_id']}.{ev.value['event_id']}")
    finalized = si.get_block_header(si.get_chain_finalised_head())["header"]["number"]
    print(f"Finalized head is #{finalized}")
    after_alice, after_bob = free(alice), free(bob)
    print(
        f"//Alice now {fmt(after_alice)} (-{fmt(before_alice - after_alice)}), "
        f"//Bob now {fmt(after_bob)} (+{fmt(after_bob - before_bob)})"
    )
    if not receipt.is_success or after_bob - before_bob != amount:
        raise SystemExit("the demo transfer did not land as expected")
    si.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rpc-port", type=int, default=9944)
    parser.add_argument("--once", action="store_true", help="stop after the demo")
    args = parser.parse_args()
    http_url = f"http://127.0.0.1:{args.rpc_port}"
    ws_url = f"ws://127.0.0.1:{args.rpc_port}"
    base = Path(tempfile.mkdtemp(prefix="cuckoo-dev-"))
    cmd = ["cuckoo-node", "--dev", "--base-path", str(base), "--rpc-port", str(args.rpc_port)]
    print("==> starting", " ".join(cmd))
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_ready(http_url, proc)
        demo(ws_url)
        if args.once:
            return 0
        print(
            f"\nThe dev node keeps running: RPC {ws_url} (Polkadot.js Apps: "
            f"https://polkadot.js.org/apps/?rpc={ws_url}), "
            "Prometheus http://127.0.0.1:9615/metrics. Ctrl-C stops it."
        )
        proc.wait()
        return proc.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        import shutil

        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
