"""Which browser origins may call the RPC (`--rpc-cors`), as Substrate's flag of that name.

A browser tells the page's origin in the `Origin` header of a cross-origin fetch (after a CORS
preflight `OPTIONS` for a JSON POST) and of every WebSocket handshake. The server answers a
request whose origin is allowed with `Access-Control-Allow-Origin`, and refuses one whose origin
is not with 403, WebSocket upgrades included. Requests without an `Origin` header (curl,
substrate-interface over HTTP, `@polkadot/api` in Node.js) are not from a browser page and are
served. An origin equal to the request's own `Host` when that host is an IP address or
`localhost` is served too: websocket-client, under substrate-interface, sends such an origin
(`http://<host:port it dialled>`), and no page can have it, since the node serves no pages (a
name could be rebound to the node's address by DNS; an IP literal cannot).

Policies: `all`; a comma-separated list of origins (`scheme://host[:port]`; `:*` matches any
port or none; `null` matches the opaque origin of files and sandboxed frames); and the default,
which depends on the chain type: development and local chains allow pages on this machine
(localhost, 127.0.0.1 and [::1], any port, http and https) and Polkadot.js Apps
(https://polkadot.js.org); live chains allow none.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Final
from urllib.parse import urlsplit

__all__ = ["LOCAL_ORIGINS", "CorsPolicy"]

LOCAL_ORIGINS: Final = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
    "https://polkadot.js.org",
)
"""The default of development and local chains."""
_TEST_CHAIN_TYPES: Final = frozenset({"Development", "Local"})
_ANY_PORT: Final = ":*"


@dataclasses.dataclass(frozen=True, slots=True)
class CorsPolicy:
    """`is_any`: every origin; else the origins of `origins` (lowercase, `:*` for any port)."""

    origins: tuple[str, ...] = ()
    is_any: bool = False

    @classmethod
    def parse(cls, value: str) -> CorsPolicy:
        """`all`, or a comma-separated list of origins. Raises ValueError."""
        if value.strip().lower() == "all":
            return cls(is_any=True)
        origins = tuple(_normalize(o) for o in value.split(",") if o.strip())
        if not origins:
            raise ValueError("--rpc-cors needs `all` or a comma-separated list of origins")
        for origin in origins:
            if origin != "null" and "://" not in origin:
                raise ValueError(
                    f"--rpc-cors: {origin!r} is not an origin (scheme://host[:port], or null)"
                )
        return cls(origins)

    @classmethod
    def for_chain_type(cls, chain_type: str) -> CorsPolicy:
        """The default: pages on this machine and Polkadot.js Apps on development and local
        chains, no page on live ones."""
        return cls(LOCAL_ORIGINS if chain_type in _TEST_CHAIN_TYPES else ())

    def allows(self, origin: str, host: str | None = None) -> bool:
        """Whether a request with `Origin: origin` (and `Host: host`) is served."""
        if self.is_any:
            return True
        seen = _normalize(origin)
        for allowed in self.origins:
            if allowed.endswith(_ANY_PORT):
                base = allowed[: -len(_ANY_PORT)]
                if seen == base or (
                    seen.startswith(base + ":") and seen[len(base) + 1 :].isdigit()
                ):
                    return True
            elif seen == allowed:
                return True
        return host is not None and _is_own_address(seen, host)

    def describe(self) -> str:
        if self.is_any:
            return "all origins"
        return ", ".join(self.origins) if self.origins else "no browser origin"


def _normalize(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


def _is_own_address(origin: str, host: str) -> bool:
    """`origin` is http(s)://<the request's Host>, and that host is an IP literal or localhost."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.netloc != host.strip().lower():
        return False
    name = parts.hostname or ""
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
