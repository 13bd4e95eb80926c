"""Serving an aiohttp application on a TCP port: the RPC server, the metrics endpoint and the
p2p listener start the same way."""

from __future__ import annotations

from aiohttp import web

__all__ = ["start_app"]

AIOHTTP_SHUTDOWN_TIMEOUT_S = 60.0  # aiohttp's own default


async def start_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout_s: float = AIOHTTP_SHUTDOWN_TIMEOUT_S,
) -> tuple[web.AppRunner, int]:
    """Listen on host:port (0 picks a free port): the started runner and the bound port.

    No access log, no signal handlers (the daemon owns them). When listening fails, the runner
    is cleaned up before the error propagates."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout_s
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])
