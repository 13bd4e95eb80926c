"""`cuckoo-node key`: generate, inspect and insert keys, like Substrate's `subkey` / `key`.

`generate` and `inspect` print secrets to stdout on purpose (that is what they are for); nothing
here logs. Secrets can be read from stdin (`-`) so they stay out of shell history and `ps`;
`insert` only takes its secret URI from a file or stdin. Errors are one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from bip39 import bip39_generate
from scalecodec.utils.ss58 import get_ss58_format
from scalecodec.utils.ss58 import ss58_decode as scale_ss58_decode
from scalecodec.utils.ss58 import ss58_encode as scale_ss58_encode

from chain.crypto import CryptoError, SignatureScheme, account_id_from_public, ss58_encode
from chainclient.keyfile import KeyFileError, read_key_file
from node.keystore import (
    KEYSTORE_SCHEMES,
    SCHEME_NAMES,
    DerivedKey,
    Keystore,
    KeystoreError,
    derive_key,
    key_type_bytes,
    parse_scheme,
)

__all__ = ["add_key_parser", "run_key"]

_WORD_COUNTS = (12, 15, 18, 21, 24)
_NETWORK_NAMES = {0: "polkadot", 2: "kusama", 42: "substrate"}


class _KeyCmdError(Exception):
    """A user error: printed as one line, exit code 1."""


def add_key_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `key` with its `generate`, `inspect` and `insert` subcommands."""
    key = subparsers.add_parser(
        "key",
        help="generate, inspect and insert keys (like subkey)",
        description="Key utilities, in the style of Substrate's `subkey`.",
    )
    key.set_defaults(func=run_key)
    sub = key.add_subparsers(dest="key_command", metavar="COMMAND")
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--scheme", choices=list(SCHEME_NAMES), default="sr25519", help="crypto scheme"
        )
        p.add_argument(
            "--network-prefix",
            "-n",
            type=int,
            default=None,
            metavar="N",
            help="SS58 network prefix (default 42, substrate)",
        )
        p.add_argument("--output-type", choices=("text", "json"), default="text")

    gen = sub.add_parser("generate", help="generate a random key (prints its secret phrase)")
    common(gen)
    gen.add_argument("--words", "-w", type=int, choices=_WORD_COUNTS, default=12)

    insp = sub.add_parser(
        "inspect",
        help="show the public key and address of a secret URI or public key",
        description=(
            "URI is a mnemonic, a 0x seed or a dev path like //Alice, optionally followed by "
            "derivation junctions (//hard, /soft) and ///password; with --public, a public key "
            "(hex) or SS58 address. Give `-` (or nothing) to read it from stdin."
        ),
    )
    common(insp)
    insp.add_argument("uri", nargs="?", default="-", metavar="URI")
    insp.add_argument(
        "--public", action="store_true", help="URI is a public key (hex) or SS58 address"
    )

    ins = sub.add_parser(
        "insert",
        allow_abbrev=False,  # `--suri X` must not pass for `--suri-file X`
        help="store a key in the node's keystore",
        description=(
            "Store a secret URI, read from --suri-file (or stdin with -), in a keystore: "
            "--keystore-path if given, else DIR/chains/<chain id>/keystore with --chain "
            "(where the node looks), else DIR/keystore."
        ),
    )
    _add_keystore_location(ins, chain_help="chain whose keystore to use (dev, local, ...)")
    ins.add_argument("--key-type", required=True, metavar="TYPE", help="4 characters, e.g. aura")
    ins.add_argument(
        "--suri-file",
        default=None,
        metavar="FILE",
        help="file holding the secret URI, or - for stdin (required)",
    )
    # refused with a clear message: a secret on the command line ends up in history and `ps`
    ins.add_argument("--suri", dest="suri_argument", default=None, help=argparse.SUPPRESS)
    ins.add_argument(
        "--scheme",
        choices=list(KEYSTORE_SCHEMES),
        default=None,
        help="sr25519 (default), ed25519, ecdsa, or bls12-381 (the default for --key-type bls_)",
    )
    add_session_keys_parser(sub)


def add_session_keys_parser(sub: Any) -> None:
    sk = sub.add_parser(
        "session-keys",
        allow_abbrev=False,
        help="a validator's session keys (aura, gran, bls_) and BLS proof of possession",
        description=(
            "Derive the three session keys of a secret URI read from --suri-file (or stdin with "
            "-): aura (sr25519), grandpa (ed25519) and bls (BLS12-381, with its proof of "
            "possession), print them as the arguments of Session.set_keys, and with --chain "
            "store them in the node's keystore (as `key insert` does for each type)."
        ),
    )
    _add_keystore_location(sk, chain_help="also insert into this chain's keystore")
    sk.add_argument("--suri-file", default=None, metavar="FILE", help="secret URI file, or -")


