"""The calibration script's quick mode end to end (tiny model, every CPU device class this machine
supports, one process per class): honest cross-class pairs stay within the chain's sketch
threshold and every cheap fake is beyond it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chain.sketch import DEFAULT_MAX_SKETCH_DISTANCE
from tests.miner_engine.conftest import needs_engine

pytestmark = [*needs_engine, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_quick_calibration(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "verification_calibration.py"),
            "--quick",
            "--work-dir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        cwd=REPO,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["quick"]
    model = report["models"]["tiny"]
    assert {"cpu-avx512-bf16", "cpu-avx512-fp16"} <= set(model["classes"]) | set(
        model["skipped_classes"]
    )
    assert "cpu-avx512-fp32" in model["classes"] or "cpu-avx2-fp32" in model["classes"]
    summary = model["summary_at_chain_default"]
    assert summary["threshold"] == DEFAULT_MAX_SKETCH_DISTANCE
    assert summary["false_positives"] == 0
    assert summary["detected"] == summary["fake_checks"] > 0
    # every honest class ran, as its own device class
    hashes = [c["device_hash"] for c in model["classes"].values()]
    assert len(set(hashes)) == len(hashes)
    assert "honest cross-class pairs" in proc.stdout
