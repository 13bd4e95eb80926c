"""`cuckoo-coordinator`: the coordinator daemon's command line.

The operator key (a secret URI such as //CoordOp, a mnemonic, or a 0x seed) comes from
--operator-key-file (mode 0600) or the environment variable CUCKOO_OPERATOR_SURI, never from
the command line. Expected failures print one line and exit non-zero:
2 bad arguments or key (or a price under the chain's Tasks.MinTaskPrice), 3 chain unreachable,
4 operator not registered as a coordinator's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from substrateinterface import Keypair

from chainclient.accounts import ss58
from chainclient.amounts import format_cai, parse_cai
from chainclient.connection import ChainUnavailable, Connection
from chainclient.gateway import Gateway
from chainclient.keyfile import ENV_SURI, KeyFileError
from chainclient.signing import load_operator_key
from coordinator.api import ApiConfig
from coordinator.chain import coordinator_status
from coordinator.daemon import Config, Coordinator
from coordinator.engine import DEFAULT_PRICE, EngineConfig
from coordinator.prices import PriceError, PriceList, load_prices, validate_prices

EXIT_USAGE = 2
EXIT_CHAIN = 3
EXIT_NOT_REGISTERED = 4
CONNECT_TIMEOUT_S = 15.0
SWITCH_INTERVAL_S = 0.0005


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cuckoo-coordinator",
        description="Coordinator daemon: app API, miner long-poll API, on-chain task commitments.",
    )
    p.add_argument("--chain-url", default="ws://127.0.0.1:9944", help="node RPC (ws:// or wss://)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP listen address")
    p.add_argument("--port", type=int, default=8080, help="HTTP port (0: any free port)")
    p.add_argument("--data-dir", type=Path, required=True, help="state directory (SQLite, images)")
    p.add_argument(
        "--operator-key-file",
        type=Path,
        help=f"file (mode 0600) holding the operator's secret URI; else ${ENV_SURI}",
    )
    p.add_argument("--api-keys-file", type=Path, help="bearer keys for the app API, one a line")
    p.add_argument("--models", default="tiny", help="comma-separated model names served")
    p.add_argument(
        "--price",
        default=format_cai(DEFAULT_PRICE),
        metavar="CAI",
        help="what a task pays its miner, in CAI (escrowed by the operator on chain; at least "
        "the chain's Tasks.MinTaskPrice); default %(default)s",
    )
    p.add_argument(
        "--prices-file",
        type=Path,
        help="JSON prices per model and size, in CAI (docs/coordinator.md); --price elsewhere",
    )
    p.add_argument(
        "--audit-rate",
        type=float,
        default=None,
        help=argparse.SUPPRESS,  # deprecated and ignored: checking is the chain's (verification)
    )
    p.add_argument(
        "--task-timeout-blocks", type=int, default=100, help="deadline = head + this many blocks"
    )
    p.add_argument(
        "--miner-live-s", type=float, default=30.0, help="a miner is live this long after a poll"
    )
    p.add_argument(
        "--request-timeout-s", type=float, default=60.0, help="wait of /v1/images/generations"
    )
    p.add_argument(
        "--job-ttl-s", type=float, default=600.0, help="a job without any result fails after this"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def read_api_keys(path: Path | None) -> frozenset[str]:
    if path is None:
        return frozenset()
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise CliError(f"cannot read API keys file {path}: {exc.strerror}") from exc
    keys = frozenset(ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#"))
    if not keys:
        raise CliError(f"API keys file {path} has no keys")
    return keys


def read_prices(args: argparse.Namespace) -> PriceList:
    try:
        default = parse_cai(args.price)
    except ValueError as exc:
        raise CliError(f"--price: {exc}") from exc
    if args.prices_file is None:
        return PriceList(default)
    try:
        return load_prices(args.prices_file, default)
    except PriceError as exc:
        raise CliError(str(exc)) from exc


def task_constants(conn: Connection) -> tuple[int | None, int | None]:
    """(Tasks.MinTaskPrice, Tasks.TaskDeposit) of the chain's runtime (None: it has none)."""
    return conn.constant("Tasks", "MinTaskPrice"), conn.constant("Tasks", "TaskDeposit")


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """What the coordinator learns from the chain before it starts."""

    staker: bytes
    min_task_price: int
    task_deposit: int


async def _probe(
    url: str, operator: bytes
) -> tuple[tuple[bytes, str] | None, tuple[int | None, int | None]]:
    gateway = Gateway(url, timeout_s=CONNECT_TIMEOUT_S, thread_name="coordinator-probe")
    try:
        found = await gateway.run_within(CONNECT_TIMEOUT_S * 2, coordinator_status, operator)
        constants = await gateway.run(task_constants)
        return found, constants
    finally:
        await gateway.close()


