"""How lstmkit's modules import each other: every import points one way (no cycles,
function-level imports included), the library imports no task, and a task module
imports no TensorFlow (the command line checks its arguments before TensorFlow loads)."""

import ast
import json
import subprocess
import sys

import pytest

from lstmkit.registry import task_names
from tests.conftest import ROOT


def _modules() -> dict[str, object]:
    """Module name -> path, for lstmkit and the tasks (installed as lstmkit.tasks)."""
    found = {}
    for base, prefix in ((ROOT / "lstmkit", ("lstmkit",)), (ROOT / "tasks", ("lstmkit", "tasks"))):
        for path in base.rglob("*.py"):
            parts = (*prefix, *path.relative_to(base).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the lstmkit modules it imports anywhere in its code (at the top or in a
    function; ``from package import module`` counts as importing the module)."""
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lstmkit"):
                submodules = [f"{node.module}.{alias.name}" for alias in node.names
                              if f"{node.module}.{alias.name}" in modules]
                targets += submodules
                if len(submodules) < len(node.names):
                    targets.append(node.module)
            elif isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names if alias.name.startswith("lstmkit")]
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_two_lstmkit_modules_import_each_other():
    graph = import_graph()
    assert len(graph) > 60 and graph["lstmkit.evaluation"] >= {"lstmkit.run"}
    assert cycles(graph) == []


def test_the_library_imports_no_task():
    offenders = {name: sorted(target for target in targets if target.startswith("lstmkit.tasks."))
                 for name, targets in import_graph().items() if not name.startswith("lstmkit.tasks")}
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.parametrize("task_name", task_names())
def test_a_task_module_and_its_config_import_no_tensorflow(task_name):
    probe = ("import json, sys\nfrom lstmkit.registry import get_task\n"
             f"task = get_task({task_name!r})\nconfig = task.tiny_config()\ntask.bind(config).default_config()\n"
             "print(json.dumps([name for name in ('tensorflow', 'keras', 'keras_tuner') if name in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []
