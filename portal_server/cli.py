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
import re
import signal
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from portal_server.build import DIST, BuildError, build
from portal_server.history import Follower, History

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


ADDRESS = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{40,60}$")
TASK_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")


class PortalHandler(http.server.SimpleHTTPRequestHandler):
    """Static files from the dist folder, `/config.json` naming the node, and the indexer's
    `/api/history/...` (status, account/ADDRESS, task/0xID, checked) when it runs."""

    config: bytes = b"{}"
    history: History | None = None

    def __init__(
        self, *args: Any, directory: str, config: bytes, history: History | None, **kw: Any
    ) -> None:
        self.config = config
        self.history = history
        super().__init__(*args, directory=directory, **kw)

    def _json(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _history(self, path: str) -> None:
        history = self.history
        if history is None:
            self._json(404, {"error": "the history indexer is not running (--no-history)"})
            return
        parts = path.split("/")[3:]  # "", "api", "history", ...
        if parts == ["status"]:
            self._json(200, history.status())
        elif parts == ["checked"]:
            self._json(200, history.checked_counts())
        elif len(parts) == 2 and parts[0] == "account" and ADDRESS.match(parts[1]):
            self._json(200, history.account(parts[1]))
        elif len(parts) == 2 and parts[0] == "task" and TASK_ID.match(parts[1]):
            self._json(200, history.task(parts[1]))
        else:
            self._json(400, {"error": "unknown history request"})

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def guess_type(self, path: Any) -> str:
        return CONTENT_TYPES.get(Path(str(path)).suffix, "application/octet-stream")

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        if path.startswith("/api/history/"):
            self._history(path)
            return
        if path == "/config.json":
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
    node_url: str,
    host: str = "127.0.0.1",
    port: int = 8090,
    dist: Path = DIST,
    history: History | None = None,
) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the built portal at `dist` (port 0: any free port); with `history`,
    its records under /api/history/."""
    if not (dist / "index.html").exists():
        raise BuildError(f"no portal build in {dist}: run cuckoo-portal without --no-build")
    config = json.dumps({"node": node_url, "history": history is not None}).encode()
    handler = partial(PortalHandler, directory=str(dist), config=config, history=history)
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(
    node_url: str,
    host: str = "127.0.0.1",
    port: int = 0,
    dist: Path = DIST,
    history: History | None = None,
) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; (server, its URL). `server.shutdown()` stops it."""
    server = make_server(node_url, host, port, dist, history)
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
    p.add_argument(
        "--no-history",
        action="store_true",
        help="no indexer: history views read only the node's recent blocks",
    )
    p.add_argument(
        "--history-from",
        type=int,
        default=None,
        metavar="BLOCK",
        help="first block the indexer reads (default: 10,000 before the finalized head)",
    )
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
        history = None if args.no_history else History()
        server = make_server(args.node, args.host, args.port, args.dist, history)
    except (BuildError, OSError) as exc:
        print(f"cuckoo-portal: {exc}", file=sys.stderr)
        return 1
    follower = None
    if history is not None:
        follower = Follower(args.node, history, args.history_from)
        follower.start()
    print(f"cuckoo-portal: {server_url(server)} (node {args.node})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if follower is not None:
            follower.stop()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
