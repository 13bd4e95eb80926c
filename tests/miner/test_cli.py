"""cuckoo-miner's command line: one-line errors with a non-zero status for expected failures (a
key file others may read, bad usage, an unreachable chain), and SIGTERM in the middle of a task
(a real process). Reading the key itself is tested with the chain client (tests/client)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chainclient.keyfile import ENV_SURI
from miner.cli import main
from tests.miner.fakes import FakeCoordinator

ROOT = Path(__file__).resolve().parents[2]


def miner_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("cuckoo-miner")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "miner.cli"]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def key_file(tmp_path: Path, mode: int, secret: str = "//MinerOperator") -> Path:
    path = tmp_path / "operator.key"
    path.write_text(secret + "\n")
    path.chmod(mode)
    return path


def test_key_file_permission_refusal_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = key_file(tmp_path, 0o644)
    code = main(
        ["--chain-url", f"ws://127.0.0.1:{closed_port()}", "--operator-key-file", str(path)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith("cuckoo-miner: error: operator key file")
    assert "0644" in err[0]
    assert "MinerOperator" not in err[0]  # the secret is never echoed


def test_no_secret_option_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "--operator-key-file" in text
    assert "--suri" not in text
    assert "--seed" not in text


@pytest.mark.parametrize(
    "args",
    [
        ["--chain-url", "http://127.0.0.1:1"],
        ["--chain-url", "ws://127.0.0.1:1", "--coordinator", "ftp://x"],
        ["--chain-url", "ws://127.0.0.1:1", "--max-tasks", "0"],
        ["--chain-url", "ws://127.0.0.1:1", "--min-price", "-1"],
        ["--chain-url", "ws://127.0.0.1:1", "--min-price", "cheap"],
        ["--chain-url", "ws://127.0.0.1:1", "--min-price", "1e-19"],
    ],
)
def test_bad_usage_exits_2(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_SURI, "//MinerOperator")
    assert main(args) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_unreachable_chain_exits_1_with_one_line() -> None:
    port = closed_port()
    proc = subprocess.run(
        [*miner_cmd(), "--chain-url", f"ws://127.0.0.1:{port}", "--chain-timeout", "3"],
        env={**os.environ, ENV_SURI: "//MinerOperator"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("cuckoo-miner: error: cannot reach the chain")


# ---- SIGTERM in the middle of a task (a real process, real signal handling) -------------------


def start_sigterm_miner(
    coord: FakeCoordinator, solve_s: float, drain_s: float, ids: list[bytes]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.miner.sigterm_miner",
            coord.url,
            str(solve_s),
            str(drain_s),
            *("0x" + t.hex() for t in ids),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_assigned(coord: FakeCoordinator, task_id: bytes, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while coord.tasks[task_id].operator is None:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the miner never took the task"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigterm_mid_task_finishes_uploads_commits_and_exits_0(
    coordinator: FakeCoordinator,
) -> None:
    task_id = coordinator.add_task()
    proc = start_sigterm_miner(coordinator, solve_s=1.5, drain_s=30, ids=[task_id])
    try:
        wait_assigned(coordinator, task_id, proc)
        time.sleep(0.2)  # inside the solve
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["uploaded"] == 1
    assert stats["committed"] == 1
    assert stats["pending"] == 0
    assert coordinator.tasks[task_id].result is not None
    assert coordinator.releases == []


@pytest.mark.slow
def test_sigterm_with_a_long_solve_releases_the_task_and_exits_0(
    coordinator: FakeCoordinator,
) -> None:
    task_id = coordinator.add_task()
    proc = start_sigterm_miner(coordinator, solve_s=60, drain_s=0.5, ids=[task_id])
    try:
        wait_assigned(coordinator, task_id, proc)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert elapsed < 10  # the stuck solver thread does not hold the process
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["released"] == 1
    assert stats["uploaded"] == 0
    assert coordinator.releases == [task_id]
    assert list(coordinator.queue) == [task_id]


def test_min_price_is_read_in_cai() -> None:
    from miner.cli import build_config, build_parser

    args = build_parser().parse_args(["--chain-url", "ws://x:1", "--min-price", "0.05"])
    assert build_config(args).min_price == 5 * 10**16
    args = build_parser().parse_args(["--chain-url", "ws://x:1"])
    assert build_config(args).min_price == 0  # take every task
