"""App request validation: OpenAI images API fields plus our extensions, to task specs."""

from __future__ import annotations

import decimal
import re
import secrets
from collections.abc import Sequence
from typing import Any

from chain.taskproto import MAX_PROMPT_BYTES, MAX_SIDE, MAX_STEPS, SpecError, validate_spec
from coordinator import CoordinatorError

MAX_N = 4
MAX_SEED = 2**63 - 1 - (MAX_N - 1)  # image i of a request uses seed + i
DEFAULT_SIZE = "512x512"
DEFAULT_STEPS = 4
MAX_GUIDANCE = decimal.Decimal(50)
SIZE_RE = re.compile(r"(\d{1,4})x(\d{1,4})")
GENERATION_FIELDS = {
    "prompt",
    "n",
    "size",
    "response_format",
    "seed",
    "steps",
    "model",
    "negative_prompt",
    "guidance_scale",
    "user",
}


class InvalidRequest(CoordinatorError):
    """A 400 in OpenAI's error shape."""

    def __init__(self, message: str, param: str | None, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def _int(body: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = body.get(name, default)
    if type(value) is not int:
        raise InvalidRequest(f"'{name}' must be an integer", name, "invalid_type")
    if not lo <= value <= hi:
        raise InvalidRequest(f"'{name}' must be between {lo} and {hi}", name)
    return value


def _str(body: dict[str, Any], name: str, default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", name, "invalid_type")
    return value


def guidance_text(value: Any) -> str:
    """A JSON number as the spec's decimal string, 2 decimals at most:
    7.5 -> "7.5", 7 -> "7.0", 0 -> "0.0"."""
    if type(value) is bool or not isinstance(value, (int, float)):
        raise InvalidRequest("'guidance_scale' must be a number", "guidance_scale", "invalid_type")
    try:
        d = decimal.Decimal(str(value))
    except decimal.InvalidOperation as exc:
        raise InvalidRequest("'guidance_scale' must be a number", "guidance_scale") from exc
    if not d.is_finite() or not 0 <= d <= MAX_GUIDANCE:
        raise InvalidRequest(
            f"'guidance_scale' must be between 0 and {MAX_GUIDANCE}", "guidance_scale"
        )
    d = d.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_EVEN)
    text = format(d, "f").rstrip("0")
    return text + "0" if text.endswith(".") else text


def parse_generation(
    body: Any, models: Sequence[str], *, max_n: int = MAX_N
) -> tuple[list[dict[str, Any]], int]:
    """The task specs (one per image) for a generation request, and n. Raises InvalidRequest."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", None, "invalid_json")
    unknown = sorted(set(body) - GENERATION_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown parameter '{unknown[0]}'", unknown[0], "unknown_parameter")
    if "prompt" not in body:
        raise InvalidRequest("'prompt' is required", "prompt", "missing_required_parameter")
    prompt = _str(body, "prompt", "")
    if not prompt.strip():
        raise InvalidRequest("'prompt' must not be empty", "prompt")
    if len(prompt.encode()) > MAX_PROMPT_BYTES:
        raise InvalidRequest(f"'prompt' is longer than {MAX_PROMPT_BYTES} bytes", "prompt")
    n = _int(body, "n", 1, 1, max_n)
    size = _str(body, "size", DEFAULT_SIZE)
    m = SIZE_RE.fullmatch(size)
    if m is None:
        raise InvalidRequest("'size' must be 'WIDTHxHEIGHT'", "size")
    width, height = int(m.group(1)), int(m.group(2))
    for side in (width, height):
        if not 8 <= side <= MAX_SIDE or side % 8:
            raise InvalidRequest(
                f"'size' sides must be multiples of 8 from 8 to {MAX_SIDE}", "size"
            )
    fmt = _str(body, "response_format", "b64_json")
    if fmt != "b64_json":
        raise InvalidRequest("only response_format 'b64_json' is supported", "response_format")
    model = _str(body, "model", models[0])
    if model not in models:
        raise InvalidRequest(
            f"unknown model '{model}'; served: {', '.join(models)}", "model", "model_not_found"
        )
    negative = _str(body, "negative_prompt", "")
    if len(negative.encode()) > MAX_PROMPT_BYTES:
        raise InvalidRequest(
            f"'negative_prompt' is longer than {MAX_PROMPT_BYTES} bytes", "negative_prompt"
        )
    steps = _int(body, "steps", DEFAULT_STEPS, 1, MAX_STEPS)
    guidance = guidance_text(body.get("guidance_scale", 0))
    if "seed" in body:
        seed = _int(body, "seed", 0, 0, MAX_SEED)
    else:
        seed = secrets.randbelow(MAX_SEED + 1)
    _str(body, "user", "")
    specs = []
    for i in range(n):
        spec = {
            "model": model,
            "prompt": prompt,
            "negative_prompt": negative,
            "width": width,
            "height": height,
            "steps": steps,
            "seed": seed + i,
            "guidance_scale": guidance,
        }
        try:
            validate_spec(spec)
        except SpecError as exc:  # the protocol's own rules, should the two ever differ
            raise InvalidRequest(str(exc), None) from exc
        specs.append(spec)
    return specs, n
