"""The OpenAPI 3.0 document served at /openapi.json (kept next to the handlers it describes)."""

from __future__ import annotations

from typing import Any

from chain.taskproto import MAX_PROMPT_BYTES, MAX_STEPS

SIZE_SIDES = "|".join(str(s) for s in range(1024, 7, -8))
SIZE_PATTERN = f"^({SIZE_SIDES})x({SIZE_SIDES})$"
HEX32 = "^0x[0-9a-fA-F]{64}$"
MAX_SEED = 2**63 - 4


UNAVAILABLE = (
    "Nothing was taken: the coordinator's registration is not Active (code "
    "coordinator_inactive: e.g. after a slash), or its operator cannot escrow the tasks' prices "
    "and deposits now (code insufficient_funds: try again later)."
)
PLANCK = {"type": "string", "pattern": "^[0-9]+$", "description": "planck (10^-18 CAI), u128"}
PAID = {
    "oneOf": [
        {"type": "string", "pattern": "^[0-9]+$"},
        {"type": "string", "enum": ["pending", "unknown"]},
    ]
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _app_err(description: str) -> dict[str, Any]:
    return _json(_ref("AppError"), description)


def _miner_err(description: str) -> dict[str, Any]:
    return _json(_ref("MinerError"), description)


SIGNED_HEADERS = [
    {
        "name": "X-Cuckoo-Operator",
        "in": "header",
        "required": True,
        "description": "SS58 address of the miner's operator (sr25519) key.",
        "schema": {"type": "string"},
    },
    {
        "name": "X-Cuckoo-Timestamp",
        "in": "header",
        "required": True,
        "description": "Unix time in milliseconds; refused when more than 30 s from the server's.",
        "schema": {"type": "string", "pattern": "^[0-9]{1,16}$"},
    },
    {
        "name": "X-Cuckoo-Nonce",
        "in": "header",
        "required": True,
        "description": "32 hex characters, never reused by an operator within 60 s.",
        "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
    },
    {
        "name": "X-Cuckoo-Signature",
        "in": "header",
        "required": True,
        "description": "0x-hex sr25519 signature over chain.taskproto.request_message(method, "
        "path, body, timestamp, nonce).",
        "schema": {"type": "string", "pattern": "^0x[0-9a-fA-F]{128}$"},
    },
]
TASK_ID_PARAM = {
    "name": "task_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": HEX32},
}
MINER_REFUSALS = {
    "401": _miner_err("Missing or bad signature, stale timestamp, or replayed nonce."),
    "403": _miner_err("The operator does not serve an Active registered miner."),
}
APP_401 = {"401": _app_err("API keys are configured and the request has no valid bearer key.")}


def _generation_request(models: list[str], *, max_n: int) -> dict[str, Any]:
    props: dict[str, Any] = {
        "prompt": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PROMPT_BYTES,
            "pattern": "\\S",
            "description": f"Text prompt: not blank, at most {MAX_PROMPT_BYTES} UTF-8 bytes.",
        },
        "n": {"type": "integer", "minimum": 1, "maximum": max_n, "default": 1},
        "size": {
            "type": "string",
            "pattern": SIZE_PATTERN,
            "default": "512x512",
            "description": "WIDTHxHEIGHT, each a multiple of 8 from 8 to 1024.",
        },
        "response_format": {"type": "string", "enum": ["b64_json"], "default": "b64_json"},
        "seed": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_SEED,
            "description": "Seed of the first image (image i uses seed + i); random if absent.",
        },
        "steps": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS, "default": 4},
        "model": {"type": "string", "enum": list(models), "default": models[0]},
        "negative_prompt": {"type": "string", "maxLength": MAX_PROMPT_BYTES, "default": ""},
        "guidance_scale": {
            "type": "number",
            "minimum": 0,
            "maximum": 50,
            "default": 0,
            "description": "Rounded to 2 decimals and sent to miners as a decimal string.",
        },
        "user": {"type": "string", "description": "Accepted for OpenAI compatibility; unused."},
    }
    if max_n == 1:
        del props["n"]
        props["response_format"]["description"] = "Accepted for symmetry; images via /image."
    return {
        "type": "object",
        "required": ["prompt"],
        "additionalProperties": False,
        "properties": props,
    }


