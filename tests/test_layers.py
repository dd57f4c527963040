"""Imports in kit/ run one way: the layer order written in docs/architecture.md.

The test reads the ```layers block there (the order, not a list of files: a module belongs to
the nearest package named), walks every import in every kit module (the ones inside
functions too) and fails on an import from a higher layer, on a module no layer holds, and
on an import cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def read_layers(text: str) -> dict[str, int]:
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, f"{DOC} has no ```layers block"
    layers = {}
    for line in block.group(1).splitlines():
        number, *names = line.split()
        for name in names:
            layers[name] = int(number)
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in layers:
            return layers[".".join(parts[:end])]
    return None


def kit_modules(root: Path = ROOT) -> dict[str, Path]:
    modules = {}
    for path in (root / "kit").rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The kit modules `name` imports (`from kit import x` counts as kit.x when that is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            candidates = [f"{base}.{alias.name}" for alias in node.names]
            candidates = [c if c in modules else base for c in candidates]
        else:
            continue
        found.update(c for c in candidates if c in modules and c != name)
    return found


def upward_imports(layers: dict[str, int], modules: dict[str, Path]) -> list[str]:
    wrong = []
    for name, path in sorted(modules.items()):
        own = layer_of(name, layers)
        for target in sorted(imports_of(name, path, modules)):
            if layer_of(target, layers) > own:
                wrong.append(f"{name} (layer {own}) imports {target} "
                             f"(layer {layer_of(target, layers)})")
    return wrong


def cycles(modules: dict[str, Path]) -> list[list[str]]:
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    # a package's __init__ is imported by its own submodules' import machinery, not by them
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_every_kit_module_has_a_layer():
    layers = read_layers(DOC.read_text())
    assert [n for n in kit_modules() if layer_of(n, layers) is None] == []


def test_no_import_runs_upward():
    assert upward_imports(read_layers(DOC.read_text()), kit_modules()) == []


def test_no_import_cycle():
    assert cycles(kit_modules()) == []


def test_the_check_sees_an_upward_import_and_a_cycle(tmp_path):
    """The checks themselves: a low module importing a high one, inside a function, is
    caught; so is a two-module cycle."""
    (tmp_path / "kit" / "wing").mkdir(parents=True)
    (tmp_path / "kit" / "__init__.py").write_text("")
    (tmp_path / "kit" / "base.py").write_text("def f():\n    from kit.wing import top\n")
    (tmp_path / "kit" / "wing" / "__init__.py").write_text("")
    (tmp_path / "kit" / "wing" / "top.py").write_text("from kit import base\n")
    layers = read_layers("```layers\n0 kit kit.base\n1 kit.wing\n```")
    modules = kit_modules(tmp_path)
    assert upward_imports(layers, modules) == ["kit.base (layer 0) imports kit.wing.top (layer 1)"]
    assert cycles(modules) == [["kit.base", "kit.wing.top", "kit.base"]]


@pytest.mark.parametrize("hook", sorted(
    [p for p in (ROOT / "competitions").glob("*/*.py")] + [p for p in (ROOT / "templates").rglob("*.py")]),
    ids=lambda p: str(p.relative_to(ROOT)))
def test_hooks_import(hook):
    """Every competition's and template's hook imports against today's kit (the names hooks
    use: kit.errors, kit.io, kit.paths, kit.config, kit.data.*)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"hook_{hook.parent.name}_{hook.stem}", hook)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
