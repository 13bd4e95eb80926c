"""The chain client of the coordinator and the miner daemons, through substrate-interface only
(like any third-party client: nothing here imports the runtime or the node).

    accounts     SS58 addresses and 32-byte ids
    registry     Registry.Miners / Coordinators / OperatorOf as `Registration`, `OperatorRole`
    tasks        Tasks.Tasks as `Task`, decoded from its SCALE bytes in one place
    calls        the Tasks pallet's calls with pre-encoded arguments (`Call`), their batch items
    connection   `Connection`: one synchronous substrate-interface connection (reads, signing,
                 submission), for one thread
    gateway      `Gateway`: a `Connection` on one worker thread for asyncio code, a deadline on
                 every call, the connection dropped after a timeout or a broken link;
                 `HeadFollower`: new heads from a subscription thread
    signing      operator keypairs, and the miner's signed HTTP requests (headers, verification)
    keyfile      operator key files: reading (owner-only mode) and writing; no other dependency,
                 so the node's key commands use it too
"""

from __future__ import annotations

__all__ = ["ClientError"]


class ClientError(Exception):
    """The root of the chain client's errors."""
