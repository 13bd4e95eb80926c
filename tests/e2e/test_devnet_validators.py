"""`cuckoo-devnet --validators 4 --once`: four validators, finality, and the demo on top of them.

Runs the command a user runs as a subprocess on free ports (1 s slots, and the pattern solver so
that no model is needed) and checks what it prints: four validator nodes with distinct peer ids
and RPC ports, each seeing the three others, finality advancing on every node (before the demo,
and further after it), the four-machine recipe with //Alice's peer id as the bootnode, and the
demo's image and receipt with its on-chain trail.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NODE_LINE = re.compile(
    r"^\s{4}(alice|bob|charlie|dave)\s+(12D3KooW\w+)\s+(ws://127\.0\.0\.1:\d+)\s+"
    r"best #(\d+)\s+finalized #(\d+)\s+peers (\d+)",
    flags=re.MULTILINE,
)
AFTER_LINE = re.compile(
    r"^\s{4}(alice|bob|charlie|dave)\s+best #(\d+)\s+finalized #(\d+)$", flags=re.MULTILINE
)


def _free_ports(n: int) -> list[int]:
    """n distinct free ports, each with a free neighbourhood of 4 (the devnet counts up)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = int(s.getsockname()[1])
            if port + 4 < 65536 and not any(abs(port - q) < 5 for q in ports):
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


@pytest.mark.skipif(shutil.which("cuckoo-devnet") is None, reason="cuckoo-devnet is not installed")
def test_devnet_four_validators_finalize_and_serve_the_demo(tmp_path: Path) -> None:
    rpc, p2p, prom, coord, portal_port = _free_ports(5)
    out = tmp_path / "demo.png"
    cmd = [
        "cuckoo-devnet",
        "--validators",
        "4",
        "--once",
        "--data-dir",
        str(tmp_path / "net"),
        "--rpc-port",
        str(rpc),
        "--p2p-port",
        str(p2p),
        "--prometheus-port",
        str(prom),
        "--coordinator-port",
        str(coord),
        "--portal-port",
        str(portal_port),
        "--block-time-ms",
        "1000",
        "--miner-solver",
        "pattern",
        "--out",
        str(out),
        "--prompt",
        "four validators",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, check=False)
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted((tmp_path / "net" / "logs").glob("*.log"))
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{logs}"
    if shutil.which("npm"):  # the staking portal is built and served, its URL printed
        assert f"staking portal: http://127.0.0.1:{portal_port}/" in proc.stdout, proc.stdout
    text = proc.stdout

    nodes = {m[0]: m[1:] for m in NODE_LINE.findall(text)}
    assert sorted(nodes) == ["alice", "bob", "charlie", "dave"], text
    assert len({peer for peer, *_ in nodes.values()}) == 4, "peer ids must differ"
    assert len({url for _, url, *_ in nodes.values()}) == 4, "RPC ports must differ"
    assert nodes["alice"][1] == f"ws://127.0.0.1:{rpc}"
    for name, (_, _, best, final, peers) in nodes.items():
        assert int(peers) == 3, f"{name} sees {peers} peers"
        assert 1 <= int(final) <= int(best), f"{name}: finalized #{final}, best #{best}"
    # after the demo, finality kept moving on every node
    after = {m[0]: (int(m[1]), int(m[2])) for m in AFTER_LINE.findall(text)}
    assert sorted(after) == sorted(nodes), text
    for name, (_, final_after) in after.items():
        assert final_after > int(nodes[name][3]), f"{name}'s finality did not advance"

    # the four-machine recipe names Alice's peer id as the others' bootnode
    alice_peer = nodes["alice"][0]
    for name in ("bob", "charlie", "dave"):
        assert re.search(
            rf"cuckoo-node --chain local .*--{name} .*--bootnodes "
            rf"/ip4/ALICE_IP/tcp/30333/ws/p2p/{alice_peer}",
            text,
        ), text

    assert out.read_bytes().startswith(PNG_MAGIC)
    fields = dict(re.findall(r"^\s{6}(\w+)\s+(\S+)$", text, flags=re.MULTILINE))
    commit, result, settle = (
        int(fields[k]) for k in ("commit_block", "result_block", "settle_block")
    )
    assert 0 < commit <= result <= settle
    assert fields["status"] == "Accepted"
    assert int(fields["settled_at"]) == settle
    assert "==> done (--once)" in text
