"""Declared weights follow measured cost (docs/weights.md).

bench/weights.py benchmarks every call of the runtime and writes the measured points to
bench/data/weights.json and the weight functions to pallets/weights.py. These tests check, from
the data file alone (no benchmark runs here):

- every call of the runtime has a benchmark entry, measured at the sizes its benchmark names;
- each measured call, decoded from the bytes that were measured, declares (through its pallet's
  `@call(weight=...)`, `DecodedCall.weight`) between half and twice the measured apply time;
- pallets/weights.py is exactly what the data file implies (a hand edit, or a data file changed
  without regenerating the module, fails).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.weights import BENCHES, decode_call, fits, render, runtime_order
from chain import ChainError
from chain.frame.common import Weight
from chain.frame.outer import DecodedCall
from chain.frame.pallet import CallDef, PalletSpec
from pallets import weights
from pallets.runtime import build_runtime
from tests.pallets.mock import mock_config

ROOT = Path(__file__).resolve().parents[2]
DATA = json.loads((ROOT / "bench" / "data" / "weights.json").read_text())
RUNTIME = build_runtime(mock_config())
POINTS = [(entry, point) for entry in DATA["calls"] for point in entry["points"]]


def test_every_call_of_the_runtime_has_a_benchmark_entry() -> None:
    calls = [f"{pallet}.{call}" for pallet, call in runtime_order()]
    entries = [entry["call"] for entry in DATA["calls"]]
    missing = sorted(set(calls) - set(entries))
    assert not missing, f"calls without a benchmark entry (run python bench/weights.py): {missing}"
    assert entries == calls, "entries for calls the runtime does not have, or out of order"


def test_every_entry_is_measured_at_its_benchmarks_sizes() -> None:
    """At 1 (or the smallest size) and at the largest batch the benchmark names: a benchmark
    changed without a re-run fails."""
    sizes = {b.name: (b.component, list(b.sizes)) for b in BENCHES}
    for entry in DATA["calls"]:
        measured = (entry["component"], [p["n"] for p in entry["points"]])
        assert measured == sizes[entry["call"]], entry["call"]


@pytest.mark.parametrize(
    ("entry", "point"), POINTS, ids=[f"{e['call']}[n={p['n']}]" for e, p in POINTS]
)
def test_declared_weight_is_within_half_and_twice_the_measured_apply_time(
    entry: dict[str, Any], point: dict[str, Any]
) -> None:
    call = RUNTIME.decode_call(decode_call(point["call"]))
    assert call.name == entry["call"]
    declared, measured = call.weight.ref_time, point["ref_time"]
    print(f"{entry['call']} n={point['n']}: declared {declared:_}, measured {measured:_}")
    assert measured <= 2 * declared, f"declared {declared:_} < half of measured {measured:_}"
    assert declared <= 2 * measured, f"declared {declared:_} > twice measured {measured:_}"


def test_generated_module_is_what_the_data_file_implies() -> None:
    expected = render(DATA)
    actual = (ROOT / "pallets" / "weights.py").read_text()
    assert actual == expected, "pallets/weights.py differs from bench/data/weights.json"


def test_generated_functions_are_the_fitted_lines() -> None:
    fitted = fits(DATA)
    for entry in DATA["calls"]:
        f = fitted[entry["call"]]
        fn = getattr(weights, entry["function"])
        if entry["component"] is None:
            assert fn() == Weight(f.ref_base, f.proof_base)
        else:
            assert fn(10) == Weight(f.ref_base + 10 * f.ref_per, f.proof_base + 10 * f.proof_per)


# ---- the framework: a weight may be a function of the arguments ----------------------------------


def _call(weight: Any) -> CallDef:
    return CallDef(PalletSpec("Demo", 99), 0, "demo", lambda ctx: None, [], weight, ())


def test_weight_function_of_the_arguments_is_evaluated_per_call() -> None:
    per_item = _call(lambda a: Weight(10 + 3 * len(a["items"]), 1))
    assert DecodedCall(per_item, {"items": [1, 2]}).weight == Weight(16, 1)
    assert DecodedCall(per_item, {"items": []}).weight == Weight(10, 1)
    assert DecodedCall(_call(Weight(7, 2)), {}).weight == Weight(7, 2)


def test_wrapper_weight_adds_the_nested_calls_weight_for_its_arguments() -> None:
    inner = DecodedCall(_call(lambda a: Weight(len(a["items"]), 0)), {"items": [0] * 5})
    outer = DecodedCall(_call(Weight(100, 1)), {"call": inner})
    assert outer.weight == Weight(105, 1)


@pytest.mark.parametrize("bad", [Weight(1.5, 0), Weight(-1, 0), Weight(True, 0), 7])  # type: ignore[arg-type]
def test_weight_function_must_return_an_integral_weight(bad: Any) -> None:
    with pytest.raises(ChainError, match="not integral"):
        _ = DecodedCall(_call(lambda a: bad), {}).weight
