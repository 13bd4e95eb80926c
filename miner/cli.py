"""`cuckoo-miner`: the miner daemon.

    cuckoo-miner --chain-url ws://127.0.0.1:9944 [--coordinator URL ...] [--solver pattern]
                 [--data-dir DIR] [--operator-key-file FILE] [--status-port N] [--min-price CAI]

The operator (hot) key is a secret URI (mnemonic, //Dev path or 0x seed) read from
`--operator-key-file` (which must be readable by its owner only, e.g. mode 0600) or from the
environment variable CUCKOO_OPERATOR_SURI; never from the command line. Without `--coordinator`
the miner polls the Active coordinators registered on chain, chosen with their stake as weights.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 1 for an expected failure at start
(unreachable chain, operator not registered, ...) with a one-line error, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from substrateinterface import Keypair

from chainclient import ClientError
from chainclient.amounts import parse_cai
from chainclient.connection import ChainUnavailable
from chainclient.keyfile import ENV_SURI, KeyFileError
from chainclient.signing import load_operator_key
from miner import MinerError
from miner.chain import MinerChain
from miner.client import normalize_url
from miner.service import MinerConfig, MinerService
from miner.solver import Solver, load_solver

log = logging.getLogger("cuckoo.miner")

PROG = "cuckoo-miner"
MAX_POLL_TASKS = 8  # what coordinators hand out per poll at most
MAX_POLL_WAIT_S = 30.0  # the longest long-poll coordinators hold


class UsageError(MinerError):
    """A bad command line (exit status 2; a bad key file exits 2 too)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Cuckoo GPU miner: polls coordinators for tasks, solves them, uploads the "
        "images and commits their hashes on chain.",
        epilog=f"The operator key comes from --operator-key-file (mode 0600) or ${ENV_SURI}.",
    )
    p.add_argument("--chain-url", required=True, help="node RPC, e.g. ws://127.0.0.1:9944")
    p.add_argument(
        "--coordinator",
        action="append",
        default=[],
        metavar="URL",
        help="poll this coordinator (repeatable); default: the Active ones registered on chain",
    )
    p.add_argument(
        "--solver",
        default="diffusers",
        help="'diffusers' (the inference engine, default), 'pattern' (a CPU test pattern) "
        "or package.module:Class",
    )
    p.add_argument(
        "--model",
        default="tiny",
        help="diffusers: 'tiny' (built locally, for development) or a local diffusers folder "
        "(SD or SDXL family, e.g. SD-Turbo); nothing is fetched from a hub",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cuda", "cpu"],
        help="diffusers: CUDA with fp16 when present (auto), or force one",
    )
    p.add_argument(
        "--dtype",
        default=None,
        choices=["auto", "float32", "bfloat16", "float16"],
        help="diffusers: the engine's dtype (default $CUCKOO_MINER_DTYPE, else auto: float16 on "
        "CUDA, float32 on the CPU); part of the device class",
    )
    p.add_argument("--data-dir", type=Path, default=None, help="journal of uncommitted results")
    p.add_argument("--operator-key-file", type=Path, default=None, help="file with the SURI")
    p.add_argument("--status-port", type=int, default=None, help="serve GET /health on this port")
    p.add_argument("--status-host", default="127.0.0.1", help="address of the status server")
    p.add_argument("--max-tasks", type=int, default=1, help="tasks to ask for per poll (1..8)")
    p.add_argument(
        "--min-price",
        default="0",
        metavar="CAI",
        help="hand back (unsolved) tasks paying less than this many CAI; default 0: take all",
    )
    p.add_argument(
        "--poll-wait", type=float, default=10.0, help="long-poll wait, seconds (at most 30)"
    )
    p.add_argument(
        "--request-timeout", type=float, default=10.0, help="coordinator request timeout, s"
    )
    p.add_argument("--chain-timeout", type=float, default=15.0, help="chain RPC timeout, s")
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="on stop, how long to finish the task in hand before releasing it, s",
    )
    p.add_argument("--log", default="info", help="log level (debug, info, warning, error)")
    return p


