"""Errors raised by the node layer (I/O, database, networking), outside the protocol."""

from __future__ import annotations


class NodeError(Exception):
    """A node-level failure with a message meant for the operator."""
