"""The architecture's rules, checked on the import graph (docs/architecture.md).

`lint-imports` (import-linter, run by scripts/test.sh) checks the same contracts from
pyproject.toml; this test keeps them checked by pytest alone, and adds the one rule import-linter
states only per package: no module imports itself through a cycle, anywhere.
"""

from __future__ import annotations

import grimp
import pytest

PACKAGES = (
    "chain",
    "pallets",
    "genesis",
    "node",
    "chainclient",
    "coordinator",
    "miner",
    "devnet",
    "portal_server",
)
LAYERS = ("chain", "pallets", "genesis", "node", "devnet")  # each may import only those before it
CLIENTS = ("chainclient", "coordinator", "miner")  # reach the chain like any third party


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    imported = sorted(graph.find_modules_directly_imported_by(child))
                    work.append((child, iter(imported)))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_import_graph_has_no_cycle(graph: grimp.ImportGraph) -> None:
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    fake = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        fake.add_import(importer=a, imported=b)
    assert _cycles(fake) == [["p.a", "p.b", "p.c"]]


@pytest.mark.parametrize("lower", LAYERS)
def test_layers_import_only_downwards(graph: grimp.ImportGraph, lower: str) -> None:
    for higher in LAYERS[LAYERS.index(lower) + 1 :]:
        chain = graph.find_shortest_chain(importer=lower, imported=higher)
        assert chain is None, f"{lower} imports {higher}: {' -> '.join(chain or ())}"


@pytest.mark.parametrize("client", CLIENTS)
def test_clients_import_neither_runtime_nor_node(graph: grimp.ImportGraph, client: str) -> None:
    for forbidden in ("pallets", "genesis", "node"):
        chain = graph.find_shortest_chain(importer=client, imported=forbidden)
        assert chain is None, f"{client} imports {forbidden}: {' -> '.join(chain or ())}"


def test_node_uses_only_the_clients_key_files(graph: grimp.ImportGraph) -> None:
    used = {
        imp["imported"]
        for imp in graph.find_matching_direct_imports(import_expression="node.** -> chainclient.**")
    }
    assert used <= {"chainclient.keyfile"}


def test_portal_server_imports_nothing_of_the_chain(graph: grimp.ImportGraph) -> None:
    for other in PACKAGES:
        if other == "portal_server":
            continue
        chain = graph.find_shortest_chain(importer="portal_server", imported=other)
        assert chain is None, f"portal_server imports {other}: {' -> '.join(chain or ())}"
