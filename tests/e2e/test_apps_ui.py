"""Polkadot.js Apps, the web UI most Substrate users open first, against a dev node in Chromium.

The unmodified Apps build kept in `../shared/clients` (its README) is served as static files
from this process; headless Chromium (Debian's `/usr/bin/chromium`, driven by Playwright; no
browser is downloaded) opens it with `?rpc=ws://127.0.0.1:PORT` against a fresh
`cuckoo-node --dev`. The test:

1. sends a transfer as a user does: Accounts, "send" on ALICE (Apps shows the dev accounts on a
   Development chain), recipient and amount, "Make Transfer", "Sign and Submit"; then checks the
   balances over RPC (the recipient got exactly the amount; ALICE paid it and a fee);
2. opens every page of Apps' menu, and every tab of each page (both read from the DOM, so a
   page the chain enables shows up by itself), plus the block details of the transfer's block,
   and fails on any uncaught exception (`pageerror`), any error-level console message but the
   ignored ones below, and Apps' red "Uncaught error" box;
3. checks figures that Apps derives from the chain: the explorer's session number is
   `Session.CurrentIndex`, and the accounts page's "total locked" is the dev chain's only bond
   (ALICE's 1,000,000 CAI, shown as 1.0000 MCAI) through `Balances.Locks`.

Pages and tabs are reached by changing the URL's hash, as a click on the menu does; after a page
that failed, the next one is loaded afresh, so that every error is charged to the page that
raised it. Requests to hosts other than loopback are aborted (Apps asks Google Fonts for a
stylesheet): the test runs offline.

Skips, saying why, when the Apps build, Playwright or Chromium is missing.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from substrateinterface import Keypair, SubstrateInterface

from tests.integration.conftest import NodeProcess, start_node

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(480)]

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT.parent / "shared" / "clients"
CHROMIUM = Path("/usr/bin/chromium")
CAI = 10**18
ALICE = Keypair.create_from_uri("//Alice").ss58_address
DEST = Keypair.create_from_uri("//AppsUiTransfer").ss58_address  # a fresh account
AMOUNT = "12.345"  # CAI, as typed into Apps
AMOUNT_PLANCK = 12_345 * CAI // 1000
MAX_FEE = CAI // 100  # a transfer's fee is ~0.00015 CAI on the dev chain
ALICE_BOND_SHOWN = "1.0000 MCAI"  # genesis bond of ALICE (genesis/dev.json), as Apps formats it

LOAD_TIMEOUT_S = 60.0  # a load parses ~50 MB of scripts, on a busy machine
LOAD_TIMEOUT_MS = int(LOAD_TIMEOUT_S * 1000)
DWELL_S = 2.0  # after a page renders: its subscriptions answer, or fail, within this
TRANSFER_TIMEOUT_S = 60.0

# Console errors that are not crashes, with the reason each is ignored. Everything else at the
# "error" level fails the test (warnings such as "Unable to find api.derive.staking.account" are
# Apps probing for pallets this chain does not have, by design, and are not errors).
# (page, pattern of the message, why): page None matches every page.
IGNORED_CONSOLE_ERRORS: tuple[tuple[str | None, str, str], ...] = (
    (
        None,
        r"^Failed to load resource: net::ERR_FAILED$",
        "a request to a host other than loopback, aborted by this test (Apps loads a Google "
        "Fonts stylesheet and polkadot.js.org's phishing list); ignored only when the failed "
        "URL is not on loopback",
    ),
    (
        "#/utilities/xcm",
        r"^params: (initValue|findComponent): createType\(XcmVersionedXcm\):: DoNotConstruct: "
        r"Cannot construct unknown type XcmVersionedXcm$",
        "Utilities > Encode XCM builds XCM messages from the XCM types of a chain with an XCM "
        "pallet; this chain has none (nor has any Substrate chain without XCM), and the tab "
        "falls back to a raw-bytes input, which renders and works",
    ),
)
LOOPBACK = ("127.0.0.1", "localhost")


@dataclass
class Problem:
    page: str
    kind: str  # pageerror, console, red box
    text: str


@dataclass
class Watch:
    """What the browser reported since the last `take()`."""

    problems: list[Problem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    page: str = ""

    def on_pageerror(self, error: Any) -> None:
        self.problems.append(Problem(self.page, "pageerror", str(error)[:2000]))

    def on_console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        for page, pattern, _reason in IGNORED_CONSOLE_ERRORS:
            if page not in (None, self.page) or not re.search(pattern, msg.text):
                continue
            if (
                pattern.startswith("^Failed to load resource")
                and urlparse(url).hostname in LOOPBACK
            ):
                continue
            self.ignored.append(f"{self.page}: {msg.text} ({url})")
            return
        self.problems.append(Problem(self.page, "console", msg.text[:2000]))

    def take(self) -> list[Problem]:
        out, self.problems = self.problems, []
        return out


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def apps_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tarballs = sorted(CLIENTS.glob("polkadot-js-apps-*-build.tar.gz"))
    if not tarballs:
        pytest.skip(f"no Polkadot.js Apps build in {CLIENTS} (see its README)")
    out = tmp_path_factory.mktemp("apps")
    with tarfile.open(tarballs[-1]) as tar:
        tar.extractall(out, filter="data")
    build = out / "build"
    assert (build / "index.html").exists(), f"{tarballs[-1]} has no build/index.html"
    return build


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def apps_url(apps_build: Path) -> Iterator[str]:
    """The Apps build served over HTTP on loopback, from a thread of this process."""
    handler = functools.partial(_QuietHandler, directory=str(apps_build))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="apps-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    proc = start_node(tmp_path_factory.mktemp("apps-node") / "node.log", prometheus=False)
    try:
        proc.wait_for_block(2)
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is in the [test] extras"
    )
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM} (Debian: apt-get install -y chromium; none is downloaded)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def _offline(route: Any) -> None:
    if urlparse(route.request.url).hostname in LOOPBACK:
        route.continue_()
    else:
        route.abort()


@dataclass
class Apps:
    page: Any
    watch: Watch
    base: str  # the Apps URL with ?rpc=

    def open(self, route: str) -> None:
        """Load Apps afresh on `route` and wait until the page is rendered and settled."""
        self.watch.page = route
        self.page.goto("about:blank")
        self.page.goto(self.base + route)
        tabs = self.page.locator(".ui--Tabs")
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while not tabs.count() or not tabs.first.is_visible():
            if any(p.kind == "pageerror" for p in self.watch.problems):
                return  # it crashed before rendering: reported by check()
            if time.monotonic() > deadline:
                self.watch.problems.append(Problem(route, "no page", "not rendered"))
                return
            time.sleep(0.2)
        time.sleep(DWELL_S)

    def switch(self, route: str) -> None:
        """Go to another page or tab of the loaded app (a hash change, as a click on the menu
        or the tab)."""
        self.watch.page = route
        self.page.evaluate("(hash) => { window.location.hash = hash; }", route)
        time.sleep(DWELL_S)

    def visit(self, route: str, *, is_fresh: bool) -> list[Problem]:
        """Open `route` (afresh when `is_fresh`, else by its hash) and report its problems."""
        if is_fresh:
            self.open(route)
        else:
            self.switch(route)
        return self.check()

    def check(self) -> list[Problem]:
        problems = self.watch.take()
        if self.page.get_by_text("Uncaught error").count():
            problems.append(Problem(self.watch.page, "red box", self._red_box_text()))
        return problems

    def _red_box_text(self) -> str:
        with contextlib.suppress(Exception):
            return str(self.page.locator(".ui--ErrorBoundary, .error").first.inner_text())[:500]
        return "Uncaught error"

    def menu(self) -> list[str]:
        """The pages of Apps' menu, as its top bar lists them (dropdown entries included)."""
        hrefs = self.page.eval_on_selector_all(
            ".menuItems .ui--MenuItem a[href^='#/']",
            "els => els.map((e) => e.getAttribute('href'))",
        )
        return list(dict.fromkeys(hrefs))

    def tabs(self) -> list[str]:
        hrefs = self.page.eval_on_selector_all(
            ".ui--Tabs a[href^='#/']", "els => els.map((e) => e.getAttribute('href'))"
        )
        return list(dict.fromkeys(hrefs))


