"""The one exception type for mistakes a user can fix (bad paths, files, flags, config).

The CLI turns a ``UserError`` into a single line on stderr and exit code 2. Anything
else is a bug in lstmkit and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""
