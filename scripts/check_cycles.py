"""Fail on any import cycle among the package's modules, imports inside functions included.

import-linter's contracts check the direction of imports between layers that someone listed; a
cycle between two modules of one layer, or one made of imports inside functions, passes them.
This check reads the same import graph (grimp, which import-linter installs) and reports every
group of modules that import each other, with one cycle through each group, so the fix is plain.

    python scripts/check_cycles.py [package]      # exit 1 and the cycles when there are any
"""

from __future__ import annotations

import sys
from pathlib import Path


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that reach each other (Tarjan's algorithm, iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1 or node in graph.get(node, ()):
                        groups.append(sorted(group))
    return sorted(groups)


def one_cycle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest cycle through the group's first module (breadth-first inside the group)."""
    start, members = group[0], set(group)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        later = []
        for node in frontier:
            for nxt in sorted(graph.get(node, ())):
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in previous:
                    previous[nxt] = node
                    later.append(nxt)
        frontier = later
    return [start, start]


def import_graph(built) -> dict[str, set[str]]:
    """{module: modules of the package it imports}, at module level or inside functions."""
    return {m: set(built.find_modules_directly_imported_by(m)) for m in built.modules}


def where(built, importer: str, imported: str) -> str:
    details = built.get_import_details(importer=importer, imported=imported)
    return ", ".join(f"line {d['line_number']}" for d in details) or "?"


def main(argv: list[str]) -> int:
    import grimp

    # this checkout's package, whichever environment runs the script (an editable install may point elsewhere)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    package = argv[0] if argv else "napari_vlsm"
    built = grimp.build_graph(package, cache_dir=None)
    graph = import_graph(built)
    groups = strongly_connected(graph)
    for group in groups:
        cycle = one_cycle(graph, group)
        print(f"import cycle among {len(group)} modules: {' -> '.join(cycle)}")
        for a, b in zip(cycle, cycle[1:]):
            print(f"    {a} imports {b} ({where(built, a, b)})")
    if groups:
        print(f"{len(groups)} import cycle(s) in {package}; cut each (move the shared code down a layer)")
        return 1
    print(f"no import cycles in {package} ({len(graph)} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
