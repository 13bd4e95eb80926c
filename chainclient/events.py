"""A settled task's TaskSettled and TaskPaid, found by task id in the raw bytes of one block's
`System.Events`.

A settled task leaves `Tasks.Tasks` RetentionBlocks after it settled; what it paid and how it ended
stay in the events of the block that settled it. A busy block holds thousands of events (each
settlement alone emits TaskPaid, TaskSettled and the Balances events of its payment), and decoding
all of them through scalecodec (`Connection.events`) costs far more than the daemons can spend per
block (256 settlements, 1,024 events: 230 ms, against 2.2 ms for this search). They need the events
of their own tasks only, and every Tasks event about a task begins with the pallet's index, the
event's index and the task id: those are found by searching the block's bytes for that prefix, and
the fields after it are read in the layout the runtime's metadata declares (`EventLayout`, built
and checked by `Connection.task_event_layout`: field names, widths, enum variants). A false match
would need 34 bytes equal to (pallet, event, task id) inside another event; a task id is 32 random
bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from chainclient.tasks import DecodeError, Payment, Settlement, merge_settlements

# The fields the search reads, in order, with their SCALE widths (bytes) after the task id.
TASK_PAID_FIELDS = (
    ("task_id", 32),
    ("miner", 32),
    ("to_miner", 16),
    ("burned", 16),
    ("to_checkers", 16),
    ("refunded", 16),
)
TASK_SETTLED_FIELDS = (("task_id", 32), ("status", 1), ("outcome", 1))


@dataclasses.dataclass(frozen=True, slots=True)
class EventLayout:
    """Where the Tasks settlement events sit in the runtime: the pallet's index, the events'
    indices, and the TaskStatus and CheckOutcome variants in index order."""

    pallet: int
    task_settled: int
    task_paid: int
    statuses: tuple[str, ...]
    outcomes: tuple[str, ...]

    @property
    def settled_prefix(self) -> bytes:
        return bytes([self.pallet, self.task_settled])

    @property
    def paid_prefix(self) -> bytes:
        return bytes([self.pallet, self.task_paid])


def _occurrences(
    raw: bytes, prefix: bytes, wanted: frozenset[bytes]
) -> Iterable[tuple[bytes, int]]:
    """(task id, offset just after it) of every `prefix` followed by a wanted task id."""
    pos = raw.find(prefix)
    while pos >= 0:
        start = pos + len(prefix)
        task_id = raw[start : start + 32]
        if task_id in wanted:
            yield task_id, start + 32
        pos = raw.find(prefix, pos + 1)


def find_settlements(
    raw: bytes, task_ids: Iterable[bytes], layout: EventLayout, block: int
) -> dict[bytes, Settlement]:
    """The settlements of `task_ids` in block `block` whose `System.Events` value is `raw` (the
    SCALE bytes); tasks with neither event in the block are absent."""
    wanted = frozenset(task_ids)
    if not wanted or not raw:
        return {}
    parts: list[Settlement] = []
    paid_len = sum(width for _, width in TASK_PAID_FIELDS[1:])
    for task_id, at in _occurrences(raw, layout.paid_prefix, wanted):
        body = raw[at : at + paid_len]
        if len(body) < paid_len:
            raise DecodeError("truncated TaskPaid event")
        amounts = [int.from_bytes(body[32 + 16 * i : 48 + 16 * i], "little") for i in range(4)]
        parts.append(Settlement(task_id, block, miner=body[:32], payment=Payment(*amounts)))
    for task_id, at in _occurrences(raw, layout.settled_prefix, wanted):
        body = raw[at : at + 2]
        if len(body) < 2 or body[0] >= len(layout.statuses) or body[1] >= len(layout.outcomes):
            raise DecodeError("malformed TaskSettled event")
        parts.append(
            Settlement(
                task_id,
                block,
                status=layout.statuses[body[0]],
                outcome=layout.outcomes[body[1]],
            )
        )
    return merge_settlements(parts)
