"""`cuckoo-portal --node ws://HOST:PORT`: build (when needed) and serve the staking portal.

    cuckoo-portal --node ws://127.0.0.1:9944             # http://127.0.0.1:8090
    cuckoo-portal --node wss://rpc.example --host 0.0.0.0 --port 80 --no-build

The page asks the node named in `config.json` (or `?rpc=` in its URL); the node must allow the
page's origin (`--rpc-cors`; dev and local chains allow pages on localhost).
"""

from __future__ import annotations

import argparse
import http.server
import json
import signal
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from portal_server.build import DIST, BuildError, build

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


class PortalHandler(http.server.SimpleHTTPRequestHandler):
    """Static files from the dist folder, plus `/config.json` naming the node."""

    config: bytes = b"{}"

    def __init__(self, *args: Any, directory: str, config: bytes, **kw: Any) -> None:
        self.config = config
        super().__init__(*args, directory=directory, **kw)

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def guess_type(self, path: Any) -> str:
        return CONTENT_TYPES.get(Path(str(path)).suffix, "application/octet-stream")

    def do_GET(self) -> None:
        if urlparse(self.path).path == "/config.json":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.config)))
            self.end_headers()
            self.wfile.write(self.config)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the portal is static files


def make_server(
    node_url: str, host: str = "127.0.0.1", port: int = 8090, dist: Path = DIST
) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the built portal at `dist` (port 0: any free port)."""
    if not (dist / "index.html").exists():
        raise BuildError(f"no portal build in {dist}: run cuckoo-portal without --no-build")
    config = json.dumps({"node": node_url}).encode()
    handler = partial(PortalHandler, directory=str(dist), config=config)
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(
    node_url: str, host: str = "127.0.0.1", port: int = 0, dist: Path = DIST
) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; (server, its URL). `server.shutdown()` stops it."""
    server = make_server(node_url, host, port, dist)
    threading.Thread(target=server.serve_forever, name="portal", daemon=True).start()
    return server, server_url(server)


def server_url(server: http.server.ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cuckoo-portal", description=__doc__.split("\n\n")[0])
    p.add_argument("--node", default="ws://127.0.0.1:9944", help="the node's RPC (ws:// or wss://)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--dist", type=Path, default=DIST, help="a built portal (default portal/dist)")
    p.add_argument("--no-build", action="store_true", help="serve --dist as it is")
    args = p.parse_args(argv)
    if urlparse(args.node).scheme not in ("ws", "wss", "http", "https"):
        print(
            f"cuckoo-portal: --node must be a ws:// or wss:// URL, not {args.node!r}",
            file=sys.stderr,
        )
        return 2
    try:
        if not args.no_build and args.dist == DIST:
            build()
        server = make_server(args.node, args.host, args.port, args.dist)
    except (BuildError, OSError) as exc:
        print(f"cuckoo-portal: {exc}", file=sys.stderr)
        return 1
    print(f"cuckoo-portal: {server_url(server)} (node {args.node})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
