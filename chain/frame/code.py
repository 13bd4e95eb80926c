"""The runtime's identity in state: the `:code` entry (docs/runtime.md).

Substrate keeps the runtime's Wasm blob under the well-known key `:code`; clients hash it to
tell runtimes apart (polkadot-api caches metadata by that hash) and follow the
`RuntimeEnvironmentUpdated` digest item that a block carries when it changes. This runtime is
Python code that ships with the node, not a blob in state, so `:code` holds a small descriptor
of it instead of Wasm:

    b"cuckoo-py-runtime" ++ u8 format (1) ++ RuntimeVersion (SCALE, as Core_version returns it)
        ++ [u8; 32] code hash

The code hash is blake2_256 of the metadata V14 bytes the runtime serves at its built-in
version: two nodes whose runtimes differ in any call, event, error, storage item, type or
constant produce different blobs, and a blob never starts like Wasm (`\\0asm`) or Substrate's
compressed Wasm, so no client mistakes it for code it could execute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from chain.codec import CodecError, Decoder, decode_exact, encode_u8
from chain.frame.types import STR, U8, U32, FixedBytes, Struct, Tuple, Vec, fields_of
from chain.hashing import blake2_64

CODE_KEY = b":code"
CODE_MAGIC = b"cuckoo-py-runtime"
CODE_FORMAT = 1

# `sp_version::RuntimeVersion`: what `Core_version` returns and `System.Version` holds.
RUNTIME_VERSION = Struct(
    "sp_version::RuntimeVersion",
    fields_of(
        [
            ("spec_name", STR, "Cow<'static, str>"),
            ("impl_name", STR, "Cow<'static, str>"),
            ("authoring_version", U32, "u32"),
            ("spec_version", U32, "u32"),
            ("impl_version", U32, "u32"),
            ("apis", Vec(Tuple(FixedBytes(8), U32)), "ApisVec"),
            ("transaction_version", U32, "u32"),
            ("system_version", U8, "u8"),
        ]
    ),
)


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeVersion:
    spec_name: str
    impl_name: str
    authoring_version: int
    spec_version: int
    impl_version: int
    apis: tuple[tuple[str, int], ...]  # (runtime API name, version)
    transaction_version: int
    state_version: int = 1  # FRAME's `system_version` (the trie's state version)

    def api_ids(self) -> list[tuple[bytes, int]]:
        return [(blake2_64(name.encode()), version) for name, version in self.apis]

    def to_json(self) -> dict[str, object]:
        return {
            "specName": self.spec_name,
            "implName": self.impl_name,
            "authoringVersion": self.authoring_version,
            "specVersion": self.spec_version,
            "implVersion": self.impl_version,
            "apis": [["0x" + h.hex(), v] for h, v in self.api_ids()],
            "transactionVersion": self.transaction_version,
            "stateVersion": self.state_version,
        }

    def to_value(self) -> dict[str, object]:
        """The value `RUNTIME_VERSION` encodes."""
        return {
            "spec_name": self.spec_name,
            "impl_name": self.impl_name,
            "authoring_version": self.authoring_version,
            "spec_version": self.spec_version,
            "impl_version": self.impl_version,
            "apis": [(h, v) for h, v in self.api_ids()],
            "transaction_version": self.transaction_version,
            "system_version": self.state_version,
        }

    def encode(self) -> bytes:
        return RUNTIME_VERSION.encode(self.to_value())


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeCode:
    """The decoded `:code` blob: which runtime code, at which version. The runtime APIs are
    kept as their ids (blake2_64 of the name): only a runtime that knows the names can give
    the `RuntimeVersion` back (`version`)."""

    spec_name: str
    impl_name: str
    authoring_version: int
    spec_version: int
    impl_version: int
    apis: tuple[tuple[bytes, int], ...]  # (blake2_64(name), version)
    transaction_version: int
    state_version: int
    code_hash: bytes  # blake2_256 of the runtime's metadata V14 at its built-in version

    @classmethod
    def of(cls, version: RuntimeVersion, code_hash: bytes) -> RuntimeCode:
        return cls(
            version.spec_name,
            version.impl_name,
            version.authoring_version,
            version.spec_version,
            version.impl_version,
            tuple(version.api_ids()),
            version.transaction_version,
            version.state_version,
            code_hash,
        )

    def version(self, api_names: Sequence[str]) -> RuntimeVersion:
        """The version stated, with API names from `api_names`; CodecError for an API not
        among them."""
        names = {blake2_64(n.encode()): n for n in api_names}
        apis = []
        for api_id, api_version in self.apis:
            name = names.get(api_id)
            if name is None:
                raise CodecError(f"unknown runtime API 0x{api_id.hex()}")
            apis.append((name, api_version))
        return RuntimeVersion(
            self.spec_name,
            self.impl_name,
            self.authoring_version,
            self.spec_version,
            self.impl_version,
            tuple(apis),
            self.transaction_version,
            self.state_version,
        )

    def encode(self) -> bytes:
        version = RUNTIME_VERSION.encode(
            {
                "spec_name": self.spec_name,
                "impl_name": self.impl_name,
                "authoring_version": self.authoring_version,
                "spec_version": self.spec_version,
                "impl_version": self.impl_version,
                "apis": list(self.apis),
                "transaction_version": self.transaction_version,
                "system_version": self.state_version,
            }
        )
        return CODE_MAGIC + encode_u8(CODE_FORMAT) + version + self.code_hash

    @classmethod
    def decode(cls, raw: bytes) -> RuntimeCode:
        """Strictly decode a blob; CodecError if it is not a descriptor of this format."""

        def read(d: Decoder) -> RuntimeCode:
            if d.read(len(CODE_MAGIC)) != CODE_MAGIC:
                raise CodecError("not a cuckoo runtime descriptor")
            fmt = d.u8()
            if fmt != CODE_FORMAT:
                raise CodecError(f"unknown runtime descriptor format {fmt}")
            v = RUNTIME_VERSION.decode(d)
            return cls(
                v["spec_name"],
                v["impl_name"],
                v["authoring_version"],
                v["spec_version"],
                v["impl_version"],
                tuple((bytes(h), n) for h, n in v["apis"]),
                v["transaction_version"],
                v["system_version"],
                d.read(32),
            )

        try:
            return decode_exact(raw, read)
        except ValueError as exc:  # a spec name that is not UTF-8
            raise CodecError(f"malformed runtime descriptor: {exc}") from exc

    def is_same_code(self, other: RuntimeCode) -> bool:
        """Whether both describe the same runtime code (their version numbers may differ)."""
        return (
            self.code_hash == other.code_hash
            and self.spec_name == other.spec_name
            and self.impl_name == other.impl_name
            and self.apis == other.apis
            and self.state_version == other.state_version
        )


__all__ = [
    "CODE_FORMAT",
    "CODE_KEY",
    "CODE_MAGIC",
    "RUNTIME_VERSION",
    "RuntimeCode",
    "RuntimeVersion",
]
