"""The chain's events, published by block import and heard by whoever subscribed
(`node.interfaces.ChainNotifications`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from chain.primitives import Header
from node.interfaces import BlockListener, FinalityListener, ImportedBlock

log = logging.getLogger(__name__)

_Listener = TypeVar("_Listener", bound=Callable[..., None])


class ChainEvents:
    def __init__(self) -> None:
        self._best: list[BlockListener] = []
        self._imported: list[BlockListener] = []
        self._finalized: list[FinalityListener] = []

    def subscribe_best(self, listener: BlockListener) -> None:
        self._best.append(listener)

    def unsubscribe_best(self, listener: BlockListener) -> None:
        _remove(self._best, listener)

    def subscribe_imported(self, listener: BlockListener) -> None:
        self._imported.append(listener)

    def unsubscribe_imported(self, listener: BlockListener) -> None:
        _remove(self._imported, listener)

    def subscribe_finalized(self, listener: FinalityListener) -> None:
        self._finalized.append(listener)

    def unsubscribe_finalized(self, listener: FinalityListener) -> None:
        _remove(self._finalized, listener)

    # ---- publishing (block import) ------------------------------------------------------------

    def publish_best(self, block: ImportedBlock) -> None:
        _call_each(self._best, "block", block)

    def publish_imported(self, block: ImportedBlock) -> None:
        _call_each(self._imported, "import", block)

    def publish_finalized(self, block_hash: bytes, header: Header) -> None:
        _call_each(self._finalized, "finality", block_hash, header)


def _call_each(listeners: Sequence[Callable[..., None]], kind: str, *args: object) -> None:
    for listener in list(listeners):
        try:
            listener(*args)
        except Exception:
            log.exception("%s listener failed", kind)


def _remove(listeners: list[_Listener], listener: _Listener) -> None:
    if listener in listeners:
        listeners.remove(listener)
