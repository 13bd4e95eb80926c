"""The staking portal (`portal/`, served by `cuckoo-portal`) in headless Chromium on a dev node.

A fresh account, held by a test wallet that implements the injected-accounts interface of the
Polkadot.js extension (`portal/test/wallet.js`, added to the page before it loads, as an
extension's content script is), walks the portal's journey through its controls:

1. takes a faucet drip; a second drip at once is refused with the chain's named error
   (`Faucet.RateLimited`);
2. bonds; votes for a registered miner from the miners table;
3. tries to register as a miner with its own address as the operator: the page warns, and the
   chain refuses with `Registry.OperatorIsStaker`, shown in words; then registers with a distinct
   operator, sets its commission and updates its introduction;
4. unbonds part of its stake and sees the unlocking chunk with the era it unlocks in.

After each step the chain is read independently (substrate-interface): balances, ledger, votes,
registration. The miners table's own stake, votes and weight, and a task page (a task committed
by a coordinator to the miner, which expires unanswered and is refunded), are compared with the
chain's storage and events; the task page's event trail comes from the indexer that
`cuckoo-portal` (run as a process, as users run it) keeps of finalized blocks. Every page is
saved as a screenshot at desktop and phone sizes in `build/portal-screenshots/` (printed at the
end), after checking that each of its controls has an accessible name.

Requests to hosts other than loopback are aborted: the test runs offline. Skips, saying why,
without Chromium, Playwright, or Node.js/npm to build the bundle.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from substrateinterface import Keypair

from tests.integration.conftest import NodeProcess, free_ports, spawn_logged, start_node
from tests.miner.chainkit import CAI, Actor, ChainKit

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "build" / "portal-screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TX_TIMEOUT_MS = 60_000
LOAD_TIMEOUT_MS = 60_000
LOOPBACK = ("127.0.0.1", "localhost")
PAGES = ("overview", "faucet", "stake", "miners", "coordinators", "register", "tasks", "account")


def cai(planck: int) -> str:
    """A balance as the portal shows it: thousands separators, up to 4 decimals, the symbol."""
    whole, frac = divmod(planck, CAI)
    digits = f"{frac:018d}"[:4].rstrip("0")
    return f"{whole:,}{'.' + digits if digits else ''} CAI"


@pytest.fixture(scope="module")
def browser_parts() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright (the Python package) is not installed")
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed to build the portal's bundle")
    from portal_server.build import BuildError, build

    try:
        build(quiet=True)
    except BuildError as exc:
        pytest.skip(f"the portal could not be built: {exc}")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    proc = start_node(tmp_path_factory.mktemp("portal-node") / "node.log")
    try:
        yield proc
    finally:
        proc.stop()


def _offline(route: Any) -> None:
    if urlparse(route.request.url).hostname in LOOPBACK:
        route.continue_()
    else:
        route.abort()


class Portal:
    """One browser page on the portal, with the test wallet holding `seeds`."""

    def __init__(self, browser: Any, url: str, seeds: list[dict[str, str]]) -> None:
        self.url = url
        self.errors: list[str] = []
        self.context = browser.new_context(viewport=DESKTOP)
        self.context.route("**/*", _offline)
        wallet = (ROOT / "portal" / "dist-test" / "test-wallet.js").read_text()
        seeds_js = repr(seeds).replace("'", '"')
        self.context.add_init_script(f"window.__testWalletSeeds = {seeds_js};\n{wallet}")
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.goto(url + "#/overview")
        self.page.wait_for_function("window.__portalReady === true", timeout=LOAD_TIMEOUT_MS)

    def open(self, name: str) -> Any:
        page = self.page
        page.evaluate("document.querySelector('#main').setAttribute('aria-busy', 'true')")
        # the same page again: a hashchange event re-renders it, as the portal's links do
        page.evaluate(
            """h => location.hash === h
            ? window.dispatchEvent(new HashChangeEvent('hashchange'))
            : (location.hash = h)""",
            f"#/{name}",
        )
        key = name.split("/")[0]
        page.wait_for_selector(f"main[aria-busy=false][data-page='{key}']", timeout=LOAD_TIMEOUT_MS)
        return page

    def select(self, address: str) -> None:
        self.page.select_option("#account", address)
        self.page.wait_for_selector("main[aria-busy=false]", timeout=LOAD_TIMEOUT_MS)

    def tx(self, click: Any) -> str:
        """Click a control that sends a transaction; wait for in block or an error; its text."""
        page = self.page
        page.evaluate("document.querySelector('#tx').innerHTML = ''")
        click()
        page.wait_for_selector("#tx [data-state], #tx [data-error]", timeout=TX_TIMEOUT_MS)
        text: str = page.inner_text("#tx")
        # the page re-reads the chain after the block: wait until that render is done
        page.wait_for_timeout(300)
        page.wait_for_selector("main[aria-busy=false]", timeout=LOAD_TIMEOUT_MS)
        return text

    def unnamed_controls(self) -> list[str]:
        """Buttons, links, inputs and selects on the page without an accessible name."""
        found: list[str] = self.page.evaluate(
            """() => [...document.querySelectorAll('button, a[href], input, select, textarea')]
            .filter((el) => {
              const aria = (el.getAttribute('aria-label') || '').trim();
              if (aria) return false;
              if (el.matches('input, select, textarea')) {
                return !(el.labels && [...el.labels].some((l) => l.textContent.trim()));
              }
              return !el.textContent.trim();
            })
            .map((el) => el.outerHTML.slice(0, 120))"""
        )
        return found

    def shoot(self, name: str) -> None:
        assert not self.unnamed_controls(), (name, self.unnamed_controls())
        SHOTS.mkdir(parents=True, exist_ok=True)
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            self.page.set_viewport_size(size)
            self.page.wait_for_timeout(150)
            self.page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
        self.page.set_viewport_size(DESKTOP)


@contextlib.contextmanager
def portal_command(ws_url: str, log: Path) -> Iterator[str]:
    """`cuckoo-portal --node WS` as a process (its indexer included); yields its URL."""
    (port,) = free_ports(1)
    exe = Path(sys.executable).with_name("cuckoo-portal")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "portal_server.cli"]
    cmd += ["--node", ws_url, "--port", str(port), "--no-build"]
    proc = spawn_logged(cmd, log)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "config.json", timeout=2) as resp:
                    assert json.loads(resp.read())["node"] == ws_url
                    break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def history_status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "api/history/status", timeout=5) as resp:
        status: dict[str, Any] = json.loads(resp.read())
    return status


def _setup_chain(kit: ChainKit) -> tuple[Actor, Actor]:
    """//Bob a miner, //Alice a coordinator (distinct operators)."""
    bob = Actor(
        Keypair.create_from_uri("//Bob"), Keypair.create_from_uri("//Bob//portal-op"), "bob-miner"
    )
    alice = Actor(
        Keypair.create_from_uri("//Alice"),
        Keypair.create_from_uri("//Alice//portal-op"),
        "alice-coordinator",
    )
    alice_steps = [
        (alice.staker, "Staking", "bond_extra", {"max_additional": 1_100_000 * CAI}),
        *ChainKit.coordinator_steps(alice, 0, "http://127.0.0.1:9")[1:],
    ]
    kit.run_parallel([ChainKit.miner_steps(bob, 25_000 * CAI), alice_steps])
    return bob, alice


