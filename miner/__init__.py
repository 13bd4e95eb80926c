"""The miner daemon: polls coordinators for tasks, solves them, uploads the images and commits
the result hashes on chain (`cuckoo-miner`)."""


class MinerError(Exception):
    """Root of every error raised by the miner."""


__all__ = ["MinerError"]
