"""Where a node keeps its files: `<base path>/chains/<chain id>/` holds `db/` (LevelDB),
`keystore/` and `network/`."""

from __future__ import annotations

from pathlib import Path


def default_base_path() -> Path:
    return Path.home() / ".local" / "share" / "cuckoo-node"


def chain_dir(base: Path, chain_id: str) -> Path:
    return base / "chains" / chain_id


def db_dir(base: Path, chain_id: str) -> Path:
    return chain_dir(base, chain_id) / "db"