def _add_keystore_location(p: argparse.ArgumentParser, *, chain_help: str) -> None:
    """The options `_keystore_path` reads: --keystore-path, else DIR/chains/<chain id>/keystore
    with --chain, else DIR/keystore (DIR: --base-path)."""
    # SUPPRESS: leave a --base-path given before `key` (the node's global option) in place
    p.add_argument("--base-path", "-d", type=Path, default=argparse.SUPPRESS, metavar="DIR")
    p.add_argument("--chain", default=None, help=chain_help)
    p.add_argument("--keystore-path", type=Path, default=None, metavar="PATH")


def _session_keys(args: argparse.Namespace) -> None:
    from node.keystore import derive_bls_signer

    if args.suri_file is None:
        raise _KeyCmdError("--suri-file FILE (or - for stdin) is required")
    suri = _read_suri_file(args.suri_file)
    aura = derive_key(suri, "sr25519")
    gran = derive_key(suri, "ed25519")
    bls_signer = derive_bls_signer(suri)
    out = {
        "keys": {
            "aura": "0x" + aura.public.hex(),
            "grandpa": "0x" + gran.public.hex(),
            "bls": "0x" + bls_signer.public.hex(),
        },
        "proof": "0x" + bls_signer.prove_possession().hex(),
    }
    if args.chain is not None or args.keystore_path is not None:
        keystore = Keystore(_keystore_path(args))
        keystore.insert("aura", suri, "sr25519")
        keystore.insert("gran", suri, "ed25519")
        keystore.insert("bls_", suri, "bls12-381")
        out["keystore"] = str(keystore.path)
    print(json.dumps(out, indent=2))


