"""The import graph of `node`, checked with grimp (what import-linter builds on), so the rules
hold without the `lint-imports` command: no module of `node` imports itself through others
(every strongly connected component is one module), the services reach each other only through
node.interfaces, and nothing but the command line imports the composition root.

grimp records every import statement: those inside functions and under `if TYPE_CHECKING`
too, so neither can hide a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grimp
import pytest

SERVICES = (
    "node.authoring",
    "node.finality",
    "node.importer",
    "node.netbridge",
    "node.rpc",
    "node.sync",
    "node.transactions",
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("node", cache_dir=None)


def strongly_connected(edges: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of a directed graph, without recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
                if low[v] == index[v]:
                    component = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.add(w)
                        if w == v:
                            break
                    out.append(component)
    return out


def test_strongly_connected_finds_cycles_and_singletons() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    components = strongly_connected(edges)
    assert sorted(map(sorted, components)) == [["a", "b", "c"], ["d"], ["e"]]


def test_node_modules_import_without_a_cycle(graph: grimp.ImportGraph) -> None:
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert len(edges) > 30  # the whole of node was read
    assert [m for m, imported in edges.items() if m in imported] == []
    cycles = [sorted(c) for c in strongly_connected(edges) if len(c) > 1]
    assert cycles == []


@pytest.mark.parametrize("service", SERVICES)
def test_services_do_not_import_each_other(graph: grimp.ImportGraph, service: str) -> None:
    others = [s for s in SERVICES if s != service]
    reached = [
        other
        for other in others
        if graph.chain_exists(importer=service, imported=other, as_packages=True)
    ]
    assert reached == []


def test_only_the_command_line_imports_the_composition_root(graph: grimp.ImportGraph) -> None:
    assert graph.find_modules_that_directly_import("node.service") == {"node.cli", "node.blockio"}