@pytest.fixture(scope="module")
def apps(browser: Any, apps_url: str, node: NodeProcess) -> Iterator[Apps]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.route("**/*", _offline)
    page = context.new_page()
    watch = Watch()
    page.on("pageerror", watch.on_pageerror)
    page.on("console", watch.on_console)
    try:
        yield Apps(page, watch, f"{apps_url}?rpc={node.ws_url}")
    finally:
        context.close()


def _free(si: SubstrateInterface, who: str) -> int:
    return int(si.query("System", "Account", [who]).value["data"]["free"])


def _transfer_block(si: SubstrateInterface, since: int) -> str:
    """The hash of the block, from `since` on, holding a Balances transfer."""
    best = si.get_block_number(si.get_chain_head())
    for number in range(since, best + 1):
        block = si.get_block(block_number=number)
        for ext in block["extrinsics"]:
            if ext.value["call"]["call_module"] == "Balances":
                return str(block["header"]["hash"])
    raise AssertionError(f"no Balances call in blocks {since}..{best}")


def _assert_session_shown(apps: Apps, si: SubstrateInterface) -> None:
    """The explorer's session card shows Session.CurrentIndex (the UI follows the chain by a
    subscription, so a session that just started may take a moment to show)."""
    card = apps.page.get_by_test_id("card-summary:session")
    deadline = time.monotonic() + 10.0
    while True:
        chain = si.query("Session", "CurrentIndex").value
        shown = re.search(r"#\s*([\d,]+)", card.inner_text())
        if shown and int(shown.group(1).replace(",", "")) == chain:
            return
        assert time.monotonic() < deadline, f"session shown {card.inner_text()!r}, chain {chain}"
        time.sleep(0.5)


