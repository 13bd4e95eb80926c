"""Print the chain-spec session keys of dev accounts (`genesis.runtimeGenesis.config.session.keys`).

For each name (alice, bob, ...), from the secret URI "//Name":
- account and aura: the sr25519 public key (SS58);
- grandpa: the ed25519 public key (SS58);
- bls: `chain.bls.public_key(secret_from_seed(<the ed25519 seed>))` (hex, 48 bytes), and
  blsPop, its proof of possession (hex, 96 bytes).

The specs carry these precomputed, so building a genesis does no BLS work. py-ecc makes this
take about a second per name.

    python scripts/gen_session_keys.py alice bob charlie dave
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from chain import bls
from chain.crypto import ss58_encode
from node.keystore import derive_key, dev_suri


def session_keys_entry(name: str, ss58_prefix: int = 42) -> list[Any]:
    """`[account, {"aura", "grandpa", "bls", "blsPop"}]` of a dev account."""
    suri = dev_suri(name)
    sr = derive_key(suri, "sr25519")
    ed = derive_key(suri, "ed25519")
    if ed.seed is None:
        raise ValueError("the ed25519 derivation keeps no seed")
    secret = bls.secret_from_seed(ed.seed)
    account = ss58_encode(sr.public, ss58_prefix)
    return [
        account,
        {
            "aura": account,
            "grandpa": ss58_encode(ed.public, ss58_prefix),
            "bls": "0x" + bls.public_key(secret).hex(),
            "blsPop": "0x" + bls.prove_possession(secret).hex(),
        },
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="dev account names: alice, bob, ...")
    parser.add_argument("--ss58-prefix", type=int, default=42)
    args = parser.parse_args(argv)
    entries = [session_keys_entry(n, args.ss58_prefix) for n in args.names]
    print(json.dumps(entries, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
