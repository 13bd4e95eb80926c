"""The coordinator's prices: what a task pays its miner, per model and image size.

`--price CAI` is the price of every task; `--prices-file FILE` (JSON) sets prices per model and
per model and size, in CAI (strings or numbers, read as decimals: never floats):

    {"default": "0.1",
     "models": {"tiny": "0.02",
                "sd-turbo": {"default": "0.5", "1024x1024": "2"}}}

A task's price is its model's entry for its size, else its model's default, else the default
(the file's, else `--price`). The chain counts planck (10^-18 CAI): every committed task carries
its price (at least the chain's Tasks.MinTaskPrice), escrowed from the coordinator's operator
until the task settles (docs/coordinator.md). Apps read the list at `GET /v1/prices`.
"""

from __future__ import annotations

import dataclasses
import decimal
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chainclient.amounts import format_cai, parse_cai
from coordinator import CoordinatorError

SIZE_RE = re.compile(r"[1-9][0-9]{0,3}x[1-9][0-9]{0,3}")


class PriceError(CoordinatorError):
    """A price list that cannot be used (malformed, or under the chain's minimum)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PriceList:
    """Prices in planck: `default`, per model, per (model, "WxH")."""

    default: int
    models: Mapping[str, int] = dataclasses.field(default_factory=dict)
    sizes: Mapping[tuple[str, str], int] = dataclasses.field(default_factory=dict)

    def price_of(self, model: str, width: int, height: int) -> int:
        found = self.sizes.get((model, f"{width}x{height}"))
        if found is not None:
            return found
        return self.models.get(model, self.default)

    def spec_price(self, spec: Mapping[str, Any]) -> int:
        """The price of a task spec (its model and size)."""
        return self.price_of(str(spec["model"]), int(spec["width"]), int(spec["height"]))

    def lowest(self, models: Sequence[str]) -> tuple[int, str]:
        """The lowest price a task of `models` can have, and where it is set."""
        found = [(self.models.get(m, self.default), f"model {m}") for m in models]
        found += [(p, f"model {m} size {s}") for (m, s), p in self.sizes.items() if m in models]
        return min(found)

    def entries(self, models: Sequence[str]) -> list[dict[str, Any]]:
        """The list apps see: each served model's price (any size), then its sizes' prices."""
        out = []
        for m in models:
            out.append(_entry(m, None, self.models.get(m, self.default)))
            for (model, size), price in sorted(self.sizes.items()):
                if model == m:
                    out.append(_entry(m, size, price))
        return out


def _entry(model: str, size: str | None, price: int) -> dict[str, Any]:
    return {"model": model, "size": size, "price": str(price), "price_cai": format_cai(price)}


def _amount(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | decimal.Decimal):
        raise PriceError(f"{where}: a price must be a number of CAI (or a string of one)")
    try:
        return parse_cai(value)
    except ValueError as exc:
        raise PriceError(f"{where}: {exc}") from exc


def parse_prices(obj: object, default: int) -> PriceList:
    """A price list from the JSON of a prices file (see the module docstring); `default` (from
    --price) where the file sets none."""
    if not isinstance(obj, dict):
        raise PriceError("the prices file must hold a JSON object")
    unknown = sorted(set(obj) - {"default", "models"})
    if unknown:
        raise PriceError(f"unknown key {unknown[0]!r} in the prices file (default, models)")
    if "default" in obj:
        default = _amount(obj["default"], "default")
    models: dict[str, int] = {}
    sizes: dict[tuple[str, str], int] = {}
    table = obj.get("models", {})
    if not isinstance(table, dict):
        raise PriceError("'models' must map model names to prices")
    for model, entry in table.items():
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key == "default":
                    models[model] = _amount(value, f"models.{model}.default")
                elif SIZE_RE.fullmatch(key):
                    sizes[(model, key)] = _amount(value, f"models.{model}.{key}")
                else:
                    raise PriceError(
                        f"models.{model}: {key!r} is neither 'default' nor a size 'WIDTHxHEIGHT'"
                    )
        else:
            models[model] = _amount(entry, f"models.{model}")
    return PriceList(default, models, sizes)


def load_prices(path: Path, default: int) -> PriceList:
    """`parse_prices` of the file at `path`."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PriceError(f"cannot read prices file {path}: {exc.strerror}") from exc
    try:
        obj = json.loads(text, parse_float=decimal.Decimal)
    except ValueError as exc:
        raise PriceError(f"prices file {path} is not JSON: {exc}") from exc
    return parse_prices(obj, default)


def validate_prices(prices: PriceList, models: Sequence[str], min_task_price: int) -> None:
    """PriceError when a task of `models` could be priced under the chain's MinTaskPrice."""
    lowest, where = prices.lowest(models)
    if lowest < min_task_price:
        raise PriceError(
            f"the price of {where} is {format_cai(lowest)} CAI, under the chain's minimum "
            f"task price (Tasks.MinTaskPrice) of {format_cai(min_task_price)} CAI: the chain "
            "would refuse its tasks; raise --price or the prices file's entry"
        )
