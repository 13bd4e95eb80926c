"""A deterministic simulator for the finality voter: one shared block tree, a `ChainView` per
node over the blocks that node knows, a full-mesh network with per-message delays and drops,
and simulated time. Every finalization is checked against a global ledger: never two different
blocks final at one height on any two nodes, never a revert."""

from __future__ import annotations

import functools
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from chain.consensus import Justification, SignedVote, VoteEquivocation
from chain.hashing import blake2_256
from chain.primitives import Header
from node.finality.store import MemoryVoteStore
from node.finality.voter import (
    Action,
    Block,
    Broadcast,
    BroadcastCommit,
    Finalize,
    ReportEquivocation,
    Verdict,
    Voter,
)
from node.keystore import Signer, derive_key

ZERO = b"\0" * 32
GENESIS = Header(ZERO, 0, ZERO, ZERO)
NAMES = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie", "One", "Two", "Three", "Four")


@functools.cache
def signer(i: int) -> Signer:
    return derive_key(f"//{NAMES[i]}", "ed25519").signer()


class SafetyViolation(AssertionError):
    pass


class Tree:
    """All blocks ever made, by hash."""

    def __init__(self) -> None:
        self.headers: dict[bytes, Header] = {GENESIS.hash(): GENESIS}
        self._salt = 0

    def child(self, parent: bytes) -> Header:
        p = self.headers[parent]
        self._salt += 1
        h = Header(parent, p.number + 1, blake2_256(self._salt.to_bytes(8, "little")), ZERO)
        self.headers[h.hash()] = h
        return h

    def chain(self, parent: bytes, length: int) -> list[Header]:
        out = []
        for _ in range(length):
            h = self.child(parent)
            out.append(h)
            parent = h.hash()
        return out


class Ledger:
    """Global record of finalized blocks by height, across all nodes."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.at: dict[int, bytes] = {0: GENESIS.hash()}

    def record(self, node: int, old: Block, new: Block) -> None:
        h, n = new
        while n > old[1]:
            seen = self.at.setdefault(n, h)
            if seen != h:
                raise SafetyViolation(f"node {node}: two blocks final at #{n}")
            h, n = self.tree.headers[h].parent_hash, n - 1
        if (h, n) != old:
            raise SafetyViolation(f"node {node}: finalized #{new[1]} does not extend #{old[1]}")


class NodeChain:
    """A `ChainView` over the blocks one node knows. Best head: the longest known chain from
    the finalized block; on a tie the head learned first is kept."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.known: set[bytes] = {GENESIS.hash()}
        self.final: Block = (GENESIS.hash(), 0)
        self.best: Block = self.final
        self.justifications: list[Justification] = []

    def learn(self, header: Header) -> bool:
        h = header.hash()
        if h in self.known or header.parent_hash not in self.known:
            return False
        self.known.add(h)
        if header.number > self.best[1] and self.is_descendant(self.final, (h, header.number)):
            self.best = (h, header.number)
        return True

    def apply(self, just: Justification) -> None:
        target = (just.target_hash, just.target_number)
        if not self.is_descendant(self.final, target):
            raise SafetyViolation("Finalize for a block that does not extend the finalized one")
        self.final = target
        self.justifications.append(just)
        if not self.is_descendant(self.final, self.best):
            self.best = max(
                (
                    (h, self.tree.headers[h].number)
                    for h in self.known
                    if self.is_descendant(self.final, (h, self.tree.headers[h].number))
                ),
                key=lambda b: (b[1], b[0]),
            )

    # ChainView

    def finalized(self) -> Block:
        return self.final

    def best_head(self) -> Block:
        return self.best

    def ancestry(self, base: Block, head: Block) -> list[Header] | None:
        out: list[Header] = []
        h, n = head
        while n > base[1]:
            header = self.tree.headers.get(h)
            if h not in self.known or header is None or header.number != n:
                return None
            out.append(header)
            h, n = header.parent_hash, n - 1
        return out if (h, n) == base else None

    def is_descendant(self, base: Block, block: Block) -> bool:
        if block[0] not in self.known or base[0] not in self.known:
            return False
        return self.ancestry(base, block) is not None


@dataclass
class SimNode:
    index: int
    chain: NodeChain
    store: MemoryVoteStore
    signer: Signer | None
    voter: Voter
    online: bool = True
    pending: list[Justification] = field(default_factory=list)
    orphans: dict[bytes, list[Header]] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)


Message = SignedVote | Justification | Header


