"""Reading keyword clips: Speech Commands and Free Spoken Digit folders or archives,
TensorFlow Datasets' ``speech_commands``, and synthetic ``builtin`` clips.

Every clip is read with ``lstmkit.wav.read_wav``; files it refuses are listed (with
a count) and skipped, never silently. Clips keep their own sample rate here; the task
resamples them to 16 kHz with the same graph code the exported model uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np

from lstmkit.wav import AudioFileError, read_wav
from lstmkit.data import is_archive, iter_archive_files, read_bytes, require_path
from lstmkit.errors import UserError

logger = logging.getLogger("lstmkit")

SILENCE, UNKNOWN = "_silence_", "_unknown_"
BACKGROUND_NOISE = "_background_noise_"
LIST_FILES = {"validation": "validation_list.txt", "test": "testing_list.txt"}
# Free Spoken Digit Dataset: <digit>_<speaker>_<index>.wav; indices 0-4 are its test set.
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
FSDD_TEST_INDICES = range(5)
# Speech Commands' split hashing (input_data.which_set in TensorFlow's example), salted.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
SOURCE_HINT = ("the data source must be a folder or .tar.gz/.tar.xz in the Speech Commands layout "
               "(<label>/*.wav), a Free Spoken Digit Dataset folder, or 'builtin'")
# How many refused files are named one by one before the rest are only counted.
LISTED_SKIPS = 10


@dataclasses.dataclass
class Clips:
    """Clips at their own sample rates, with labels, speakers and split names."""

    waveforms: list = dataclasses.field(default_factory=list)
    rates: list = dataclasses.field(default_factory=list)
    labels: list = dataclasses.field(default_factory=list)
    speakers: list = dataclasses.field(default_factory=list)
    # "train", "validation" or "test" where the source says; None where it does not.
    splits: list = dataclasses.field(default_factory=list)

    def add(self, waveform, rate, label, speaker, split=None):
        self.waveforms.append(waveform)
        self.rates.append(rate)
        self.labels.append(label)
        self.speakers.append(speaker)
        self.splits.append(split)

    def __len__(self):
        return len(self.labels)


def speaker_of(file_name: str) -> str:
    """Speech Commands names clips ``<speaker>_nohash_<n>.wav``; its test set's
    ``_unknown_`` clips put the word first (``<word>_<speaker>_nohash_<n>.wav``)."""
    stem = file_name.split("_nohash_")[0] if "_nohash_" in file_name else file_name.split(".")[0]
    return stem.split("_")[-1]


def hashed_split(speaker: str, validation_percentage: float, testing_percentage: float, salt: int) -> str:
    """Speech Commands' split rule: a stable percentage from the SHA-1 of the speaker
    (salted: the published test set is, by this rule unsalted, all one split)."""
    digest = int(hashlib.sha1(f"{salt}:{speaker}".encode("utf-8")).hexdigest(), 16)
    percentage = (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "test"
    return "train"


def speaker_folds(speakers: list[str], folds: int, seed: int) -> dict[str, int]:
    """Deal the distinct speakers, in a seeded order, into ``folds`` groups."""
    distinct = sorted(set(speakers))
    order = np.random.default_rng(seed).permutation(len(distinct))
    return {distinct[index]: position % folds for position, index in enumerate(order)}


def _files(path: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    """(path inside the source, bytes) of every file in a folder or tar archive."""
    if is_archive(path):
        for name, data in iter_archive_files(path):
            yield PurePosixPath(name), data
    else:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                yield PurePosixPath(file.relative_to(path).as_posix()), read_bytes(file)


def _strip_common_folder(files: dict) -> dict:
    """Archives usually hold one top folder (``speech_commands_test_set_v0.02/``)."""
    while files:
        tops = {name.parts[0] for name in files}
        if len(tops) != 1 or any(len(name.parts) < 2 for name in files):
            break
        files = {PurePosixPath(*name.parts[1:]): data for name, data in files.items()}
    return files


def read_folder(source: str, settings, clip_seconds: float) -> tuple[Clips, list[tuple[str, str]], str]:
    """Read a Speech Commands or Free Spoken Digit folder or archive (``settings``:
    the data config; ``clip_seconds``: the length background noise is cut into).

    Returns the usable clips, the refused files with reasons, and the layout's name.
    """
    path = require_path(source, "data source", SOURCE_HINT)
    if not path.is_dir() and not is_archive(path):  # a FIFO or device too, not only a plain file
        raise UserError(f"{path} is neither a folder nor a tar archive; {SOURCE_HINT}")
    files = _strip_common_folder({name: data for name, data in _files(path)
                                  if not name.name.startswith(".") and "__MACOSX" not in name.parts})
    waves = {name: data for name, data in files.items() if name.name.lower().endswith(".wav")}
    if not waves:
        raise UserError(f"{path} holds no .wav files; {SOURCE_HINT}")
    clips, skipped = Clips(), []
    top_level = [name for name in waves if len(name.parts) == 1]
    if top_level and all(FSDD_NAME.match(name.name) for name in top_level):
        for name in sorted(top_level):
            digit, speaker, index = FSDD_NAME.match(name.name).groups()
            split = "test" if int(index) in FSDD_TEST_INDICES else None
            _add_clip(clips, skipped, name, waves[name], settings.max_seconds, digit, speaker, split)
        return clips, skipped, "Free Spoken Digit Dataset layout (indices 0-4: test)"

    listed = {}
    for split, list_name in LIST_FILES.items():
        list_path = PurePosixPath(list_name)
        if list_path in files:
            for line in files[list_path].decode("utf-8", errors="replace").splitlines():
                if line.strip():
                    listed[PurePosixPath(line.strip())] = split
    keywords = set(settings.keywords)
    for name in sorted(waves):
        if len(name.parts) != 2:
            skipped.append((str(name), "not in a <label>/ folder"))
            continue
        label = name.parts[0]
        if label == BACKGROUND_NOISE:
            continue
        if keywords and label not in keywords and label != SILENCE:
            label = UNKNOWN
        split = listed.get(name, "train") if listed else None
        _add_clip(clips, skipped, name, waves[name], settings.max_seconds, label, speaker_of(name.name), split)
    if SILENCE not in clips.labels:
        _add_background_noise(clips, skipped, waves, clip_seconds)
    lists = " with its validation/testing lists" if listed else ""
    return clips, skipped, f"Speech Commands layout{lists}"


def _add_clip(clips, skipped, name, data, max_seconds, label, speaker, split):
    try:
        waveform, rate = read_wav(data, max_seconds)
    except AudioFileError as error:
        skipped.append((str(name), str(error)))
        return
    clips.add(waveform, rate, label, speaker, split)


def _add_background_noise(clips, skipped, waves, clip_seconds):
    """Without a ``_silence_`` folder, cut ``_background_noise_/*.wav`` into clips
    labelled ``_silence_``, as Speech Commands' own pipeline does; each slice is its
    own "speaker", so slices of one recording spread over the splits."""
    for name in sorted(waves):
        if name.parts[0] != BACKGROUND_NOISE:
            continue
        try:
            waveform, rate = read_wav(waves[name])
        except AudioFileError as error:
            skipped.append((str(name), str(error)))
            continue
        step = int(round(clip_seconds * rate))
        for start in range(0, len(waveform) - step + 1, step):
            clips.add(waveform[start:start + step], rate, SILENCE, f"{name.name}#{start // step}")


def report_skipped(skipped: list[tuple[str, str]], total: int, source: str) -> None:
    """Log every refused file (the first LISTED_SKIPS by name) and the count."""
    if not skipped:
        return
    logger.warning("skipping %d of %d .wav files in %s that cannot be used:", len(skipped), total, source)
    for name, reason in skipped[:LISTED_SKIPS]:
        logger.warning("  %s: %s", name, reason)
    if len(skipped) > LISTED_SKIPS:
        logger.warning("  ... and %d more", len(skipped) - LISTED_SKIPS)


def seeded_share(items: list, percentage: float, seed: int, at_least: int = 0) -> set:
    """``percentage`` % of ``items`` (rounded, at least ``at_least``), picked in a seeded order."""
    count = max(at_least, int(round(len(items) * percentage / 100)))
    return set(np.random.default_rng(seed).permutation(items)[:count].tolist())


def assign_splits(clips: Clips, settings) -> list[str]:
    """The split of every clip: speaker folds when ``settings.folds`` is set; else the
    source's own split where it has one (list files, FSDD's test indices), and
    Speech Commands' speaker hashing (or, for FSDD's training part, a seeded share
    of files: its six speakers are in every split) for the rest."""
    if settings.folds:
        fold_of = speaker_folds(clips.speakers, settings.folds, settings.split_seed)
        rest = sorted({s for s in clips.speakers if fold_of[s] != settings.fold})
        held = seeded_share(rest, settings.validation_percentage, settings.split_seed + 1)
        if held or not settings.validation_percentage:
            return ["test" if fold_of[s] == settings.fold else "validation" if s in held else "train"
                    for s in clips.speakers]
        # Too few speakers to hold whole ones out (leave-one-speaker-out over FSDD's six
        # leaves five): validation is a seeded share of the training speakers' clips, so
        # it measures speakers already heard; the test speaker stays unheard.
        open_indices = [i for i, s in enumerate(clips.speakers) if fold_of[s] != settings.fold]
        held = seeded_share(open_indices, settings.validation_percentage, settings.split_seed + 1, at_least=1)
        return ["test" if fold_of[s] == settings.fold else "validation" if i in held else "train"
                for i, s in enumerate(clips.speakers)]
    if any(split is not None for split in clips.splits):
        if all(split is not None for split in clips.splits):
            return list(clips.splits)
        # FSDD: the official test part is given; validation comes out of the rest.
        open_indices = [i for i, split in enumerate(clips.splits) if split is None]
        held = seeded_share(open_indices, settings.validation_percentage, settings.split_seed)
        return [split or ("validation" if i in held else "train") for i, split in enumerate(clips.splits)]
    return [hashed_split(speaker, settings.validation_percentage, settings.testing_percentage, settings.split_seed)
            for speaker in clips.speakers]