def check_registration(url: str, operator: Keypair) -> Probe:
    """The coordinator staker our operator serves, with the chain's task price rules; CliError
    otherwise."""
    try:
        found, (min_task_price, task_deposit) = asyncio.run(_probe(url, bytes(operator.public_key)))
    except ChainUnavailable as exc:
        raise CliError(f"cannot reach chain at {url}: {exc.reason}", EXIT_CHAIN) from exc
    except Exception as exc:  # an RPC error or an unexpected answer: still no usable chain
        raise CliError(f"cannot reach chain at {url}: {exc}", EXIT_CHAIN) from exc
    if found is None:
        raise CliError(
            f"operator {operator.ss58_address} is not the operator of a registered coordinator. "
            "Register first, signed by the staker account: Staking.bond(value >= 2,000,000 CAI), "
            f"then Registry.register_coordinator(operator={operator.ss58_address}, "
            "info={name, description, url: 'http(s)://<this coordinator>', gpu_model: ''})",
            EXIT_NOT_REGISTERED,
        )
    if min_task_price is None or task_deposit is None:
        raise CliError(
            "the chain's runtime has no Tasks.MinTaskPrice/TaskDeposit: it does not take paid "
            "tasks, and this coordinator commits only paid ones",
            EXIT_CHAIN,
        )
    staker, status = found
    if status != "Active":
        logging.getLogger("coordinator").warning(
            "coordinator %s is %s: tasks are accepted but not committed until it is Active",
            ss58(staker),
            status,
        )
    return Probe(staker, min_task_price, task_deposit)


def config_from_args(args: argparse.Namespace) -> Config:
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not models:
        raise CliError("--models needs at least one model name")
    if args.audit_rate is not None:
        logging.getLogger("coordinator").warning(
            "--audit-rate is deprecated and ignored: the chain samples results for checking "
            "(chain spec verification.checkRate)"
        )
    if not 2 <= args.task_timeout_blocks <= 14_400:
        raise CliError("--task-timeout-blocks must be 2..14400 (Tasks.MaxDeadlineBlocks)")
    if not 0 <= args.port <= 65535:
        raise CliError("--port must be 0..65535")
    if not args.chain_url.startswith(("ws://", "wss://")):
        raise CliError("--chain-url must be a ws:// or wss:// URL")
    return Config(
        chain_url=args.chain_url,
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        api=ApiConfig(models, args.request_timeout_s, read_api_keys(args.api_keys_file)),
        engine=EngineConfig(
            task_timeout_blocks=args.task_timeout_blocks,
            miner_live_s=args.miner_live_s,
            job_ttl_s=args.job_ttl_s,
            prices=read_prices(args),
        ),
    )


def with_chain_rules(cfg: Config, probe: Probe) -> Config:
    """The config once the chain's task price rules are known: prices under MinTaskPrice are
    refused (the chain would refuse every such task), the task deposit is escrowed too."""
    try:
        validate_prices(cfg.engine.prices, cfg.api.models, probe.min_task_price)
    except PriceError as exc:
        raise CliError(str(exc)) from exc
    engine = dataclasses.replace(cfg.engine, task_deposit=probe.task_deposit)
    return dataclasses.replace(cfg, engine=engine)


async def _serve(coordinator: Coordinator) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, coordinator.request_stop)
    await coordinator.run()


def _run_loop(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(coro)
        return
    uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    for noisy in ("substrateinterface", "websocket"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        cfg = config_from_args(args)
        try:
            operator = load_operator_key(args.operator_key_file)
        except KeyFileError as exc:
            raise CliError(str(exc)) from exc
        probe = check_registration(cfg.chain_url, operator)
        cfg = with_chain_rules(cfg, probe)
        log = logging.getLogger("coordinator")
        log.info(
            "prices: %s CAI a task by default (chain minimum %s CAI; task deposit %s CAI)",
            format_cai(cfg.engine.prices.default),
            format_cai(probe.min_task_price),
            format_cai(probe.task_deposit),
        )
        coordinator = Coordinator(cfg, operator, probe.staker)
        # the store writer and the chain worker threads hand the GIL back and forth with the
        # event loop many times per block; 5 ms switches made each hand-off a long wait
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        _run_loop(_serve(coordinator))
    except CliError as exc:
        print(f"cuckoo-coordinator: error: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:  # e.g. the port is taken, the data dir is not writable
        print(f"cuckoo-coordinator: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from coordinator.store import StoreError

        if isinstance(exc, StoreError):
            print(f"cuckoo-coordinator: error: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
