"""The protocol: codec, hashing, crypto, primitives, storage, runtime framework, executive.

Everything under `chain/` is pure and deterministic: no clock, randomness, network, files,
threads or floats.
"""


class ChainError(Exception):
    """Root of every error raised by the protocol layer."""
