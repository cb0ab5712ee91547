"""The tasks lstmkit knows, each in its own folder.

Each ``tasks/<name>/task.py`` defines ``TASK``, an instance of ``lstmkit.task.Task``.
The registry below names them without importing them, so ``cli.py --help`` stays fast.
"""

import importlib

TASK_NAMES = ("sentiment", "textgen", "speech_commands", "protein_ss")


def get_task(name: str):
    """Import and return the task object registered as ``name``."""
    if name not in TASK_NAMES:
        from lstmkit.errors import UserError

        raise UserError(f"unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)}")
    return importlib.import_module(f"tasks.{name}.task").TASK