def build_openapi(models: list[str], *, bearer_auth: bool = False) -> dict[str, Any]:
    """The document; app endpoints carry the bearer requirement when API keys are configured."""
    receipt = {
        "type": "object",
        "required": [
            "task_id",
            "miner",
            "commit_block",
            "result_block",
            "settle_block",
            "verification",
            "price",
            "to_miner",
            "burned",
            "to_checkers",
            "refunded",
        ],
        "properties": {
            "task_id": {"type": "string", "pattern": HEX32, "description": "On-chain task id."},
            "miner": {"type": "string", "description": "SS58 address of the miner's staker."},
            "commit_block": {"type": "integer", "nullable": True},
            "result_block": {"type": "integer", "nullable": True},
            "settle_block": {
                "oneOf": [{"type": "integer"}, {"type": "string", "enum": ["pending"]}]
            },
            "verification": {
                "type": "string",
                "enum": ["pending", "unchecked", "verified", "upheld", "guilty"],
                "description": "The chain's check outcome of this result (docs/verification.md): "
                "pending while it is not final or is being checked; unchecked (accepted, not "
                "drawn for a check); verified (a checker re-ran it and agreed); upheld (checked "
                "after a disagreement or a dispute, and the miner was right); guilty (checkers "
                "found it faked; the miner is slashed).",
            },
            "price": {**PLANCK, "description": "What the task paid (escrowed on chain), planck."},
            "to_miner": {
                **PAID,
                "description": "Planck of the price paid to the miner's staker once the task "
                "settled (Tasks.TaskPaid); pending before.",
            },
            "burned": {**PAID, "description": "Planck of the price burned."},
            "to_checkers": {**PAID, "description": "Planck paid to the checkers that were right."},
            "refunded": {**PAID, "description": "Planck returned to the coordinator."},
        },
    }
    price = {
        "type": "object",
        "required": ["model", "size", "price", "price_cai"],
        "properties": {
            "model": {"type": "string"},
            "size": {
                "type": "string",
                "nullable": True,
                "description": "WIDTHxHEIGHT; null: every size without its own entry.",
            },
            "price": PLANCK,
            "price_cai": {"type": "string", "description": "The price in CAI (decimal)."},
        },
    }
    task_view = {
        "type": "object",
        "required": [
            "id",
            "object",
            "status",
            "created",
            "spec",
            "spec_hash",
            "price",
            "attempts",
            "error",
            "receipt",
        ],
        "properties": {
            "id": {"type": "string", "pattern": HEX32},
            "object": {"type": "string", "enum": ["image.task"]},
            "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
            "created": {"type": "integer"},
            "spec": {"type": "object", "description": "The task spec (chain.taskproto)."},
            "spec_hash": {"type": "string", "pattern": HEX32},
            "price": {**PLANCK, "description": "What each on-chain task of it pays, planck."},
            "attempts": {"type": "integer", "minimum": 0},
            "error": {"type": "string", "nullable": True},
            "receipt": {"allOf": [_ref("Receipt")], "nullable": True},
        },
    }
    app_error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": "string", "nullable": True},
                    "code": {"type": "string", "nullable": True},
                },
            },
            "task_ids": {"type": "array", "items": {"type": "string", "pattern": HEX32}},
        },
    }
    miner_error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "code": {"type": "string"},
                },
            }
        },
    }
    miner = {
        "type": "object",
        "required": [
            "miner",
            "operator",
            "name",
            "gpu_model",
            "status",
            "own_stake",
            "votes",
            "weight",
            "live",
            "last_poll",
            "stats",
        ],
        "properties": {
            "miner": {"type": "string", "description": "SS58 of the staker."},
            "operator": {"type": "string"},
            "name": {"type": "string"},
            "gpu_model": {"type": "string"},
            "status": {"type": "string", "enum": ["Active"]},
            "own_stake": {"type": "string", "pattern": "^[0-9]+$", "description": "u128, planck"},
            "votes": {"type": "string", "pattern": "^[0-9]+$"},
            "weight": {"type": "string", "pattern": "^[0-9]+$", "description": "own_stake + votes"},
            "live": {"type": "boolean", "description": "Polled within --miner-live-s."},
            "last_poll": {"type": "number", "nullable": True, "description": "Unix seconds."},
            "stats": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    }
    health = {
        "type": "object",
        "required": ["status", "ready", "chain", "registered"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "ready": {"type": "boolean"},
            "chain": {
                "type": "object",
                "properties": {
                    "url": {"type": "string"},
                    "reachable": {"type": "boolean"},
                    "head": {"type": "integer", "nullable": True},
                    "last_error": {"type": "string", "nullable": True},
                },
            },
            "registered": {"type": "boolean"},
            "coordinator_status": {"type": "string"},
            "coordinator": {"type": "string", "nullable": True},
            "operator": {"type": "string"},
            "miners_live": {"type": "integer"},
            "miners_registered": {"type": "integer"},
            "operator_balance": {
                "type": "object",
                "nullable": True,
                "description": "The operator's balance at the last head (planck): free, reserved "
                "(escrowed task prices and deposits), and what new tasks may still escrow.",
                "properties": {
                    "free": PLANCK,
                    "reserved": PLANCK,
                    "for_new_tasks": PLANCK,
                },
            },
        },
    }
    poll_task = {
        "type": "object",
        "required": ["task_id", "spec", "spec_hash", "deadline_block", "price"],
        "properties": {
            "task_id": {"type": "string", "pattern": HEX32},
            "spec": {"type": "object"},
            "spec_hash": {"type": "string", "pattern": HEX32},
            "deadline_block": {"type": "integer"},
            "price": {
                **PLANCK,
                "description": "What the task pays its miner (planck); the task's on-chain "
                "record (Tasks.Tasks) has the price that counts.",
            },
        },
    }
    gen_response = {
        "type": "object",
        "required": ["created", "data"],
        "properties": {
            "created": {"type": "integer"},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["b64_json", "receipt"],
                    "properties": {
                        "b64_json": {"type": "string", "format": "byte"},
                        "revised_prompt": {"type": "string", "nullable": True},
                        "receipt": _ref("Receipt"),
                    },
                },
            },
        },
    }
    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}] if bearer_auth else []
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Cuckoo coordinator",
            "version": "1.0.0",
            "description": "Text-to-image tasks on the Cuckoo chain: an app API in the shape of "
            "OpenAI's images API, and the signed long-poll API for miners (docs/coordinator.md). "
            "App endpoints need `Authorization: Bearer <key>` only when the coordinator runs "
            "with --api-keys-file.",
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "AppError": app_error,
                "MinerError": miner_error,
                "Receipt": receipt,
                "TaskView": task_view,
                "Miner": miner,
                "Health": health,
                "PollTask": poll_task,
                "Price": price,
                "GenerationRequest": _generation_request(models, max_n=4),
                "TaskRequest": _generation_request(models, max_n=1),
                "GenerationResponse": gen_response,
            },
        },
        "paths": {
            "/v1/images/generations": {
                "post": {
                    "summary": "Generate images (waits for the results)",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("GenerationRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("GenerationResponse"), "The images with receipts."),
                        "400": _app_err("Invalid request (OpenAI error shape)."),
                        **APP_401,
                        "413": _app_err("Body over 64 KiB."),
                        "502": _app_err("No result could be obtained (task_ids lists the tasks)."),
                        "503": _app_err(UNAVAILABLE),
                        "504": _app_err("No result within the timeout; the tasks continue."),
                    },
                }
            },
            "/v1/tasks": {
                "post": {
                    "summary": "Create one task and return at once",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("TaskRequest")}},
                    },
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "required": ["id", "status"],
                                "properties": {
                                    "id": {"type": "string", "pattern": HEX32},
                                    "status": {"type": "string", "enum": ["queued", "running"]},
                                },
                            },
                            "Accepted and stored durably.",
                        ),
                        "400": _app_err("Invalid request."),
                        **APP_401,
                        "413": _app_err("Body over 64 KiB."),
                        "503": _app_err(UNAVAILABLE),
                    },
                }
            },
            "/v1/tasks/{task_id}": {
                "get": {
                    "summary": "A task's status and receipt",
                    "security": bearer,
                    "parameters": [TASK_ID_PARAM],
                    "responses": {
                        "200": _json(_ref("TaskView"), "The task."),
                        **APP_401,
                        "404": _app_err("No such task."),
                    },
                }
            },
            "/v1/tasks/{task_id}/image": {
                "get": {
                    "summary": "A finished task's PNG",
                    "security": bearer,
                    "parameters": [TASK_ID_PARAM],
                    "responses": {
                        "200": {
                            "description": "The image.",
                            "content": {
                                "image/png": {"schema": {"type": "string", "format": "binary"}}
                            },
                        },
                        **APP_401,
                        "404": _app_err("No such task."),
                        "409": _app_err("The task has no image (yet)."),
                    },
                }
            },
            "/v1/miners": {
                "get": {
                    "summary": "Active registered miners with weights, liveness and statistics",
                    "security": bearer,
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["object", "data"],
                                "properties": {
                                    "object": {"type": "string", "enum": ["list"]},
                                    "data": {"type": "array", "items": _ref("Miner")},
                                },
                            },
                            "The miners, heaviest first.",
                        ),
                        **APP_401,
                    },
                }
            },
            "/v1/prices": {
                "get": {
                    "summary": "What a task pays, per served model and size (public)",
                    "security": [],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["object", "unit", "decimals", "default", "data"],
                                "properties": {
                                    "object": {"type": "string", "enum": ["list"]},
                                    "unit": {"type": "string", "enum": ["planck"]},
                                    "decimals": {"type": "integer", "enum": [18]},
                                    "default": {
                                        "type": "object",
                                        "required": ["price", "price_cai"],
                                        "properties": {
                                            "price": PLANCK,
                                            "price_cai": {"type": "string"},
                                        },
                                    },
                                    "data": {"type": "array", "items": _ref("Price")},
                                },
                            },
                            "Each model's price (size null), then its sizes' own prices.",
                        )
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Readiness: chain reachable, coordinator registered and Active",
                    "security": [],
                    "responses": {
                        "200": _json(_ref("Health"), "Ready."),
                        "503": _json(_ref("Health"), "Not ready (see the fields)."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Prometheus text format 0.0.4.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0 document.")},
                }
            },
            "/v1/miner/poll": {
                "post": {
                    "summary": "Miner long-poll for tasks (signed)",
                    "security": [],
                    "parameters": SIGNED_HEADERS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "max_tasks": {
                                            "type": "integer",
                                            "minimum": 1,
                                            "maximum": 8,
                                        },
                                        "wait_s": {"type": "number", "minimum": 0, "maximum": 30},
                                        "min_price": {
                                            **PLANCK,
                                            "description": "The miner takes no task paying "
                                            "less (planck).",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["tasks"],
                                "properties": {
                                    "tasks": {"type": "array", "items": _ref("PollTask")}
                                },
                            },
                            "Tasks assigned to this miner.",
                        ),
                        "204": {"description": "Nothing within wait_s."},
                        "400": _miner_err("Bad body."),
                        **MINER_REFUSALS,
                        "413": _miner_err("Body over 4 KiB."),
                    },
                }
            },
            "/v1/miner/results/{task_id}": {
                "post": {
                    "summary": "Upload a task's PNG (signed)",
                    "security": [],
                    "parameters": [
                        TASK_ID_PARAM,
                        *SIGNED_HEADERS,
                        {
                            "name": "X-Cuckoo-Result-Hash",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "pattern": HEX32},
                            "description": "blake2_256 of the body.",
                        },
                        {
                            "name": "X-Cuckoo-Device",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "pattern": HEX32},
                            "description": "Device-class hash (chain.taskproto.device_hash).",
                        },
                        {
                            "name": "X-Cuckoo-Sketch",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^0x([0-9a-fA-F]{2})*$"},
                            "description": "image_sketch(body) (chainclient.sketch), 0x-hex.",
                        },
                        {
                            "name": "X-Cuckoo-Salt",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "pattern": HEX32},
                            "description": "The 32-byte salt of the result's on-chain commitment "
                            "(chain.taskproto.result_commitment).",
                        },
                        {
                            "name": "X-Cuckoo-Device-Info",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "The device fingerprint as JSON.",
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "image/png": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["accepted"],
                                "properties": {
                                    "accepted": {"type": "boolean"},
                                    "task_id": {"type": "string"},
                                    "commit_block": {"type": "integer", "nullable": True},
                                },
                            },
                            "Stored; now submit the result's commitment on chain.",
                        ),
                        "400": _miner_err("Missing or malformed hash headers."),
                        **MINER_REFUSALS,
                        "404": _miner_err("Unknown task."),
                        "409": _miner_err("Not assigned to this miner, or it has a result."),
                        "410": _miner_err("The deadline has passed."),
                        "413": _miner_err("Body over 16 MiB."),
                        "422": _miner_err(
                            "Hash mismatch, a sketch that is not the image's, or data that does "
                            "not open the miner's commitment on chain."
                        ),
                    },
                }
            },
            "/v1/miner/release/{task_id}": {
                "post": {
                    "summary": "Hand a task back (signed); it goes to another miner",
                    "security": [],
                    "parameters": [TASK_ID_PARAM, *SIGNED_HEADERS],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "reason": {
                                            "type": "string",
                                            "description": "Why (logged by the coordinator).",
                                        },
                                        "min_price": {
                                            **PLANCK,
                                            "description": "The task pays less than the miner "
                                            "takes: no task paying less goes to it.",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {"type": "object", "properties": {"released": {"type": "boolean"}}},
                            "Released.",
                        ),
                        **MINER_REFUSALS,
                        "404": _miner_err("Unknown task."),
                        "409": _miner_err("Not this miner's, or it already has a result."),
                        "413": _miner_err("Body over 4 KiB."),
                    },
                }
            },
        },
    }
