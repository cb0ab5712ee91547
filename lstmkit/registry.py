"""Where tasks come from: the ``lstmkit.tasks`` entry-point group.

Every installed package can add tasks by declaring, in its ``pyproject.toml``::

    [project.entry-points."lstmkit.tasks"]
    my_task = "my_package.my_task:TASK"

where ``TASK`` is an instance of :class:`lstmkit.task.Task` whose ``name`` is the
entry's name. lstmkit's own tasks are declared the same way. Names are read from the
installed metadata without importing anything, so the CLI's ``--help`` stays fast; a
task's module (and with it TensorFlow) is imported only when the task is used.
"""

from __future__ import annotations

import difflib
from importlib import metadata

from lstmkit.errors import UserError

ENTRY_POINT_GROUP = "lstmkit.tasks"


def _entry_points() -> dict[str, metadata.EntryPoint]:
    # The first distribution on sys.path wins a name, as for every entry-point group.
    found = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry_point.name, entry_point)
    return found


def task_names() -> tuple[str, ...]:
    """The names of every installed task (setuptools writes a package's entry points sorted by name)."""
    return tuple(_entry_points())


def get_task(name: str):
    """Import and return the installed task called ``name``."""
    entry_points = _entry_points()
    if name not in entry_points:
        if not entry_points:
            raise UserError("no lstmkit task is installed; install lstmkit (pip install -e . in its "
                            "repository, or pip install lstmkit) so that its tasks are registered")
        near = difflib.get_close_matches(name, entry_points, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise UserError(f"unknown task {name!r}; {hint}choose one of: {', '.join(entry_points)}")
    entry_point = entry_points[name]
    try:
        task = entry_point.load()
    except (ImportError, AttributeError) as error:
        raise UserError(f"task {name!r} is registered as {entry_point.value} but cannot be loaded "
                        f"({error}); reinstall the package that provides it") from error
    from lstmkit.task import Task

    if not isinstance(task, Task) or task.name != name:
        raise UserError(f"task {name!r} ({entry_point.value}) is not an lstmkit.task.Task named {name!r}; "
                        "fix the entry point of the package that provides it")
    return task