def run_key(args: argparse.Namespace) -> int:
    """Run a parsed `key` command; returns the exit code."""
    commands: dict[str, Callable[[argparse.Namespace], None]] = {
        "generate": _generate,
        "inspect": _inspect,
        "insert": _insert,
        "session-keys": _session_keys,
    }
    command = commands.get(getattr(args, "key_command", None) or "")
    if command is None:
        print("Error: missing key command (generate, inspect or insert)", file=sys.stderr)
        return 1
    try:
        command(args)
    except (_KeyCmdError, KeystoreError, CryptoError) as exc:
        print(f"Error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 1
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "failed"


# --- generate / inspect ----------------------------------------------------------------------


def _generate(args: argparse.Namespace) -> None:
    prefix = _prefix(args.network_prefix)
    phrase = str(bip39_generate(args.words))
    key = derive_key(phrase, args.scheme)
    _print_secret(key, phrase, prefix, args.output_type)


def _inspect(args: argparse.Namespace) -> None:
    scheme = parse_scheme(args.scheme)
    uri = args.uri
    if uri == "-":
        uri = _read_secret(sys.stdin, prompt="URI: ")
    if args.public:
        _inspect_public(uri, scheme, args.network_prefix, args.output_type)
        return
    prefix = _prefix(args.network_prefix)
    key = derive_key(uri, scheme)
    _print_secret(key, uri, prefix, args.output_type)


def _prefix(value: int | None) -> int:
    prefix = 42 if value is None else value
    ss58_encode(bytes(32), prefix)  # validates the range and reserved values
    return prefix


def _network_id(prefix: int) -> str:
    return _NETWORK_NAMES.get(prefix, str(prefix))


def _public_ss58(public: bytes, prefix: int) -> str:
    if len(public) == 32:
        return ss58_encode(public, prefix)
    return str(scale_ss58_encode(public, ss58_format=prefix))


def _print_secret(key: DerivedKey, uri: str, prefix: int, output_type: str) -> None:
    account = key.account_id
    seed = "0x" + key.seed.hex() if key.seed is not None else "n/a"
    public_ss58 = _public_ss58(key.public, prefix)
    address = ss58_encode(account, prefix)
    if output_type == "json":
        data: dict[str, Any] = {}
        if key.is_phrase:
            data["secretPhrase"] = uri
        else:
            data["secretKeyUri"] = _mask_password(uri)
        data.update(
            networkId=_network_id(prefix),
            secretSeed=seed,
            publicKey="0x" + key.public.hex(),
            ss58PublicKey=public_ss58,
            accountId="0x" + account.hex(),
            ss58Address=address,
        )
        print(json.dumps(data, indent=2))
        return
    if key.is_phrase:
        head = f"Secret phrase:       {uri}"
    else:
        head = f"Secret Key URI `{_mask_password(uri)}` is account:"
    print(
        f"{head}\n"
        f"  Network ID:        {_network_id(prefix)}\n"
        f"  Secret seed:       {seed}\n"
        f"  Public key (hex):  0x{key.public.hex()}\n"
        f"  Account ID:        0x{account.hex()}\n"
        f"  Public key (SS58): {public_ss58}\n"
        f"  SS58 Address:      {address}"
    )


def _mask_password(uri: str) -> str:
    head, sep, _password = uri.partition("///")
    return head + sep + "***" if sep else uri


def _inspect_public(
    text: str, scheme: SignatureScheme, network_prefix: int | None, output_type: str
) -> None:
    text = text.strip()
    name = scheme.name.lower()
    address_prefix: int | None = None
    if text.startswith("0x") or (len(text) in (64, 66) and _is_hex(text)):
        try:
            public = bytes.fromhex(text.removeprefix("0x"))
        except ValueError:
            raise _KeyCmdError("invalid public key: not valid hex") from None
    else:
        try:
            public = bytes.fromhex(scale_ss58_decode(text))
            address_prefix = int(get_ss58_format(text))
        except Exception:  # scalecodec raises ValueError, IndexError, ... on bad input
            raise _KeyCmdError(
                "invalid public key: expected 0x-prefixed hex or an SS58 address"
            ) from None
    if scheme == SignatureScheme.ECDSA and len(public) == 32 and address_prefix is not None:
        raise _KeyCmdError(
            "an ecdsa account address holds a hash of the public key; "
            "give the 33-byte compressed public key instead"
        )
    expected = (33,) if scheme == SignatureScheme.ECDSA else (32,)
    if len(public) not in expected:
        raise _KeyCmdError(f"invalid {name} public key: expected {expected[0]} bytes")
    try:
        account = account_id_from_public(scheme, public)
    except CryptoError as exc:
        raise _KeyCmdError(f"invalid {name} public key: {exc}") from None
    prefix = _prefix(network_prefix if network_prefix is not None else address_prefix)
    public_ss58 = _public_ss58(public, prefix)
    address = ss58_encode(account, prefix)
    if output_type == "json":
        data = {
            "networkId": _network_id(prefix),
            "publicKey": "0x" + public.hex(),
            "accountId": "0x" + account.hex(),
            "ss58PublicKey": public_ss58,
            "ss58Address": address,
        }
        print(json.dumps(data, indent=2))
        return
    print(
        f"Network ID/Version: {_network_id(prefix)}\n"
        f"  Public key (hex):   0x{public.hex()}\n"
        f"  Account ID:         0x{account.hex()}\n"
        f"  Public key (SS58):  {public_ss58}\n"
        f"  SS58 Address:       {address}"
    )


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


# --- insert ----------------------------------------------------------------------------------


def _keystore_path(args: argparse.Namespace) -> Path:
    if args.keystore_path is not None:
        return Path(args.keystore_path)
    base = getattr(args, "base_path", None)
    if base is None:
        raise _KeyCmdError("give --base-path DIR or --keystore-path PATH")
    if args.chain is None:
        return Path(base) / "keystore"
    try:
        # imported here only: no other key command needs the runtime and chain specs
        builder = importlib.import_module("genesis.builder")
        chain_id = str(builder.load_spec(args.chain).id)
    except Exception as exc:  # the spec loader's own errors; report them as one line
        raise _KeyCmdError(f"cannot load chain spec {args.chain!r}: {exc}") from None
    return Path(base) / "chains" / chain_id / "keystore"


def _insert(args: argparse.Namespace) -> None:
    if args.suri_argument is not None:
        raise _KeyCmdError(
            "secret URIs are not taken on the command line; use --suri-file FILE "
            "(or --suri-file - to read stdin)"
        )
    if args.suri_file is None:
        raise _KeyCmdError("--suri-file FILE (or - for stdin) is required")
    key_type_bytes(args.key_type)  # fail before reading any secret
    keystore_path = _keystore_path(args)
    suri = _read_suri_file(args.suri_file)
    keystore = Keystore(keystore_path)
    public = keystore.insert(args.key_type, suri, args.scheme)
    print("0x" + public.hex())


def _read_suri_file(name: str) -> str:
    """The secret URI in file `name` (or stdin for -); never empty. A file is read as the
    daemons read operator key files, but any file mode is taken, as it always was here."""
    if name == "-":
        suri = _read_secret(sys.stdin, prompt="Secret URI: ")
        if not suri:
            raise _KeyCmdError("the secret URI is empty")
        return suri
    try:
        return read_key_file(Path(name), what="secret URI file", require_private=False)
    except KeyFileError as exc:
        raise _KeyCmdError(str(exc)) from None


def _read_secret(stream: TextIO, prompt: str) -> str:
    """One line from `stream`; prompts without echo when it is a terminal."""
    if stream.isatty():
        try:
            return getpass.getpass(prompt).strip()
        except EOFError:
            return ""
    return stream.readline().strip()
