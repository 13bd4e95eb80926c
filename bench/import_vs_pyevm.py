"""Block import against py-evm's, on the same machine in the same run (a script, not a test).

Both chains import one block of N signed value transfers among M accounts funded in genesis,
built beforehand, each import into a fresh store:

- ours: N sr25519-signed `Balances.transfer_keep_alive` (`bench/import_bench.py`'s block):
  `execute_block` (signature checks, execution, state root) plus `ChainDB.commit_block` into
  LevelDB, on one core; and, on a machine with two cores or more, the same import with the
  signatures checked by worker processes on the other cores (wall clock);
- py-evm (the `bench` extra: `pip install -e ".[bench]"`): N ECDSA-signed legacy transfers
  (21,000 gas) in a Paris-rules block, `Chain.import_block` (validation, sender recovery,
  execution, state root) into its in-memory database, on one core.

It prints each rate and their ratios (target >= 15 on one core). Each figure is the best of R
runs.

    python bench/import_vs_pyevm.py [--txs 2000] [--accounts 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import import_bench  # the block, the stores and the measures of our import

CHAIN_ID = 1337
GENESIS_PARAMS: dict[str, Any] = {
    "difficulty": 0,
    "gas_limit": 2_000_000_000,  # room for any N transfers of 21,000 gas
    "timestamp": 1_700_000_000,
    "nonce": bytes(8),
    "mix_hash": bytes(32),
}


class PyEvmBlock:
    """A py-evm chain's genesis and one block of transfers on it, built once."""

    def __init__(self, n_txs: int, n_accounts: int, seed: int) -> None:
        try:
            from eth_keys import keys
        except ImportError as exc:
            raise SystemExit(
                'py-evm is not installed: pip install -e ".[bench]" (the bench extra)'
            ) from exc
        rng = random.Random(seed)
        secrets = [keys.PrivateKey(rng.randbytes(32)) for _ in range(n_accounts)]
        addresses = [s.public_key.to_canonical_address() for s in secrets]
        self.state = {
            a: {"balance": 10**24, "nonce": 0, "code": b"", "storage": {}} for a in addresses
        }
        author = self.fresh_chain()
        vm = author.get_vm()
        txs = []
        for i in range(n_txs):
            sender, nonce = i % n_accounts, i // n_accounts
            dest = (sender + 1 + rng.randrange(n_accounts - 1)) % n_accounts
            tx = vm.create_unsigned_transaction(
                nonce=nonce,
                gas_price=10**9,
                gas=21_000,
                to=addresses[dest],
                value=rng.randrange(10**15, 10**18),
                data=b"",
            )
            txs.append(tx.as_signed_transaction(secrets[sender], chain_id=CHAIN_ID))
        result, _, _ = author.mine_all(txs)
        self.block = result.imported_block
        assert len(self.block.transactions) == n_txs

    def fresh_chain(self) -> Any:
        from eth.chains.base import MiningChain
        from eth.db.atomic import AtomicDB
        from eth.tools.builder.chain import build, chain_id, disable_pow_check, genesis, paris_at

        return build(
            MiningChain,
            paris_at(0),
            chain_id(CHAIN_ID),
            disable_pow_check(),
            genesis(db=AtomicDB(), params=GENESIS_PARAMS, state=self.state),
        )

    def import_seconds(self) -> float:
        """One `import_block` into a fresh chain, CPU seconds (all in memory)."""
        chain = self.fresh_chain()
        gc.collect()
        t0 = import_bench.cpu()
        chain.import_block(self.block)
        elapsed = import_bench.cpu() - t0
        assert chain.get_canonical_head().hash == self.block.hash
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=2000, help="transfers in each block")
    parser.add_argument("--accounts", type=int, default=500, help="funded accounts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, best kept")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = args.txs
    pinned = import_bench._pin_one_core()
    t0 = time.perf_counter()
    evm = PyEvmBlock(n, args.accounts, args.seed)
    with tempfile.TemporaryDirectory(prefix="import-vs-pyevm-") as tmp_name:
        tmp = Path(tmp_name)
        ours = import_bench.prepare(tmp / "author", n, args.accounts, args.seed)
        prep = time.perf_counter() - t0
        workers = import_bench.start_workers()
        try:
            evm_s = min(evm.import_seconds() for _ in range(args.repeat))
            runs = [import_bench.import_once(ours, tmp / f"db{i}") for i in range(args.repeat)]
            ours_s = min(r[0] for r in runs) + min(r[1] for r in runs)
            parallel = (
                import_bench.measure_parallel(ours, args.repeat, tmp, workers)[0]
                if workers is not None
                else None
            )
        finally:
            ours.node.close()
            if workers is not None:
                workers.close()
    evm_tps, ours_tps = n / evm_s, n / ours_s
    print(
        f"import_vs_pyevm: {n} transfers among {args.accounts} accounts per block, best of "
        f"{args.repeat}, {pinned}, Python {sys.version.split()[0]} (prepared in {prep:.1f} s)"
    )
    print(f"py-evm import_block (ECDSA, Paris rules, in memory): {evm_tps:10,.0f} tx/s")
    print(f"ours execute_block + commit_block, one core:         {ours_tps:10,.0f} tx/s")
    print(f"ratio ours/py-evm, one core: {ours_tps / evm_tps:.1f} (target >= 15)")
    if parallel is not None:
        print(f"ours with signature workers on the other cores:     {n / parallel:10,.0f} tx/s")
        print(f"ratio ours/py-evm, with the other cores: {n / parallel / evm_tps:.1f}")


if __name__ == "__main__":
    main()