class Sim:
    def __init__(
        self,
        voters: int = 4,
        *,
        observers: int = 0,
        seed: int = 0,
        delay: tuple[float, float] = (0.01, 0.2),
        drop: float = 0.0,
        round_duration: float = 1.0,
        dt: float = 0.1,
        preload: int = 0,
    ) -> None:
        """`preload`: a chain of that many blocks every node knows before its voter starts."""
        self.rng = random.Random(seed)
        self.tree = Tree()
        self.ledger = Ledger(self.tree)
        self.signers = [signer(i) for i in range(voters)]
        self.authorities = [s.public for s in self.signers]
        self.delay = delay
        self.drop = drop
        self.d = round_duration
        self.dt = dt
        self.now = 0.0
        self.queue: list[tuple[float, int, int, Message]] = []
        self._seq = 0
        self._src: dict[int, int] = {}  # message sequence -> sender
        self.reports: list[tuple[int, VoteEquivocation]] = []
        self.sent: list[tuple[int, SignedVote]] = []
        self.nodes: list[SimNode] = []
        # Filters on delivery: (src, dst, message) -> deliver?
        self.link: Callable[[int, int, Message], bool] = lambda s, d, m: True
        self.preloaded = self.tree.chain(GENESIS.hash(), preload)
        for i in range(voters + observers):
            sgn = self.signers[i] if i < voters else None
            chain = NodeChain(self.tree)
            for h in self.preloaded:
                chain.learn(h)
            store = MemoryVoteStore()
            self.nodes.append(SimNode(i, chain, store, sgn, self._voter(chain, store, sgn)))

    def _voter(self, chain: NodeChain, store: MemoryVoteStore, sgn: Signer | None) -> Voter:
        return Voter(0, self.authorities, chain, store, sgn, round_duration=self.d, now=self.now)

    # ---- network -------------------------------------------------------------------------------

    def send(self, src: int, dst: int, msg: Message) -> None:
        if self.rng.random() < self.drop:
            return
        lo, hi = self.delay
        self._seq += 1
        heapq.heappush(self.queue, (self.now + self.rng.uniform(lo, hi), self._seq, dst, msg))
        self._src[self._seq] = src

    def broadcast(self, src: int, msg: Message) -> None:
        for node in self.nodes:
            if node.index != src:
                self.send(src, node.index, msg)

    def handle(self, i: int, actions: list[Action]) -> None:
        node = self.nodes[i]
        for a in actions:
            if isinstance(a, Broadcast):
                assert a.vote.voter in self.authorities, "a vote by a key outside the set"
                if node.signer is not None and a.vote.voter == node.signer.public:
                    self.sent.append((i, a.vote))  # its own (re-sends of others' votes too)
                self.broadcast(i, a.vote)
            elif isinstance(a, Finalize):
                old = node.chain.final
                node.chain.apply(a.justification)
                self.ledger.record(i, old, node.chain.final)
            elif isinstance(a, BroadcastCommit):
                self.broadcast(i, a.justification)
            elif isinstance(a, ReportEquivocation):
                self.reports.append((i, a.proof))

    def deliver(self, dst: int, msg: Message, src: int) -> None:
        node = self.nodes[dst]
        if not node.online or not self.link(src, dst, msg):
            return
        if isinstance(msg, SignedVote):
            verdict, actions = node.voter.on_vote(msg, self.now)
            node.verdicts.append(verdict)
            self.handle(dst, actions)
        elif isinstance(msg, Justification):
            if msg.target_hash not in node.chain.known:
                node.pending.append(msg)
                return
            verdict, actions = node.voter.on_justification(msg)
            node.verdicts.append(verdict)
            self.handle(dst, actions)
        else:
            self.import_block(dst, msg)

    def import_block(self, i: int, header: Header) -> None:
        node = self.nodes[i]
        if header.parent_hash not in node.chain.known:
            node.orphans.setdefault(header.parent_hash, []).append(header)  # until its parent
            return
        if not node.chain.learn(header):
            return
        self.handle(i, node.voter.on_block_imported(self.now))
        for child in node.orphans.pop(header.hash(), []):
            self.import_block(i, child)
        pending, node.pending = node.pending, []
        for just in pending:
            self.deliver(i, just, i)

    # ---- blocks --------------------------------------------------------------------------------

    def author(self, i: int, parent: bytes | None = None) -> Header:
        """Node `i` builds on its best head (or `parent`) and gossips the block."""
        node = self.nodes[i]
        header = self.tree.child(parent if parent is not None else node.chain.best[0])
        self.import_block(i, header)
        self.broadcast(i, header)
        return header

    def give_all(self, headers: list[Header], nodes: list[int] | None = None) -> None:
        """Nodes learn these blocks at once (sync)."""
        for i in nodes if nodes is not None else range(len(self.nodes)):
            for h in sorted(headers, key=lambda h: (h.number, h.hash())):
                self.import_block(i, h)

    def sync(self, i: int) -> None:
        """Node `i` learns every block any online node knows."""
        known = set().union(*(n.chain.known for n in self.nodes if n.online))
        self.give_all([self.tree.headers[h] for h in known], [i])

    # ---- nodes ---------------------------------------------------------------------------------

    def restart(self, i: int) -> Voter:
        """Rebuild node `i`'s voter from its vote store (its chain is kept)."""
        node = self.nodes[i]
        node.voter = self._voter(node.chain, node.store, node.signer)
        return node.voter

    # ---- time ----------------------------------------------------------------------------------

    def step(self) -> None:
        self.now = round(self.now + self.dt, 9)
        while self.queue and self.queue[0][0] <= self.now:
            _, seq, dst, msg = heapq.heappop(self.queue)
            self.deliver(dst, msg, self._src.pop(seq))
        for node in self.nodes:
            if node.online:
                self.handle(node.index, node.voter.tick(self.now))

    def run(self, duration: float, *, block_every: float | None = None) -> None:
        end = self.now + duration
        next_block = self.now + (block_every or 0.0)
        while self.now < end - 1e-9:
            if block_every is not None and self.now >= next_block:
                online = [n.index for n in self.nodes if n.online and n.signer is not None]
                if online:
                    self.author(online[int(self.now / block_every) % len(online)])
                next_block += block_every
            self.step()

    def finalized_numbers(self) -> list[int]:
        return [n.chain.final[1] for n in self.nodes]

    def head(self) -> int:
        return max(h.number for h in self.tree.headers.values())

    def honest_reports_about(self, key: bytes) -> list[VoteEquivocation]:
        return [p for _, p in self.reports if p.offender == key]
