"""Session keys on disk, laid out like Substrate's `LocalKeystore`, and the secret-URI grammar.

A keystore is a directory (mode 0700) of key files. A file's name is
`hex(key type, 4 ASCII bytes) + hex(public key)` and its content the JSON string of the secret
URI (a mnemonic, a `0x` seed, `//Alice`, ...), file mode 0600. A key file that group or others
may access is refused.

Secret URIs follow `sp_core::crypto::Pair::from_string_with_seed`:
`[<mnemonic> | 0x<32-byte hex seed>][//hard][/soft]...[///password]`, an empty phrase meaning
the well-known dev phrase. Derivation is done here, byte for byte as Substrate does it, rather
than with `substrateinterface.Keypair.create_from_uri`: that one has no hard derivation for
ed25519, does Ethereum-style (BIP-44, keccak) ecdsa instead of Substrate's, and drops the secret
seed of hard-derived sr25519 keys. Its sr25519 and ed25519 results are the same as ours (tests
check this); it derives sr25519 with the same schnorrkel bindings.

BLS12-381 keys (key type `bls_`, scheme "bls12-381", for the per-session finality proofs) are
stored the same way, under their 48-byte public key. Their secret is
`chain.bls.secret_from_seed(<the URI's ed25519 seed>)`: the ed25519 derivation (hard junctions
only) always keeps a seed, so any URI usable for a `gran` key is usable for a `bls_` key.

Nothing here logs, and no error message holds a secret URI, phrase, seed or password.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import stat
from pathlib import Path

import sr25519
from bip39 import bip39_to_mini_secret, bip39_validate

from chain.codec import encode_compact
from chain.crypto import (
    CryptoError,
    SignatureScheme,
    account_id_from_public,
    ecdsa_public_from_secret,
    ecdsa_sign,
    ed25519_public_from_seed,
    ed25519_sign,
    sr25519_pair_from_seed,
    sr25519_sign,
    ss58_encode,
)
from chain.hashing import blake2_256
from node.errors import NodeError

__all__ = [
    "AURA_KEY_TYPE",
    "BLS_KEY_TYPE",
    "BLS_PUBLIC_LENGTH",
    "BLS_SCHEME",
    "BlsSigner",
    "DEV_ACCOUNTS",
    "KEYSTORE_SCHEMES",
    "DEV_PHRASE",
    "GRANDPA_KEY_TYPE",
    "SCHEME_NAMES",
    "DerivedKey",
    "Keystore",
    "KeystoreError",
    "Signer",
    "derive_bls_signer",
    "derive_key",
    "key_type_bytes",
    "dev_suri",
    "parse_scheme",
]

DEV_PHRASE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
DEV_ACCOUNTS = ("alice", "bob", "charlie", "dave", "eve", "ferdie")

SCHEME_NAMES: dict[str, SignatureScheme] = {
    "sr25519": SignatureScheme.SR25519,
    "ed25519": SignatureScheme.ED25519,
    "ecdsa": SignatureScheme.ECDSA,
}
BLS_SCHEME = "bls12-381"
AURA_KEY_TYPE = "aura"  # the session keys' types: block authoring (sr25519)
GRANDPA_KEY_TYPE = "gran"  # finality votes (ed25519)
BLS_KEY_TYPE = "bls_"  # per-session BLS finality proofs (bls12-381)
BLS_PUBLIC_LENGTH = 48
#: every scheme `Keystore.insert` accepts
KEYSTORE_SCHEMES = (*SCHEME_NAMES, BLS_SCHEME)


class KeystoreError(NodeError):
    """A bad secret URI, key type or key file; never carries the secret itself."""


def parse_scheme(scheme: str | SignatureScheme) -> SignatureScheme:
    """`SignatureScheme` of "sr25519" / "ed25519" / "ecdsa" (case-insensitive)."""
    if isinstance(scheme, SignatureScheme):
        return scheme
    try:
        return SCHEME_NAMES[scheme.lower()]
    except (KeyError, AttributeError):
        raise KeystoreError(
            f"unknown signature scheme {scheme!r}; expected one of {', '.join(SCHEME_NAMES)}"
        ) from None


def scheme_name(scheme: SignatureScheme) -> str:
    return scheme.name.lower()


def dev_suri(name: str) -> str:
    """Secret URI of a well-known dev account: "alice" -> "//Alice" (case-insensitive)."""
    key = name.strip().lower()
    if key not in DEV_ACCOUNTS:
        raise KeystoreError(
            f"unknown dev account {name!r}; expected one of {', '.join(DEV_ACCOUNTS)}"
        )
    return "//" + key.capitalize()


# --- signer ----------------------------------------------------------------------------------


class Signer:
    """A key pair held in memory. `repr` shows the scheme and SS58 address, never the secret."""

    __slots__ = ("_secret", "public", "scheme")

    def __init__(self, scheme: SignatureScheme, public: bytes, secret: bytes) -> None:
        self.scheme = scheme
        self.public = bytes(public)
        # sr25519: 64-byte expanded secret key; ed25519: 32-byte seed; ecdsa: 32-byte secret key
        self._secret = bytes(secret)

    @property
    def account_id(self) -> bytes:
        return account_id_from_public(self.scheme, self.public)

    def ss58_address(self, prefix: int = 42) -> str:
        return ss58_encode(self.account_id, prefix)

    def sign(self, message: bytes) -> bytes:
        """Signature over `message`, as `chain.crypto.verify_signature` checks it."""
        if self.scheme == SignatureScheme.SR25519:
            return sr25519_sign(self.public, self._secret, message)
        if self.scheme == SignatureScheme.ED25519:
            return ed25519_sign(self._secret, message)
        return ecdsa_sign(self._secret, message)

    def derive_secret(self, domain: bytes) -> bytes:
        """32 bytes only the holder of this key can compute, for one purpose (`domain`):
        `blake2_256(domain ++ secret)`. Never log the result (the Randomness onion's seed
        material is one)."""
        if not domain:
            raise KeystoreError("derive_secret needs a non-empty domain")
        return blake2_256(bytes(domain) + self._secret)

    def __repr__(self) -> str:
        return f"Signer({scheme_name(self.scheme)}, {self.ss58_address()})"

    __str__ = __repr__


@dataclasses.dataclass(frozen=True, eq=False, repr=False, slots=True)
class DerivedKey:
    """Result of `derive_key`: the public key, the 32-byte secret seed when the derivation
    keeps one (`None` after an sr25519 soft junction, as in Substrate), and a `Signer`."""

    scheme: SignatureScheme
    public: bytes
    _secret: bytes
    seed: bytes | None
    #: the URI was a bare mnemonic (no derivation path, no password)
    is_phrase: bool

    @property
    def account_id(self) -> bytes:
        return account_id_from_public(self.scheme, self.public)

    def signer(self) -> Signer:
        return Signer(self.scheme, self.public, self._secret)

    def __repr__(self) -> str:
        return f"DerivedKey({scheme_name(self.scheme)}, {ss58_encode(self.account_id)})"

    __str__ = __repr__


class BlsSigner:
    """A BLS12-381 key held in memory (finality proofs). `repr` shows only the public key.

    `chain.bls` (py-ecc, ~1 s to import) is imported on first use, not with this module."""

    __slots__ = ("_secret", "public")

    def __init__(self, secret: int) -> None:
        from chain import bls

        self._secret = secret
        self.public = bls.public_key(secret)  # 48 bytes, G1

    def sign(self, message: bytes) -> bytes:
        """96-byte signature (G2), as `chain.bls.verify` checks it. ~0.4 s: call it off the
        event loop."""
        from chain import bls

        return bls.sign(self._secret, message)

    def prove_possession(self) -> bytes:
        """96-byte proof of possession of the secret key (`chain.bls.verify_possession`)."""
        from chain import bls

        return bls.prove_possession(self._secret)

    def __repr__(self) -> str:
        return f"BlsSigner(0x{self.public.hex()})"

    __str__ = __repr__


def derive_bls_signer(suri: str) -> BlsSigner:
    """The BLS key of a secret URI: `secret_from_seed` of its ed25519 derivation's seed.

    Raises `KeystoreError` (never quoting the URI) when the URI does not derive an ed25519 seed.
    """
    key = derive_key(suri, SignatureScheme.ED25519)
    if key.seed is None:
        raise KeystoreError("invalid secret URI: its ed25519 derivation keeps no seed")
    from chain import bls

    return BlsSigner(bls.secret_from_seed(key.seed))


# --- secret URIs -----------------------------------------------------------------------------

_SURI_RE = re.compile(
    r"^(?P<phrase>[^/]*)(?P<path>(?://?[^/]+)*)(?:///(?P<password>.*))?$", re.DOTALL
)
_JUNCTION_RE = re.compile(r"(//?)([^/]+)")
_U64_LIMIT = 1 << 64
_HDKD_LABEL = {
    SignatureScheme.ED25519: encode_compact(11) + b"Ed25519HDKD",
    SignatureScheme.ECDSA: encode_compact(13) + b"Secp256k1HDKD",
}


def _chain_code(junction: str) -> bytes:
    """`DeriveJunction` chain code: a u64 if the text parses as one, else the SCALE string;
    padded to 32 bytes, or blake2_256 when longer."""
    digits = junction[1:] if junction.startswith("+") else junction
    if digits.isascii() and digits.isdigit() and int(digits) < _U64_LIMIT:
        code = int(digits).to_bytes(8, "little")
    else:
        raw = junction.encode("utf-8")
        code = encode_compact(len(raw)) + raw
    return blake2_256(code) if len(code) > 32 else code.ljust(32, b"\x00")


def derive_key(suri: str, scheme: str | SignatureScheme = "sr25519") -> DerivedKey:
    """Key pair of a secret URI, as `Pair::from_string_with_seed` derives it.

    Raises `KeystoreError` with a message that never quotes the URI.
    """
    sch = parse_scheme(scheme)
    if not isinstance(suri, str) or not suri:
        raise KeystoreError("empty secret URI")
    match = _SURI_RE.match(suri)
    if match is None:
        raise KeystoreError(
            "invalid secret URI: expected <mnemonic or 0x seed>[//hard][/soft][///password]"
        )
    phrase = match["phrase"] or DEV_PHRASE
    path = match["path"]
    password = match["password"]
    if phrase.startswith("0x"):
        try:
            seed = bytes.fromhex(phrase[2:])
        except ValueError:
            raise KeystoreError("invalid secret URI: the 0x seed is not valid hex") from None
        if len(seed) != 32:
            raise KeystoreError(f"invalid secret URI: the seed must be 32 bytes, got {len(seed)}")
    else:
        mini_secret: bytes | None = None
        try:
            if bip39_validate(phrase):
                mini_secret = bytes(bip39_to_mini_secret(phrase, password or ""))
        except (ValueError, TypeError):
            mini_secret = None
        if mini_secret is None:
            raise KeystoreError(
                "invalid secret URI: not a valid BIP-39 mnemonic nor a 0x-prefixed 32-byte seed"
            )
        seed = mini_secret
    junctions = [(sep == "//", _chain_code(name)) for sep, name in _JUNCTION_RE.findall(path)]
    is_phrase = (
        not phrase.startswith("0x") and not path and password is None and bool(match["phrase"])
    )
    try:
        if sch == SignatureScheme.SR25519:
            return _derive_sr25519(seed, junctions, is_phrase)
        return _derive_hdkd(sch, seed, junctions, is_phrase)
    except CryptoError:
        raise KeystoreError(f"invalid secret URI: not a valid {scheme_name(sch)} key") from None


def _derive_sr25519(
    seed: bytes, junctions: list[tuple[bool, bytes]], is_phrase: bool
) -> DerivedKey:
    public, secret = sr25519_pair_from_seed(seed)
    current_seed: bytes | None = seed
    for hard, chain_code in junctions:
        if hard:
            child_seed = _sr25519_hard_seed(secret, chain_code)
            public, secret = sr25519_pair_from_seed(child_seed)
            current_seed = child_seed if current_seed is not None else None
        else:
            _cc, public, secret = sr25519.derive_keypair((chain_code, public, secret), b"")
            current_seed = None
    return DerivedKey(
        SignatureScheme.SR25519, bytes(public), bytes(secret), current_seed, is_phrase
    )


def _derive_hdkd(
    sch: SignatureScheme, seed: bytes, junctions: list[tuple[bool, bytes]], is_phrase: bool
) -> DerivedKey:
    for hard, chain_code in junctions:
        if not hard:
            raise KeystoreError(
                f"invalid secret URI: soft derivation (`/`) is not supported for "
                f"{scheme_name(sch)}; use hard junctions (`//`)"
            )
        seed = blake2_256(_HDKD_LABEL[sch] + seed + chain_code)
    if sch == SignatureScheme.ED25519:
        public = ed25519_public_from_seed(seed)
    else:
        public = ecdsa_public_from_secret(seed)
    return DerivedKey(sch, public, seed, seed, is_phrase)


# sr25519 hard derivation keeps a mini-secret seed (schnorrkel `hard_derive_mini_secret_key`);
# the bindings only return the expanded key, so the Merlin transcript is computed here.

_KECCAK_RC = (
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
)  # fmt: skip
_KECCAK_ROT = (
    (0, 36, 3, 41, 18),
    (1, 44, 10, 45, 2),
    (62, 6, 43, 15, 61),
    (28, 55, 25, 21, 56),
    (27, 20, 39, 8, 14),
)
_M64 = (1 << 64) - 1


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (64 - n))) & _M64 if n else x


def _keccak_f1600(state: bytearray) -> None:
    a = [
        [int.from_bytes(state[8 * (x + 5 * y) : 8 * (x + 5 * y) + 8], "little") for y in range(5)]
        for x in range(5)
    ]
    for rc in _KECCAK_RC:
        c = [a[x][0] ^ a[x][1] ^ a[x][2] ^ a[x][3] ^ a[x][4] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rol(c[(x + 1) % 5], 1) for x in range(5)]
        b = [[0] * 5 for _ in range(5)]
        for x in range(5):
            for y in range(5):
                b[y][(2 * x + 3 * y) % 5] = _rol(a[x][y] ^ d[x], _KECCAK_ROT[x][y])
        a = [
            [b[x][y] ^ (~b[(x + 1) % 5][y] & b[(x + 2) % 5][y]) for y in range(5)] for x in range(5)
        ]
        a[0][0] ^= rc
    for x in range(5):
        for y in range(5):
            state[8 * (x + 5 * y) : 8 * (x + 5 * y) + 8] = a[x][y].to_bytes(8, "little")


class _Strobe128:
    """The subset of STROBE-128 that Merlin uses (meta-AD, AD, PRF)."""

    _R = 166
    _I, _A, _C, _M = 1, 2, 4, 16

    def __init__(self, label: bytes) -> None:
        self.state = bytearray(200)
        self.state[0:6] = bytes((1, self._R + 2, 1, 0, 1, 96))
        self.state[6:18] = b"STROBEv1.0.2"
        _keccak_f1600(self.state)
        self.pos = 0
        self.pos_begin = 0
        self.flags = 0
        self.meta_ad(label, more=False)

    def _run_f(self) -> None:
        self.state[self.pos] ^= self.pos_begin
        self.state[self.pos + 1] ^= 0x04
        self.state[self._R + 1] ^= 0x80
        _keccak_f1600(self.state)
        self.pos = 0
        self.pos_begin = 0

    def _absorb(self, data: bytes) -> None:
        for byte in data:
            self.state[self.pos] ^= byte
            self.pos += 1
            if self.pos == self._R:
                self._run_f()

    def _squeeze(self, n: int) -> bytes:
        out = bytearray()
        for _ in range(n):
            out.append(self.state[self.pos])
            self.state[self.pos] = 0
            self.pos += 1
            if self.pos == self._R:
                self._run_f()
        return bytes(out)

    def _begin_op(self, flags: int, more: bool) -> None:
        if more:
            return
        old_begin = self.pos_begin
        self.pos_begin = self.pos + 1
        self.flags = flags
        self._absorb(bytes((old_begin, flags)))
        if flags & self._C and self.pos != 0:
            self._run_f()

    def meta_ad(self, data: bytes, more: bool) -> None:
        self._begin_op(self._M | self._A, more)
        self._absorb(data)

    def ad(self, data: bytes, more: bool) -> None:
        self._begin_op(self._A, more)
        self._absorb(data)

    def prf(self, n: int, more: bool) -> bytes:
        self._begin_op(self._I | self._A | self._C, more)
        return self._squeeze(n)


class _Transcript:
    def __init__(self, label: bytes) -> None:
        self._strobe = _Strobe128(b"Merlin v1.0")
        self.append(b"dom-sep", label)

    def append(self, label: bytes, message: bytes) -> None:
        self._strobe.meta_ad(label, more=False)
        self._strobe.meta_ad(len(message).to_bytes(4, "little"), more=True)
        self._strobe.ad(message, more=False)

    def challenge(self, label: bytes, n: int) -> bytes:
        self._strobe.meta_ad(label, more=False)
        self._strobe.meta_ad(n.to_bytes(4, "little"), more=True)
        return self._strobe.prf(n, more=False)


def _sr25519_hard_seed(secret: bytes, chain_code: bytes) -> bytes:
    """schnorrkel `SecretKey::hard_derive_mini_secret_key(Some(cc), b"")`."""
    transcript = _Transcript(b"SchnorrRistrettoHDKD")
    transcript.append(b"sign-bytes", b"")
    transcript.append(b"chain-code", chain_code)
    transcript.append(b"secret-key", secret[:32])
    return transcript.challenge(b"HDKD-hard", 32)


# --- keystore --------------------------------------------------------------------------------


def key_type_bytes(key_type: str) -> bytes:
    """The 4 bytes of a key type id such as "aura"; `KeystoreError` if it is not one."""
    try:
        raw = key_type.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        raw = b""
    if len(raw) != 4 or not all(0x21 <= c < 0x7F for c in raw):
        raise KeystoreError(
            f"key type must be 4 printable ASCII characters (e.g. aura, gran), got {key_type!r}"
        )
    return raw


class Keystore:
    """A directory of key files in Substrate's layout (see the module docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if self.path.exists():
            if not self.path.is_dir():
                raise KeystoreError(f"keystore path {self.path} exists and is not a directory")
            return
        try:
            self.path.mkdir(mode=0o700, parents=True)
            os.chmod(self.path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise KeystoreError(f"cannot create keystore {self.path}: {exc.strerror}") from None

    def _key_file(self, key_type: str, public: bytes) -> Path:
        return self.path / (key_type_bytes(key_type).hex() + bytes(public).hex())

    def insert(self, key_type: str, suri: str, scheme: str | None = None) -> bytes:
        """Store `suri` under `key_type`; returns the public key it derives to.

        `scheme`: sr25519 / ed25519 / ecdsa / bls12-381; by default bls12-381 for the `bls_`
        key type and sr25519 for the others. A `bls_` key must be bls12-381."""
        key_type_bytes(key_type)
        if scheme is None:
            scheme = BLS_SCHEME if key_type == BLS_KEY_TYPE else "sr25519"
        is_bls = scheme.lower() == BLS_SCHEME
        if key_type == BLS_KEY_TYPE and not is_bls:
            raise KeystoreError(f"{BLS_KEY_TYPE} keys use the {BLS_SCHEME} scheme")
        public = derive_bls_signer(suri).public if is_bls else derive_key(suri, scheme).public
        target = self._key_file(key_type, public)
        tmp = self.path / f".{target.name}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(tmp, flags, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, json.dumps(suri).encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise KeystoreError(f"cannot write key file {target}: {exc.strerror}") from None
        self._fsync_dir()
        return public

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def public_keys(self, key_type: str) -> list[bytes]:
        """Public keys stored under `key_type`, sorted."""
        prefix = key_type_bytes(key_type).hex()
        keys: list[bytes] = []
        try:
            names = os.listdir(self.path)
        except OSError as exc:
            raise KeystoreError(f"cannot read keystore {self.path}: {exc.strerror}") from None
        for name in names:
            if not name.startswith(prefix):
                continue
            try:
                public = bytes.fromhex(name[len(prefix) :])
            except ValueError:
                continue
            if len(public) in (32, 33, BLS_PUBLIC_LENGTH):
                keys.append(public)
        return sorted(keys)

    def has(self, key_type: str, public: bytes) -> bool:
        return self._key_file(key_type, public).is_file()

    def signer(self, key_type: str, public: bytes, *, scheme: str | None = None) -> Signer:
        """The `Signer` of a stored key. Without `scheme`, a 33-byte key is ecdsa and a
        32-byte one whichever of sr25519 / ed25519 derives to it."""
        path = self._key_file(key_type, public)
        suri = self._read_key_file(path)
        if scheme is not None:
            candidates = [parse_scheme(scheme)]
        elif len(public) == 33:
            candidates = [SignatureScheme.ECDSA]
        else:
            candidates = [SignatureScheme.SR25519, SignatureScheme.ED25519]
        for candidate in candidates:
            try:
                key = derive_key(suri, candidate)
            except KeystoreError:
                continue
            if key.public == bytes(public):
                return key.signer()
        raise KeystoreError(f"key file {path} does not hold the secret of its public key")

    def bls_signer(self, public: bytes, key_type: str = BLS_KEY_TYPE) -> BlsSigner:
        """The `BlsSigner` of a stored BLS key (48-byte public key)."""
        path = self._key_file(key_type, public)
        signer = derive_bls_signer(self._read_key_file(path))
        if signer.public != bytes(public):
            raise KeystoreError(f"key file {path} does not hold the secret of its public key")
        return signer

    def _read_key_file(self, path: Path) -> str:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise KeystoreError(f"no key file {path}") from None
        except OSError as exc:
            raise KeystoreError(f"cannot open key file {path}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise KeystoreError(f"key file {path} is not a regular file")
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                raise KeystoreError(
                    f"key file {path} has mode {mode:04o} and is accessible by group or "
                    f"others; refusing to use it. Run `chmod 600 {path}`"
                )
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        except OSError as exc:
            raise KeystoreError(f"cannot read key file {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        try:
            suri = json.loads(b"".join(chunks).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            suri = None
        if not isinstance(suri, str):
            raise KeystoreError(f"key file {path} does not hold a JSON string")
        return suri
