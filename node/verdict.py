"""What the node makes of a message from a peer; the network acts on it (relay, ban)."""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    ACCEPT = "accept"  # new and valid: deliver, and relay to the other peers (flooding)
    KEEP = "keep"  # accepted or held (e.g. its block is not known yet), not relayed
    IGNORE = "ignore"  # duplicate, stale, another set: dropped quietly
    INVALID = "invalid"  # bad signature, malformed, outside the set: the sender is banned
