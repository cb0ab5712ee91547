"""Small slices of the real Speech Commands and Free Spoken Digit clips, written once
per session in their own layouts."""

import collections
import tarfile
from pathlib import Path

import pytest

SPEECH_ARCHIVE = "speech_commands_v002_test/speech_commands_test_set_v0.02.tar.xz"
FSDD_ARCHIVE = "fsdd/fsdd_recordings.tar.xz"


def extract(archive: Path, keep, target: Path) -> list[Path]:
    """Copy the archive members ``keep(name)`` accepts under ``target`` (top folder dropped)."""
    written = []
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar:
            name = "/".join(member.name.split("/")[1:])
            if member.isfile() and name.endswith(".wav") and keep(name):
                path = target / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tar.extractfile(member).read())
                written.append(path)
    return written


@pytest.fixture(scope="session")
def speech_slice(shared_data, tmp_path_factory) -> Path:
    """Speech Commands layout: 8 clips of each of the 12 classes (96 clips), every
    40th file, so that (in the archive's name order) they come from many speakers."""
    target = tmp_path_factory.mktemp("speech") / "speech_commands"
    taken = collections.Counter()

    def keep(name):
        label = name.split("/")[0]
        taken[label] += 1
        return taken[label] % 40 == 1 and taken[label] <= 8 * 40

    extract(shared_data / SPEECH_ARCHIVE, keep, target)
    return target


@pytest.fixture(scope="session")
def fsdd_slice(shared_data, tmp_path_factory) -> Path:
    """FSDD layout: two speakers, every digit, indices 0-7 (160 clips at 8 kHz)."""
    target = tmp_path_factory.mktemp("fsdd") / "recordings"

    def keep(name):
        digit, speaker, index = name.split("/")[-1][:-4].split("_")
        return speaker in ("george", "jackson") and int(index) < 8

    extract(shared_data / FSDD_ARCHIVE, keep, target)
    return target
