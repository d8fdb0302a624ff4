"""The layout keeps its promises: each layer imports only the layers beneath it, no module imports another's
private names, and there is no import cycle, counting the imports made inside functions (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

from .helpers import ROOT

PACKAGE = ROOT / "leadmatch"

#: What each part of the package may import (besides itself and the shared `errors`, `wire`, `safetext` and `lazy` modules).
#: Lower layers never import higher ones; the front ends (cli, web) and tools may use any library layer.
MAY_IMPORT = {
    "biometrics": set(),
    "record": set(),
    "governance": {"record"},
    "gallery": {"record", "governance", "biometrics"},
    "search": {"record", "governance", "biometrics", "gallery"},
    "casemedia": {"record", "governance", "biometrics", "gallery", "search"},
    "tools": {"record", "governance", "biometrics", "gallery", "search"},
    "operations": {"record", "governance", "biometrics", "gallery", "search", "casemedia", "tools"},
    "cli": {"record", "governance", "biometrics", "gallery", "search", "casemedia", "tools", "operations", "web"},
    "web": {"record", "governance", "biometrics", "gallery", "search", "casemedia", "tools", "operations"},
}
#: Calls that decide or record what a user may do: the front ends leave them to the library.
GATES = {"require", "refuse", "require_search_ready", "record", "transaction", "execute", "executemany"}
SHARED = {"errors", "wire", "safetext", "lazy"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for every import of a leadmatch module in `path`, at any depth of the code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; the package imports absolutely")
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "leadmatch":
            found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "leadmatch"]
    return found


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def resolve(target: str, name: str, known: dict[str, Path]) -> str:
    """`from target import name`: the module `name` when it is one, else `target`."""
    return f"{target}.{name}" if f"{target}.{name}" in known else target


def edges() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for _, target, names in imports(path):
            graph[name] |= {resolve(target, n, known) for n in names} if names else {target}
    return graph


def part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def test_each_layer_imports_only_the_layers_beneath_it():
    wrong = []
    for name, path in modules().items():
        own = part(name)
        if own not in MAY_IMPORT:
            continue
        for line, target, _ in imports(path):
            other = part(target)
            if other and other != own and other not in SHARED and other not in MAY_IMPORT[own]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_front_ends_hold_no_rule():
    """cli/ and web/ parse, call and print: no role check, no refusal, no audit entry, no SQL of their own."""
    wrong = []
    for folder in ("cli", "web"):
        for path in (PACKAGE / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    if name in GATES:
                        wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node.func)}(…)")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_a_private_name_of_another():
    wrong = []
    for name, path in modules().items():
        for line, target, names in imports(path):
            private = [n for n in names if n.startswith("_") and target != name]
            if private or any(piece.startswith("_") and piece != "__init__" for piece in target.split(".")):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: from {target} import {', '.join(names)}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_even_through_imports_inside_functions():
    graph = edges()
    cycles = [component for component in strongly_connected(graph) if len(component) > 1]
    # a package's __init__ re-exporting its own modules is no cycle of behaviour; any other is
    assert not cycles, "\n".join(" ↔ ".join(sorted(c)) for c in cycles)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively (the graph is small, but recursion depth is not ours to spend)."""
    index, low, on_stack, stack, result, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    result.append(component)
    return result


def test_docs_architecture_names_every_room():
    """docs/architecture.md and the layout agree: each sub-package has its row, naming each of its modules."""
    rows = {line.split("|")[1].strip().strip("`").rstrip("/"): line
            for line in (ROOT / "docs" / "architecture.md").read_text().splitlines() if line.startswith("| `")}
    missing = []
    for package in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        assert package.name in MAY_IMPORT, f"{package.name}/ has no place in the layers (MAY_IMPORT)"
        row = rows.get(package.name, "")
        for module in package.rglob("*.py"):
            if module.stem != "__init__" and f"`{module.stem}`" not in row and f"`{module.stem}," not in row:
                missing.append(f"{module.relative_to(PACKAGE)}")
    assert not missing, "not in docs/architecture.md: " + ", ".join(missing)