def test_portal_journey(
    browser_parts: Any, node: NodeProcess, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    kit = ChainKit(node.ws_url)
    stack = contextlib.ExitStack()
    url = stack.enter_context(portal_command(node.ws_url, tmp_path / "portal.log"))
    user = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
    operator = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
    portal: Portal | None = None
    try:
        bob, alice = _setup_chain(kit)
        portal = Portal(browser_parts, url, [{"name": "Portal user", "uri": user.mnemonic}])
        page = portal.page
        # the wallet's account is listed (first) and selected; the dev accounts follow
        assert page.eval_on_selector("#account", "s => s.value") == user.ss58_address
        portal.shoot("overview")

        # 1. faucet drip, then a refused second drip
        portal.open("faucet")
        drip = page.get_by_role("button", name=re.compile(r"^Request"))
        state = portal.tx(drip.click)
        assert "in block" in state or "finalized" in state, state
        free = kit.q("System", "Account", user.ss58_address)["data"]["free"]
        assert free == 100_000 * CAI  # the drip pays no fee
        portal.shoot("faucet")
        refused = portal.tx(page.get_by_role("button", name=re.compile(r"^Request")).click)
        assert "Faucet.RateLimited" in refused, refused
        assert "dripped less than DripPeriod blocks ago" in refused, refused

        # 2. bond, vote for //Bob's miner from the miners table
        portal.open("stake")
        page.get_by_label("Bond (CAI)", exact=True).fill("50000")
        state = portal.tx(page.get_by_role("button", name="Bond", exact=True).click)
        assert "in block" in state or "finalized" in state, state
        ledger = kit.q("Staking", "Ledger", user.ss58_address)
        assert ledger["active"] == 50_000 * CAI
        portal.open("miners")
        page.get_by_label(re.compile("Amount to vote")).fill("10000")
        state = portal.tx(page.get_by_role("button", name="Vote for bob-miner").click)
        assert "in block" in state or "finalized" in state, state
        assert kit.q("Voting", "Votes", user.ss58_address, bob.staker.ss58_address) == 10_000 * CAI
        portal.open("miners")
        row = page.locator(f"tr[data-who='{bob.staker.ss58_address}']")
        assert cai(10_000 * CAI) in row.locator("[data-col=mine]").inner_text()

        # 3. register: own address as operator is warned about and refused by the chain
        portal.open("register")
        page.get_by_label(re.compile("^Operator address")).fill(user.ss58_address)
        assert "separate (hot) key" in page.inner_text("#op-warn")
        page.get_by_label("Name", exact=True).fill("portal-miner")
        page.get_by_label("Introduction").fill("A miner registered through the portal.")
        refused = portal.tx(page.get_by_role("button", name="Register").click)
        assert "Registry.OperatorIsStaker" in refused, refused
        assert "different (hot) key" in refused, refused
        page.get_by_label(re.compile("^Operator address")).fill(operator.ss58_address)
        assert page.inner_text("#op-warn").strip() == ""
        state = portal.tx(page.get_by_role("button", name="Register").click)
        assert "in block" in state or "finalized" in state, state
        reg = kit.q("Registry", "Miners", user.ss58_address)
        assert reg is not None
        assert reg["operator"] == operator.ss58_address
        portal.open("register")
        assert operator.ss58_address in page.inner_text("[data-k=operator]")
        page.get_by_label("Commission (%)").fill("12.5")
        state = portal.tx(page.get_by_role("button", name="Set commission").click)
        assert "in block" in state or "finalized" in state, state
        assert kit.q("Registry", "Miners", user.ss58_address)["commission"] == 125_000_000
        portal.open("register")
        page.get_by_label("Introduction").fill("Now with a better introduction.")
        state = portal.tx(page.get_by_role("button", name="Update info").click)
        assert "in block" in state or "finalized" in state, state
        info = kit.q("Registry", "Miners", user.ss58_address)["info"]
        assert info["description"] in (
            "Now with a better introduction.",
            "0x" + b"Now with a better introduction.".hex(),
        )
        portal.shoot("register")

        # a task for //Bob's miner, due soon: it expires unanswered (Missed) and is refunded;
        # committed here so that it is still in state (RetentionBlocks) when its page is read
        task_id = os.urandom(32)
        kit.commit_tasks(alice.operator, [(task_id, os.urandom(32), bob.staker, kit.best() + 6)])

        # 4. unbond and see the unlocking chunk
        portal.open("stake")
        page.get_by_label("Unbond (CAI)", exact=True).fill("5000")
        state = portal.tx(page.get_by_role("button", name="Unbond", exact=True).click)
        assert "in block" in state or "finalized" in state, state
        ledger = kit.q("Staking", "Ledger", user.ss58_address)
        chunks = ledger["unlocking"]
        assert [c["value"] for c in chunks] == [5_000 * CAI]
        portal.open("stake")
        shown = page.locator("tr[data-chunk]")
        assert shown.count() == 1
        assert cai(5_000 * CAI) in shown.first.inner_text()
        assert shown.first.locator("[data-era]").inner_text() == str(chunks[0]["era"])
        portal.shoot("stake")

        # the miners table agrees with Registry.Miners read independently
        portal.open("miners")
        miners = {
            str(k.value): v.value
            for k, v in kit.si.query_map("Registry", "Miners", max_results=100)
        }
        assert set(miners) == {bob.staker.ss58_address, user.ss58_address}
        active_weight = sum(
            m["own_stake"] + m["votes"] for m in miners.values() if m["status"] == "Active"
        )
        for who, m in miners.items():
            row = page.locator(f"tr[data-who='{who}']")
            assert row.locator("[data-col=own]").inner_text() == cai(m["own_stake"])
            assert row.locator("[data-col=votes]").inner_text() == cai(m["votes"])
            chance = 100 * (m["own_stake"] + m["votes"]) / active_weight
            assert row.locator("[data-col=chance]").inner_text() == f"{chance:.2f}%"
        stats = kit.q("Tasks", "MinerStats", bob.staker.ss58_address)
        row = page.locator(f"tr[data-who='{bob.staker.ss58_address}']")
        assert row.locator("[data-col=assigned]").inner_text() == str(stats["assigned"])
        headers = page.locator("table[aria-label=Miners] thead th").count()
        assert row.locator("td").count() == headers  # every column has its header
        portal.shoot("miners")
        portal.open("coordinators")
        assert "alice-coordinator" in page.inner_text("main")
        portal.shoot("coordinators")

        # a task page agrees with Tasks.Tasks and the TaskPaid event of its settlement
        tid = "0x" + task_id.hex()

        def settled() -> dict[str, Any] | None:
            task = kit.task(task_id)
            return task if task and task.get("settled_at") is not None else None

        deadline = time.monotonic() + 60
        while (task := settled()) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert task is not None, kit.task(task_id)
        portal.open("tasks")
        assert page.locator(f"tr[data-task='{tid}']").count() == 1
        portal.shoot("tasks")
        portal.open(f"task/{tid}")
        assert page.inner_text("[data-k=status]") == task["status"]
        assert page.inner_text("[data-k=outcome]") == task["outcome"]
        assert page.inner_text("[data-k=miner]") == bob.staker.ss58_address
        assert page.inner_text("[data-k=committed]") == str(task["committed_at"])
        assert page.inner_text("[data-k=settled]") == str(task["settled_at"])
        assert page.inner_text("[data-k=price]") == cai(task["price"])
        paid = [
            attrs
            for _, name, attrs in kit.events(task["settled_at"], task["settled_at"])
            if name == "Tasks.TaskPaid"
        ]
        assert len(paid) == 1
        assert f"refunded {cai(paid[0]['refunded'])}" in page.inner_text("[data-k=paid]")
        # the indexer's trail of the task: committed, paid (refunded), settled
        deadline = time.monotonic() + 60
        while history_status(url)["indexed_to"] < task["settled_at"]:
            assert time.monotonic() < deadline, history_status(url)
            time.sleep(0.5)
        portal.open(f"task/{tid}")
        trail = page.locator("table[aria-label='Task events'] tbody tr")
        names = [trail.nth(i).get_attribute("data-event") for i in range(trail.count())]
        assert names == ["Tasks.TaskCommitted", "Tasks.TaskPaid", "Tasks.TaskSettled"], names
        portal.shoot("task")
        portal.open(f"miner/{bob.staker.ss58_address}")
        assert page.locator(f"tr[data-task='{tid}']").count() == 1
        portal.shoot("miner")
        portal.open("account")
        assert page.inner_text("[data-k=bonded]") == cai(ledger["total"])
        portal.shoot("account")
        portal.open("overview")
        portal.shoot("overview")
        assert not portal.errors, portal.errors
    finally:
        if portal is not None:
            with contextlib.suppress(Exception):
                portal.context.close()
        stack.close()
        kit.close()
    with capsys.disabled():  # shown whatever the capture mode
        print(f"\nportal screenshots (desktop and phone): {SHOTS}")