def build_config(args: argparse.Namespace) -> MinerConfig:
    try:
        urls = tuple(normalize_url(u) for u in args.coordinator)
    except ValueError as exc:
        raise UsageError(f"--coordinator: {exc}") from exc
    if not args.chain_url.startswith(("ws://", "wss://")):
        raise UsageError("--chain-url must be a ws:// or wss:// URL")
    if not 1 <= args.max_tasks <= MAX_POLL_TASKS:
        raise UsageError(f"--max-tasks must be 1..{MAX_POLL_TASKS}")
    if not 0 < args.poll_wait <= MAX_POLL_WAIT_S:
        raise UsageError(f"--poll-wait must be more than 0 and at most {MAX_POLL_WAIT_S:g} s")
    for name in ("request_timeout", "chain_timeout"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.drain_timeout < 0:
        raise UsageError("--drain-timeout must not be negative")
    try:
        min_price = parse_cai(args.min_price)
    except ValueError as exc:
        raise UsageError(f"--min-price: {exc}") from exc
    return MinerConfig(
        coordinator_urls=urls,
        max_tasks=args.max_tasks,
        min_price=min_price,
        poll_wait_s=args.poll_wait,
        request_timeout_s=args.request_timeout,
        drain_timeout_s=args.drain_timeout,
        data_dir=args.data_dir,
        status_host=args.status_host,
        status_port=args.status_port,
    )


@contextlib.contextmanager
def stop_on_signals(callback: Callable[[], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call `callback` (on the running loop) inside the block."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, callback)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def serve(service: MinerService) -> None:
    """Run the service with SIGTERM/SIGINT wired to a graceful stop."""
    with stop_on_signals(service.request_stop):
        await service.run()


def build_solver(args: argparse.Namespace) -> Solver:
    """The configured solver; the diffusers engine loads (and warms up) its model once here."""
    if args.solver != "diffusers":
        return load_solver(args.solver)
    from miner.engine import EngineError
    from miner.engine.diffusers_solver import DiffusersSolver

    data_dir = args.data_dir or Path.home() / ".local" / "share" / "cuckoo-miner"
    try:
        return DiffusersSolver(args.model, args.device, data_dir, dtype=args.dtype)
    except EngineError as exc:
        raise MinerError(str(exc)) from exc


async def _main(args: argparse.Namespace, config: MinerConfig, keypair: Keypair) -> None:
    stop = asyncio.Event()

    def on_signal() -> None:
        log.info("stop requested: finishing or releasing the task in hand")
        stop.set()

    with stop_on_signals(on_signal):  # a signal during start-up stops it cleanly too
        chain = MinerChain(args.chain_url, keypair, timeout_s=args.chain_timeout)
        try:
            try:
                await chain.connect()
            except ChainUnavailable as exc:
                raise MinerError(f"cannot reach the chain at {exc.url}: {exc.reason}") from exc
            await chain.registration()  # NotRegistered says how to register
            free, ed = await chain.free_balance()
            if free < ed:
                raise MinerError(
                    f"operator {keypair.ss58_address} has no funds to pay transaction fees; "
                    "transfer a little CAI to it"
                )
            solver = await asyncio.to_thread(build_solver, args)
            service = MinerService(config, keypair, solver, chain, stop=stop)
            await service.run()
        finally:
            await chain.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(logging, str(args.log).upper(), None)
    if not isinstance(level, int):
        parser.error(f"unknown log level {args.log!r}")
    # libraries (substrate-interface logs every RPC at debug, on the root logger) stay at INFO
    logging.basicConfig(
        level=max(level, logging.INFO),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("miner").setLevel(level)
    for noisy in ("substrateinterface", "websocket"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    try:
        config = build_config(args)
        keypair = load_operator_key(args.operator_key_file)
    except (UsageError, KeyFileError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_main(args, config, keypair))
    except (MinerError, ClientError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except ExceptionGroup as group:  # raised inside the service's TaskGroup
        expected, unexpected = group.split((MinerError, ClientError))
        if unexpected is not None or expected is None:
            raise
        for err in expected.exceptions:
            print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
