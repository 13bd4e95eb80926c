"""Tasks' state is bounded (issue 12): under a steady load of tasks for several retention windows,
the live entries of Tasks' storage and the bytes of the state stay flat while the tasks ever
committed grow linearly; the same load without pruning grows. Also the per-task state of the
other pallets: MinerStats (per miner), Rewards' work (per era, paid out and removed), and
Slashing's offence ids (kept forever: one entry per offence, the one per-task leftover).

The load (tests/pallets/task_load.py): one coordinator, ten honest miners, 40 tasks per block
due 10 blocks later; every 10th gets no result (Missed at its deadline), every 5th result is
left to its deadline, the others are settled early; 10% are drawn for a check and play its
round. The state is sampled after every block; `bench/task_state_bench.py` measures the same
load's bytes in the node's trie and on disk.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
from collections.abc import Iterator

import pytest

from chain.frame.common import PERBILL_ONE
from pallets.slashing import pallet as slashing
from pallets.tasks.pallet import Checks, Specs, Tasks
from tests.pallets.mock import MockRuntime, mock_config
from tests.pallets.task_load import Census, LoadShape, MockLoad, storage_names, take_census
from tests.pallets.test_staking import run_to_block
from tests.pallets.test_tasks import check_of, network, start, task, tid

RETENTION = 30  # blocks (the dev chain's is 100); >= (slashDeferDuration + 1) * eraLength = 20
SHAPE = LoadShape(tasks_per_block=40, deadline_blocks=10)
# A task lives at most until its deadline, then RetentionBlocks: after that, as many leave state
# per block as enter it. The margin covers checks (one may run past its task's deadline).
WARMUP = SHAPE.deadline_blocks + RETENTION + 20
WINDOWS = 5  # measured windows of RETENTION blocks each
BLOCKS = WARMUP + WINDOWS * RETENTION
N_MINERS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class Tolerance:
    band: float  # (max - min) / mean over the measured blocks
    trend: float  # |least-squares growth per window| / mean
    rise: float  # largest rise of a window's mean over the window before / mean


# Steady counts move by a task or two from block to block. Tasks drawn for a check are a random
# ~10% (a Poisson count of ~115 checks): they move Checks and Specs, the open tasks waiting in
# Deadlines, and the bytes (half of which are the checked tasks' reveals), without a trend. The
# tolerances are about twice the largest of eight seeds' (the contrast's trend is +23%).
TIGHT = Tolerance(band=0.05, trend=0.01, rise=0.01)
OPEN = Tolerance(band=0.15, trend=0.01, rise=0.03)
DRAWN = Tolerance(band=0.70, trend=0.08, rise=0.25)
BYTES = Tolerance(band=0.25, trend=0.03, rise=0.10)
# Per-era entries (Rewards' work, paid out and removed when the era ends) come and go: a
# sawtooth of one era, bounded, without a trend.
PER_ERA = Tolerance(band=1.0, trend=0.02, rise=0.08)
SERIES = {
    "Tasks.Tasks": TIGHT,
    "Tasks.Prunable": TIGHT,
    "Tasks.PendingDraws": TIGHT,
    "Tasks.Deadlines": OPEN,
    "Tasks.Checks": DRAWN,
    "Tasks.Specs": DRAWN,
    "bytes: Tasks": BYTES,
    "bytes: state": BYTES,
}
COUNTED = [name for name in SERIES if not name.startswith("bytes")]


@dataclasses.dataclass(frozen=True, slots=True)
class Flatness:
    band: float
    trend: float
    rise: float

    def within(self, tol: Tolerance) -> bool:
        return self.band <= tol.band and abs(self.trend) <= tol.trend and self.rise <= tol.rise


def flatness(series: list[int], window: int) -> Flatness:
    mean = statistics.mean(series)
    xs = range(len(series))
    slope = statistics.linear_regression(xs, series).slope
    means = [statistics.mean(series[i : i + window]) for i in range(0, len(series), window)]
    rise = max(b - a for a, b in itertools.pairwise(means))
    return Flatness((max(series) - min(series)) / mean, slope * window / mean, rise / mean)


@dataclasses.dataclass
class Run:
    """Per-block samples of one load (after the warm-up) and its end."""

    committed: list[int]
    series: dict[str, list[int]]
    pallet_bytes: dict[str, list[int]]
    last: Census


def run_load(retention: int) -> Run:
    config = mock_config()
    config = dataclasses.replace(
        config, tasks=dataclasses.replace(config.tasks, retention_blocks=retention)
    )
    load = MockLoad(config, SHAPE, N_MINERS, seed=b"bounded")
    names = storage_names(load.m.runtime)
    pallets = sorted({name.split(".")[0] for name in names.values()})
    committed: list[int] = []
    series: dict[str, list[int]] = {name: [] for name in SERIES}
    pallet_bytes: dict[str, list[int]] = {p: [] for p in pallets}
    census = take_census(names, load.m.backend)
    print(f"\nretention {retention}: block, tasks ever, {', '.join(SERIES)}")
    while load.block < BLOCKS:
        load.step()
        census = take_census(names, load.m.backend)
        sample = {name: census.count(name) for name in COUNTED}
        sample["bytes: Tasks"] = census.pallet_bytes("Tasks")
        sample["bytes: state"] = census.total_bytes
        if (load.block - WARMUP) % RETENTION == 0:
            load.m.runtime.try_state(load.m.state)  # Prunable/Retained agree with the tasks
            print(f"  {load.block:4} {load.load.committed:6} {list(sample.values())}")
        if load.block <= WARMUP:
            continue
        committed.append(load.load.committed)
        for name, value in sample.items():
            series[name].append(value)
        for p in pallets:
            pallet_bytes[p].append(census.pallet_bytes(p))
    return Run(committed, series, pallet_bytes, census)


@pytest.fixture(scope="module")
def pruned() -> Run:
    return run_load(RETENTION)


@pytest.fixture(scope="module")
def unpruned() -> Run:
    return run_load(10 * BLOCKS)  # nothing settled in the run reaches its prune block


def assert_flat(series: list[int], name: str, tol: Tolerance) -> None:
    f = flatness(series, RETENTION)
    assert f.within(tol), f"{name} is not flat: {f} (tolerance {tol})"


def test_steady_load_keeps_task_state_flat(pruned: Run) -> None:
    per_block = SHAPE.tasks_per_block
    # block 1 registers the network; every block after it commits 40 tasks
    assert pruned.committed == [per_block * (b - 1) for b in range(WARMUP + 1, BLOCKS + 1)]
    for name, tol in SERIES.items():
        f = flatness(pruned.series[name], RETENTION)
        print(f"{name:18} band {f.band:6.1%} trend {f.trend:+6.1%} rise {f.rise:+6.1%}")
        assert_flat(pruned.series[name], name, tol)
    live = pruned.last.count("Tasks.Tasks")
    # live: about (deadline + retention) blocks' worth of tasks, a fraction of all committed
    assert live <= per_block * (SHAPE.deadline_blocks + RETENTION + 2)
    assert live * WINDOWS < pruned.committed[-1]
    print(
        f"live tasks {live} of {pruned.committed[-1]} committed; "
        f"{pruned.last.pallet_bytes('Tasks') / live:.0f} bytes of Tasks state per live task"
    )


def test_without_pruning_the_same_load_grows(unpruned: Run) -> None:
    """The contrast that shows the measurement can fail: with a retention longer than the run,
    every settled task stays, and the same checks find growth (only the open tasks' indexes,
    Deadlines and PendingDraws, stay flat)."""
    for name, tol in SERIES.items():
        if name in ("Tasks.Deadlines", "Tasks.PendingDraws"):
            continue
        with pytest.raises(AssertionError, match="is not flat"):
            assert_flat(unpruned.series[name], name, tol)
    growth = flatness(unpruned.series["Tasks.Tasks"], RETENTION)
    assert growth.trend > 0.1
    assert growth.rise > 0.1
    assert unpruned.last.count("Tasks.Tasks") == unpruned.committed[-1]  # every task ever


def test_other_state_does_not_grow_with_tasks(pruned: Run) -> None:
    """Every pallet's bytes stay flat; MinerStats holds one record per miner, Rewards one work
    entry per miner and era until the era is paid (then removed), no offence was reported."""
    for pallet, series in pruned.pallet_bytes.items():
        if any(series):
            assert_flat(series, pallet, PER_ERA)
    last = pruned.last
    assert last.count("Tasks.MinerStats") == N_MINERS
    assert last.count("Rewards.MinerWork") <= 2 * N_MINERS  # this era's and the one being paid
    assert last.count("Rewards.CoordinatorWork") <= 2
    assert last.count("Rewards.EraTotals") <= 2
    assert last.count("Slashing.Offences") == 0
    assert last.count("other") == 0


@pytest.fixture
def checked() -> Iterator[MockRuntime]:
    yield from network(PERBILL_ONE)


def test_offence_ids_outlive_their_pruned_task(checked: MockRuntime) -> None:
    """Known and left as it is (docs/state.md): Slashing keeps every offence id ever reported
    (`Offences`, 68 bytes each with the key, so that no offence is slashed twice), also after
    its task left state."""
    start(checked)
    run_to_block(checked, check_of(checked).phase_ends + 1)  # the coordinator withheld the spec
    settled = task(checked, "t").settled_at
    assert settled is not None
    run_to_block(checked, settled + checked.config.tasks.retention_blocks)
    assert Tasks.get(checked.state, tid("t")) is None
    assert Checks.get(checked.state, tid("t")) is None
    assert Specs.get(checked.state, tid("t")) is None
    assert len(list(slashing.Offences.iter(checked.state))) == 1
