"""The runtime's wiring is explicit: no module-level registry in `chain/` or `pallets/`, hook
order as written in `pallets/runtime.py` whatever order modules are imported in, and declarations
that agree with their documentation."""

from __future__ import annotations

import collections
import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import chain
import pallets
from chain.frame.pallet import PalletSpec
from pallets.registry import pallet as registry
from pallets.rewards import pallet as rewards
from pallets.runtime import PALLETS, WIRING
from pallets.session import pallet as session
from pallets.slashing import pallet as slashing
from pallets.voting import pallet as voting
from tests.vectors import scenario

ROOT = Path(__file__).resolve().parents[2]
MUTABLE = (list, dict, set, bytearray, collections.deque)


def _modules(*packages: ModuleType) -> list[ModuleType]:
    out = []
    for pkg in packages:
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            out.append(importlib.import_module(info.name))
    return out


def test_no_module_level_mutable_container_in_chain_or_pallets() -> None:
    """A list, dict or set at module level is a registry waiting to be filled by whoever
    imports first; constant tables are tuples or read-only mappings instead."""
    found = [
        f"{m.__name__}.{name}: {type(value).__name__}"
        for m in _modules(chain, pallets)
        for name, value in vars(m).items()
        if not name.startswith("__") and isinstance(value, MUTABLE)
    ]
    assert found == []


def test_no_module_writes_another_modules_declarations() -> None:
    """Declarations (`PalletSpec`) are filled only by their own module: every call, event and
    error a spec holds was defined in the module that owns the spec."""
    for m in _modules(pallets):
        spec = vars(m).get("SPEC")
        if not isinstance(spec, PalletSpec) or spec.name not in {p.name for p in PALLETS}:
            continue
        for c in spec.calls.values():
            assert c.fn.__module__ == m.__name__, f"{spec.name}.{c.name}"
        for cls in spec.events:
            assert cls.__module__ == m.__name__, f"{spec.name}.{cls.__name__}"
        for hook in spec.hooks.values():
            assert hook.__module__ == m.__name__, f"{spec.name} hook {hook.__name__}"
        if spec.error is not None:
            assert spec.error.__module__ == m.__name__


def test_wiring_lists_each_hook_in_its_order() -> None:
    assert WIRING.on_new_era == (slashing, rewards)
    assert WIRING.on_stake_changed == (registry,)
    assert WIRING.on_dust_bond == (voting,)
    assert WIRING.standing_votes == (voting,)
    assert WIRING.key_owners == (session,)
    assert [v.SPEC.name for v in WIRING.validate_unsigned] == ["Finality"]


IMPORT_ORDERS = {
    "runtime first": ["pallets.runtime"],
    "tasks first": ["pallets.tasks.pallet", "pallets.runtime"],
    "leaves first": [
        "pallets.voting.pallet",
        "pallets.rewards.pallet",
        "pallets.slashing.pallet",
        "pallets.registry.pallet",
        "pallets.session.pallet",
        "pallets.finality.pallet",
        "pallets.runtime",
    ],
    "reverse alphabetical": [
        f"pallets.{name}.pallet"
        for name in sorted(
            (i.name for i in pkgutil.iter_modules(pallets.__path__) if i.ispkg), reverse=True
        )
    ]
    + ["pallets.runtime"],
}

_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
from pallets.runtime import WIRING
from tests.vectors import scenario
rec = scenario.record()
print(json.dumps({
    "roots": ["0x" + r.hex() for _, _, r in rec.blocks],
    "on_new_era": [m.__name__ for m in WIRING.on_new_era],
}))
"""


@pytest.mark.parametrize("order", list(IMPORT_ORDERS), ids=list(IMPORT_ORDERS))
def test_import_order_does_not_change_state_roots(order: str) -> None:
    """Fresh processes import the pallets in different orders, then author the recorded chain:
    every block's state root is the pinned one (hook order comes from the wiring, not imports)."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *IMPORT_ORDERS[order]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout)
    pins = json.loads(scenario.PINS.read_text())
    pinned = [b["state_root"] for b in pins["recorded_chain"]["blocks"]]
    assert result["on_new_era"] == ["pallets.slashing.pallet", "pallets.rewards.pallet"]
    assert result["roots"] == pinned


def _documented_errors(doc: str, own: str) -> list[tuple[str, str]]:
    """(pallet, error) named after "Errors:" in a call's docs, up to "Emits:". "Slashing's X / Y"
    and "Slashing.X" name another pallet's errors; "as register_miner" refers to another call."""
    if "Errors:" not in doc:
        return []
    text = doc.split("Errors:", 1)[1].split("Emits:", 1)[0]
    out, pallet = [], own
    for token in re.split(r",|/|\band\b|\bor\b", text):
        words = token.strip().rstrip(".").split()
        if not words or words[0] == "as":
            continue
        if words[0].endswith("'s"):
            pallet, words = words[0][:-2], words[1:]
        name = words[0]
        if "." in name:
            other, name = name.split(".", 1)
            out.append((other, name))
        else:
            out.append((pallet, name))
    return out


def test_documented_errors_parse() -> None:
    doc = "Errors: A, B and Slashing's C / D, Tasks.E. Emits: X."
    assert _documented_errors(doc, "P") == [
        ("P", "A"),
        ("P", "B"),
        ("Slashing", "C"),
        ("Slashing", "D"),
        ("Tasks", "E"),
    ]


@pytest.mark.parametrize("spec", PALLETS, ids=[p.name for p in PALLETS])
def test_call_docs_name_only_declared_errors(spec: PalletSpec) -> None:
    """A call's docstring lists its errors ("Errors: NotBonded, ZeroAmount."): each name is an
    error of this pallet or of the pallet it names, as metadata spells it, so the docs cannot
    drift from the declarations."""
    declared = {p.name: {m.metadata_name for m in p.error or ()} for p in PALLETS}
    for c in spec.calls.values():
        for pallet, error in _documented_errors(" ".join(c.docs), spec.name):
            assert error in declared[pallet], f"{spec.name}.{c.name} documents {pallet}.{error}"
