"""Errors raised by the node layer (I/O, database, networking), outside the protocol."""

from __future__ import annotations


class NodeError(Exception):
    """A node-level failure with a message meant for the operator."""


class StateDiscarded(NodeError):
    """The state of a known block was deleted by state pruning (Substrate's "State already
    discarded for <hash>"); JSON-RPC answers it with error 4003."""
