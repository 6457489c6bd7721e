"""The package's shape, read from its source with ast: no import cycle, and each signal step in one module.

Both properties hold by construction today and break silently: a function-local import that closes a cycle
works until the import order changes, and a second copy of a signal step passes every test until one copy is
changed. Function-local imports and `importlib.import_module("...")` count like module-level ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "exvo_keras"


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = ast.parse(path.read_text(), filename=str(path))
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The package module an import of `name` executes last (`a.b.c` -> `a.b` when c is not a module)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _package_of(module: str, tree: ast.Module) -> str:
    is_package = (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()
    return module if is_package else module.rpartition(".")[0]


def imports_of(module: str) -> set[str]:
    """Every package module `module` imports, wherever the import statement stands."""
    tree = MODULES[module]
    targets = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = _package_of(module, tree).split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from a import b` imports the module a.b when b is one, else a. The parent package that any import
            # of a.b runs first is not counted: a package re-exporting its submodules is not a cycle.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == \
                "import_module" and node.args and isinstance(node.args[0], ast.Constant):
            names = [node.args[0].value]
        for name in names:
            if name.startswith("exvo_keras"):
                resolved = _resolve(name)
                if resolved and resolved != module:
                    targets.add(resolved)
    return targets


def import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph = {m: imports_of(m) for m in MODULES}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_import_graph_resolves_package_imports():
    # guards the test itself: a resolver that found nothing would make the cycle test pass vacuously
    assert "exvo_keras.signal.zff" in imports_of("exvo_keras.data.signals") | imports_of("exvo_keras.signal")
    assert any("exvo_keras.cli" in imports_of(m) for m in MODULES)


def test_no_import_cycle_counting_function_local_imports():
    assert import_cycles() == []


# Each signal step: the module that owns it, and what marks an implementation of it elsewhere: functions of
# these names defined, or these names (TensorFlow/numpy/scipy attributes, package constants) used at all.
SIGNAL_STEPS = {
    "zero-frequency filtering": ("exvo_keras.signal.zff",
                                 {"defines": {"zff", "zff_batch", "_zff_block", "_remove_trend", "average_pitch_period",
                                              "trend_window", "trend_window_samples", "_lp_residual", "_levinson"}}),
    "window framing and z-normalisation": ("exvo_keras.signal.framing",
                                           {"defines": {"frame_windows", "normalise_windows", "batch_windows",
                                                        "clip_windows"},
                                            "uses": {"CONTEXT_FRAMES", "STD_FLOOR"}}),
    "mean/std pooling": ("exvo_keras.signal.pooling",
                         {"defines": {"pool_by_clip", "masked_mean_std", "mean_std", "segment_mean_std"},
                          "uses": {"unsorted_segment_sum", "segment_sum", "add.at"}}),
    "per-clip normalisation": ("exvo_keras.signal.normalize",
                               {"defines": {"normalize_clip", "normalize_clips"}, "constants": {1e-7}}),
    "resampling": ("exvo_keras.signal.resample",
                   {"defines": {"resample_poly", "kaiser_lowpass"}, "uses": {"resample_poly", "firwin"}}),
}


def _attribute_name(node) -> str:
    return f"{node.value.id}.{node.attr}" if isinstance(node.value, ast.Name) else node.attr


def markers(module: str, rule: dict) -> list[str]:
    found = []
    for node in ast.walk(MODULES[module]):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in rule.get("defines", ()):
            found.append(f"defines {node.name} (line {node.lineno})")
        uses = rule.get("uses", set())
        name = None
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr if node.attr in uses else _attribute_name(node)
        elif isinstance(node, ast.alias):
            name = node.name
        if name in uses:
            found.append(f"uses {name} (line {getattr(node, 'lineno', '?')})")
        if isinstance(node, ast.Constant) and isinstance(node.value, float) and node.value in rule.get("constants", ()):
            found.append(f"constant {node.value} (line {node.lineno})")
    return found


@pytest.mark.parametrize("step", sorted(SIGNAL_STEPS))
def test_each_signal_step_lives_in_one_module(step):
    owner, rule = SIGNAL_STEPS[step]
    assert owner in MODULES, f"{step}: its module {owner} is missing"
    assert markers(owner, rule), f"{step}: {owner} no longer implements it (update this test's markers)"
    elsewhere = {m: markers(m, rule) for m in MODULES if m != owner}
    assert {m: found for m, found in elsewhere.items() if found} == {}, f"{step} implemented outside {owner}"


def _external_imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_tensorflow_io_is_imported_by_one_module_only():
    # tensorflow-io's last release loads on TensorFlow 2.17 only: one module to replace when it must go.
    users = sorted(m for m, tree in MODULES.items() if "tensorflow_io" in _external_imports(tree))
    assert users == ["exvo_keras.data.tf_audio"]