def _report(problems: list[Problem]) -> str:
    return "\n".join(f"{p.page} [{p.kind}]: {p.text}" for p in problems)


# ---- the test ---------------------------------------------------------------------------------


def test_every_apps_page_loads_and_a_transfer_goes_through(apps: Apps, node: NodeProcess) -> None:
    started = time.monotonic()
    si = SubstrateInterface(url=node.ws_url)
    try:
        # 1. a transfer through the UI, checked over RPC
        alice_before, dest_before = _free(si, ALICE), _free(si, DEST)
        first_block = node.best_number()
        apps.open("#/accounts")
        apps.page.get_by_text("ALICE_STASH").wait_for(timeout=LOAD_TIMEOUT_MS)
        locked = apps.page.get_by_test_id("card-summary:total locked")
        assert ALICE_BOND_SHOWN in locked.inner_text(), locked.inner_text()
        alice_row = (
            apps.page.locator("tr")
            .filter(has=apps.page.get_by_test_id("account-name").get_by_text("ALICE", exact=True))
            .first
        )
        alice_row.get_by_role("button", name="send").click()
        modal = apps.page.get_by_test_id("modal").filter(has_text="send funds")
        modal.get_by_role("button", name="Make Transfer").wait_for()
        inputs = modal.locator("input")
        inputs.nth(1).fill(DEST)  # "send to address": a typed address
        inputs.nth(1).press("Enter")
        inputs.nth(2).fill(AMOUNT)
        modal.get_by_role("button", name="Make Transfer").click()
        apps.page.get_by_role("button", name="Sign and Submit").click()
        deadline = time.monotonic() + TRANSFER_TIMEOUT_S
        while _free(si, DEST) == dest_before:
            assert time.monotonic() < deadline, "the transfer sent from Apps did not arrive"
            node.assert_running()
            time.sleep(0.5)
        assert _free(si, DEST) - dest_before == AMOUNT_PLANCK
        paid = alice_before - _free(si, ALICE)
        assert AMOUNT_PLANCK < paid <= AMOUNT_PLANCK + MAX_FEE, paid
        problems = apps.check()
        block_route = f"#/explorer/query/{_transfer_block(si, first_block)}"

        transfer_s = time.monotonic() - started

        # 2. every page of the menu and every tab, and the transfer's block
        apps.open("#/explorer")
        menu = apps.menu()
        assert {"#/explorer", "#/accounts", "#/calendar", "#/chainstate"} <= set(menu), menu
        problems += apps.check()
        visited: list[str] = []
        found: list[Problem] = []
        for route in [*menu, block_route]:
            # by hash, as a user clicks, unless the previous page failed: then afresh, so that
            # every error is charged to the page that raised it
            found = apps.visit(route, is_fresh=bool(found) or route == block_route)
            visited.append(route)
            problems += found
            if route == "#/explorer" and not found:
                _assert_session_shown(apps, si)
            for tab in apps.tabs():
                if tab not in visited and tab not in menu:
                    found = apps.visit(tab, is_fresh=bool(found))
                    visited.append(tab)
                    problems += found
        node.assert_running()
    finally:
        si.close()
    elapsed = time.monotonic() - started
    print(
        f"\nApps: transfer in {transfer_s:.0f} s, then {len(visited)} pages and tabs in "
        f"{elapsed - transfer_s:.0f} s: {' '.join(visited)}"
    )
    for line in apps.watch.ignored:
        print(f"ignored: {line}")
    assert not problems, f"{len(problems)} problem(s) in Apps:\n{_report(problems)}"


def test_ignored_console_errors_match_only_what_they_name() -> None:
    """An aborted off-loopback request, and the XCM types on the XCM tab only, are ignored;
    a crash, a failed loopback load and the XCM message elsewhere are not."""

    @dataclass
    class Msg:
        type: str
        text: str
        location: dict[str, Any]

    failed = "Failed to load resource: net::ERR_FAILED"
    xcm = (
        "params: initValue: createType(XcmVersionedXcm):: DoNotConstruct: "
        "Cannot construct unknown type XcmVersionedXcm"
    )
    watch = Watch(page="#/explorer")
    watch.on_console(Msg("error", failed, {"url": "https://fonts.googleapis.com/css"}))
    watch.on_console(Msg("error", failed, {"url": "http://127.0.0.1:1/x.js"}))
    watch.on_console(Msg("error", "Error: useCall(...):: TypeError", {"url": "https://x.org/a"}))
    watch.on_console(Msg("error", xcm, {}))
    watch.on_console(Msg("warning", "Unable to find api.derive.staking.account", {}))
    watch.page = "#/utilities/xcm"
    watch.on_console(Msg("error", xcm, {}))
    assert [p.text for p in watch.take()] == [failed, "Error: useCall(...):: TypeError", xcm]
    assert len(watch.ignored) == 2
