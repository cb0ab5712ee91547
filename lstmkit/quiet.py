"""Importing TensorFlow without its C++ start-up lines.

TensorFlow prints its oneDNN and CUDA notes while its shared libraries load, before
``TF_CPP_MIN_LOG_LEVEL`` can apply, so the only way to keep them out of a command's
output is to mute the stderr file descriptor during the import. Real import errors
still raise. Every process lstmkit starts imports TensorFlow through here.
"""

from __future__ import annotations

import os
import sys

# The C++ log lines after start-up (a spurious DT_BOOL "error" and the like) are
# noise for users; Python warnings and exceptions still show. Set
# TF_CPP_MIN_LOG_LEVEL=0 to see them all.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
