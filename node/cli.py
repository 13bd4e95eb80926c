"""`cuckoo-node`: Substrate's command line where one exists.

cuckoo-node --dev --tmp --rpc-port 9944       a fresh single-validator dev chain
cuckoo-node --chain local --base-path DIR --alice --port 30333 --rpc-port 9944
cuckoo-node --chain local --base-path DIR2 --bob --port 30334 --rpc-port 9945 \
    --bootnodes /ip4/127.0.0.1/tcp/30333/ws/p2p/12D3KooW...
cuckoo-node verify-finality --rpc http://127.0.0.1:9944
cuckoo-node build-spec --chain dev [--raw]
cuckoo-node key generate | inspect | insert
cuckoo-node purge-chain --base-path DIR --chain dev [-y]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from genesis.builder import ChainSpecError, load_spec, to_raw
from node.chaindb import ARCHIVE_CANONICAL, blocks_pruning_arg, state_pruning_arg
from node.errors import NodeError
from node.paths import db_dir, default_base_path

log = logging.getLogger("cuckoo")

DEV_ACCOUNTS = ("alice", "bob", "charlie", "dave", "eve", "ferdie")


def _count(text: str) -> int:
    """A non-negative integer argument."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cuckoo-node",
        description="Cuckoo chain node (Substrate-compatible)",
        allow_abbrev=False,
    )
    p.add_argument(
        "--dev",
        action="store_true",
        help="development chain: --chain dev, validator with //Alice, and --tmp unless --base-path",
    )
    p.add_argument(
        "--tmp", action="store_true", help="run in a temporary directory deleted on exit"
    )
    p.add_argument("--base-path", "-d", type=Path, help="where the database and keystore live")
    p.add_argument("--chain", default=None, help="dev, local, or a path to a chain spec JSON")
    p.add_argument(
        "--validator", action="store_true", help="author blocks with the keystore's Aura key"
    )
    p.add_argument("--name", default="cuckoo-node", help="a human-readable name for this node")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="p2p port (default 30333; with --dev an ephemeral port unless given)",
    )
    p.add_argument(
        "--listen-addr",
        default=None,
        help="p2p listen address as a multiaddr, e.g. /ip4/0.0.0.0/tcp/30333/ws",
    )
    p.add_argument("--no-p2p", action="store_true", help="run without peer-to-peer networking")
    p.add_argument("--node-key", default=None, help="the p2p identity: an ed25519 seed (hex)")
    p.add_argument(
        "--node-key-file", type=Path, default=None, help="file holding the p2p ed25519 seed"
    )
    p.add_argument(
        "--unsafe-test-equivocate",
        action="store_true",
        help="TEST ONLY: seal two different blocks for one slot (once, when connected to peers)",
    )
    p.add_argument("--rpc-port", type=int, default=9944, help="JSON-RPC port (HTTP and WebSocket)")
    p.add_argument("--rpc-external", action="store_true", help="listen for RPC on all interfaces")
    p.add_argument(
        "--rpc-cors",
        default=None,
        metavar="ORIGINS",
        help="browser origins allowed to call the RPC (HTTP and WebSocket): `all`, or a "
        "comma-separated list such as http://localhost:*,https://polkadot.js.org (`:*` any "
        "port). Default: on development and local chains localhost, 127.0.0.1 and [::1] (any "
        "port, http and https) and https://polkadot.js.org; on live chains none",
    )
    p.add_argument(
        "--bootnodes",
        nargs="*",
        default=[],
        help="peers to connect to, as multiaddrs /ip4/HOST/tcp/PORT/ws/p2p/PEER_ID",
    )
    from node.network import PeerSlots

    slots = PeerSlots()
    p.add_argument(
        "--in-peers",
        type=_count,
        default=slots.in_peers,
        help=f"peers that dial us at most (default {slots.in_peers})",
    )
    p.add_argument(
        "--out-peers",
        type=_count,
        default=slots.out_peers,
        help=f"peers we dial at most (default {slots.out_peers})",
    )
    p.add_argument(
        "--in-peers-per-ip",
        type=_count,
        default=slots.in_peers_per_ip,
        help=f"inbound peers from one IP address at most, loopback exempt (default "
        f"{slots.in_peers_per_ip})",
    )
    p.add_argument("--prometheus-port", type=int, default=9615, help="Prometheus /metrics port")
    p.add_argument("--no-prometheus", action="store_true", help="do not expose Prometheus metrics")
    p.add_argument(
        "--block-time-ms", type=int, default=None, help="override the chain spec's slot duration"
    )
    p.add_argument(
        "--state-pruning",
        type=state_pruning_arg,
        default=None,
        metavar="N|archive",
        help="keep the state of the last N finalized blocks (and of every block not finalized "
        "yet), or all states: archive (default: 256 for a new database, else as it was created)",
    )
    p.add_argument(
        "--blocks-pruning",
        type=blocks_pruning_arg,
        default=ARCHIVE_CANONICAL,
        metavar="N|archive-canonical|archive",
        help="keep the bodies of the last N finalized blocks, of every finalized block "
        "(archive-canonical, the default), or of every block, forks too (archive)",
    )
    p.add_argument("--log", "-l", default="info", help="log level (error, warn, info, debug)")
    for name in DEV_ACCOUNTS:
        p.add_argument(
            f"--{name}",
            action="store_true",
            help=f"shortcut: --validator with the //{name.capitalize()} dev key in the keystore",
        )
    sub = p.add_subparsers(dest="command")
    bs = sub.add_parser("build-spec", help="print a chain spec as JSON")
    bs.add_argument("--chain", default="dev")
    bs.add_argument("--raw", action="store_true", help="genesis as raw storage key/values")
    bs.add_argument("--dev", action="store_true", help="same as --chain dev")
    pc = sub.add_parser("purge-chain", help="delete a chain's database")
    pc.add_argument("--base-path", "-d", type=Path, default=None)
    pc.add_argument("--chain", default="dev")
    pc.add_argument("--dev", action="store_true")
    pc.add_argument("-y", action="store_true", help="do not ask for confirmation")
    from node.keycmd import add_key_parser

    add_key_parser(sub)
    from node.blockio import add_blockio_parsers

    add_blockio_parsers(sub)
    from node.verifycmd import add_verify_parser

    add_verify_parser(sub)
    return p


