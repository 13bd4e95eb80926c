"""Runtime API declarations (FRAME's `decl_runtime_apis!`): each method's SCALE inputs and
output, declared once. `state_call` decodes a call's input and encodes its output with these
types, and metadata V15 describes the same types, so what clients read matches what they get."""

from __future__ import annotations

import dataclasses

from chain.frame.types import ScaleType


@dataclasses.dataclass(frozen=True, slots=True)
class ApiMethod:
    """One method of a runtime API: its SCALE inputs (name, type) and output, as metadata V15
    describes them and as `state_call` decodes and encodes them."""

    name: str
    inputs: tuple[tuple[str, ScaleType], ...]
    output: ScaleType
    docs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeApi:
    """A runtime API (FRAME's `decl_runtime_apis!` trait) at the version the runtime serves."""

    name: str
    version: int
    methods: tuple[ApiMethod, ...]
    docs: tuple[str, ...] = ()

    def method(self, name: str) -> ApiMethod | None:
        return next((m for m in self.methods if m.name == name), None)
