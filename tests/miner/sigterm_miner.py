"""A miner process for the SIGTERM tests: the real service and signal wiring (`miner.cli.serve`)
with a fake chain (on which the given tasks, all with `make_spec()`, are committed) and a slow
solver. Prints its stats as one JSON line when it exits.

    python -m tests.miner.sigterm_miner COORDINATOR_URL SOLVE_S DRAIN_TIMEOUT_S TASK_HEX...
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

from substrateinterface import Keypair

from miner.cli import serve
from miner.client import Backoff
from miner.service import MinerConfig, MinerService
from tests.miner.fakes import FakeChain, SlowSolver, make_spec


async def main(url: str, solve_s: float, drain_s: float, task_ids: list[bytes]) -> dict[str, int]:
    operator = Keypair.create_from_uri("//MinerOperator")
    chain = FakeChain(operator)
    for t in task_ids:
        chain.commit(t, make_spec(), 10_000)
    config = MinerConfig(
        coordinator_urls=(url,),
        poll_wait_s=0.5,
        drain_timeout_s=drain_s,
        commit_poll_s=0.02,
        backoff=Backoff(base_s=0.05, cap_s=0.5),
    )
    service = MinerService(config, operator, SlowSolver(delay_s=solve_s), chain)
    await serve(service)
    assert service.committer is not None
    return {
        **dataclasses.asdict(service.stats),
        "committed": service.committer.committed,
        "pending": len(service.committer.pending),
    }


if __name__ == "__main__":
    ids = [bytes.fromhex(t.removeprefix("0x")) for t in sys.argv[4:]]
    stats = asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), ids))
    print(json.dumps(stats), flush=True)