def _cmd_build_spec(args: argparse.Namespace) -> int:
    spec = load_spec("dev" if args.dev else args.chain)
    out = to_raw(spec) if args.raw else spec.raw
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _cmd_purge_chain(args: argparse.Namespace) -> int:
    spec = load_spec("dev" if args.dev else args.chain)
    db = db_dir(args.base_path or default_base_path(), spec.id)
    if not db.exists():
        print(f"{db} does not exist; nothing to purge")
        return 0
    if not args.y:
        if not sys.stdin.isatty():
            print("refusing to purge without confirmation: pass -y", file=sys.stderr)
            return 1
        answer = input(f"Are you sure to remove {db}? [y/N]: ")
        if answer.strip().lower() != "y":
            print("Aborted")
            return 1
    shutil.rmtree(db)
    print(f"{db} removed.")
    return 0


def _run_node(args: argparse.Namespace) -> int:
    from node.keystore import dev_suri
    from node.network import PeerSlots
    from node.rpc.cors import CorsPolicy
    from node.service import Node, NodeConfig

    chain = args.chain or ("dev" if args.dev else "local")
    spec = load_spec(chain)
    dev_key = next((dev_suri(n) for n in DEV_ACCOUNTS if getattr(args, n)), None)
    if args.dev and dev_key is None:
        dev_key = dev_suri("alice")
    validator = args.validator or args.dev or dev_key is not None
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if args.tmp or (args.dev and args.base_path is None):
        tmp = tempfile.TemporaryDirectory(prefix="cuckoo-node-")
        base = Path(tmp.name)
    else:
        base = args.base_path or default_base_path()
    if validator and dev_key is None:
        log.warning(
            "--validator without a dev key: the node authors only with an 'aura' key in its "
            "keystore (insert one with `cuckoo-node key insert`)"
        )
    p2p_host, p2p_port = _p2p_listen(args)
    node_key = _node_key(args)
    bootnodes = tuple(args.bootnodes or spec.raw.get("bootNodes") or ())
    config = NodeConfig(
        spec=spec,
        base_path=base,
        name=args.name,
        validator=validator,
        rpc_host="0.0.0.0" if args.rpc_external else "127.0.0.1",
        rpc_port=args.rpc_port,
        rpc_cors=CorsPolicy.parse(args.rpc_cors) if args.rpc_cors is not None else None,
        prometheus_port=None if args.no_prometheus else args.prometheus_port,
        dev_key=dev_key,
        block_time_ms=args.block_time_ms,
        state_pruning=args.state_pruning,
        blocks_pruning=args.blocks_pruning,
        p2p_host=p2p_host,
        p2p_port=p2p_port,
        node_key=node_key,
        bootnodes=bootnodes,
        peer_slots=PeerSlots(args.in_peers, args.out_peers, args.in_peers_per_ip),
        unsafe_equivocate=args.unsafe_test_equivocate,
    )
    try:
        node = Node(config)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, node.request_stop)
            await node.run()

        try:
            import uvloop

            uvloop.run(main())
        except ImportError:
            asyncio.run(main())
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def _p2p_listen(args: argparse.Namespace) -> tuple[str, int | None]:
    if args.no_p2p:
        return "127.0.0.1", None
    if args.listen_addr:
        from node.network import parse_multiaddr

        addr = parse_multiaddr(args.listen_addr)
        return addr.host, addr.port
    if args.port is not None:
        return "0.0.0.0", args.port
    return ("127.0.0.1", 0) if args.dev else ("0.0.0.0", 30333)


def _node_key(args: argparse.Namespace) -> bytes | None:
    if args.node_key:
        try:
            key = bytes.fromhex(args.node_key.removeprefix("0x"))
        except ValueError:
            raise ValueError("--node-key must be 32 bytes of hex") from None
        if len(key) != 32:
            raise ValueError("--node-key must be 32 bytes of hex")
        return key
    if args.node_key_file:
        from node.network import load_or_create_node_key

        return load_or_create_node_key(args.node_key_file)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (
        getattr(logging, str(args.log).upper(), logging.INFO)
        if hasattr(args, "log")
        else logging.INFO
    )
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        if args.command == "build-spec":
            return _cmd_build_spec(args)
        if args.command == "purge-chain":
            return _cmd_purge_chain(args)
        if args.command == "key":
            from node.keycmd import run_key

            return run_key(args)
        if args.command in ("export-blocks", "import-blocks", "check-db"):
            from node.blockio import run_blockio

            return run_blockio(args)
        if args.command == "verify-finality":
            from node.verifycmd import run_verify

            return run_verify(args)
        return _run_node(args)
    except (NodeError, ChainSpecError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the RPC or metrics port is taken
        print(
            f"Error: {exc.strerror or exc}. Is another node running? Choose other ports with "
            "--rpc-port / --prometheus-port.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
