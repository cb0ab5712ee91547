"""lstmkit's own tasks, installed as ``lstmkit.tasks`` (this folder is mapped to that
package name by ``pyproject.toml``, so nothing of ours is installed as ``tasks``).

Each ``<name>/task.py`` defines ``TASK``, an instance of ``lstmkit.task.Task``, and
``pyproject.toml`` registers it in the ``lstmkit.tasks`` entry-point group, the same
way a package of someone else's adds a task (see ``lstmkit.registry``).
"""
