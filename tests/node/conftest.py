"""Shared fixtures of the node tests: a dev node on a fresh copy of one genesis store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from genesis.builder import load_spec
from node.service import Node, NodeConfig

DEV = load_spec("dev")


@pytest.fixture(scope="module")
def dev_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dev node's store at genesis, made once per module."""
    base = tmp_path_factory.mktemp("dev")
    Node(NodeConfig(spec=DEV, base_path=base, prometheus_port=None)).close()
    return base


@pytest.fixture
def dev_node(dev_template: Path, tmp_path: Path) -> Iterator[Node]:
    """A dev node (no network, no RPC server) on its own copy of `dev_template`."""
    base = tmp_path / "node"
    shutil.copytree(dev_template, base)
    opened = Node(NodeConfig(spec=DEV, base_path=base, prometheus_port=None))
    yield opened
    opened.close()
