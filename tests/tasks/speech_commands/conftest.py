"""A small slice of the real Free Spoken Digit clips, written once per session in its
own layout (the Speech Commands slice is in tests/task_runs.py)."""

from pathlib import Path

import pytest

from tests.task_runs import extract

FSDD_ARCHIVE = "fsdd/fsdd_recordings.tar.xz"


@pytest.fixture(scope="session")
def fsdd_slice(shared_data, tmp_path_factory) -> Path:
    """FSDD layout: two speakers, every digit, indices 0-7 (160 clips at 8 kHz)."""
    target = tmp_path_factory.mktemp("fsdd") / "recordings"

    def keep(name):
        digit, speaker, index = name.split("/")[-1][:-4].split("_")
        return speaker in ("george", "jackson") and int(index) < 8

    extract(shared_data / FSDD_ARCHIVE, keep, target)
    return target
