"""Reading Speech Commands and FSDD layouts, speaker-disjoint splits, refused files."""

import logging
import shutil
import tarfile

import numpy as np
import pytest

from lstmkit.errors import UserError
from lstmkit.tasks.speech_commands import data as speech_data
from lstmkit.tasks.speech_commands.config import DataConfig, SpeechConfig
from lstmkit.tasks.speech_commands.task import TASK
from tests.lstmkit.test_wav import wav_bytes

# 96 clips are too few for 10% validation and test splits by speaker.
QUARTERS = SpeechConfig(data=DataConfig(validation_percentage=25, testing_percentage=25))


def labels_of(dataset):
    return [label.decode() for _, label in dataset.as_numpy_iterator()]


def test_speaker_comes_from_the_name_before_nohash():
    assert speech_data.speaker_of("0a7c2a8d_nohash_0.wav") == "0a7c2a8d"
    assert speech_data.speaker_of("bed_0a7c2a8d_nohash_1.wav.wav") == "0a7c2a8d"
    assert speech_data.speaker_of("17.wav") == "17"


def test_hashed_split_is_stable_and_close_to_its_percentages():
    speakers = [f"speaker{i}" for i in range(4000)]
    splits = [speech_data.hashed_split(s, 10, 10, salt=0) for s in speakers]
    assert splits == [speech_data.hashed_split(s, 10, 10, salt=0) for s in speakers]
    assert splits != [speech_data.hashed_split(s, 10, 10, salt=1) for s in speakers]
    assert 0.08 < splits.count("validation") / 4000 < 0.12 and 0.08 < splits.count("test") / 4000 < 0.12


def test_speech_commands_folder_is_split_by_speaker(speech_slice):
    config = QUARTERS
    clips, skipped, layout = speech_data.read_folder(str(speech_slice), config.data, 1.0)
    assert len(clips) == 96 and not skipped and layout == "Speech Commands layout"
    assert sorted(set(clips.labels)) == sorted(TASK.bind(config).placeholder_preprocessing().labels)
    splits = speech_data.assign_splits(clips, config.data)
    speakers = {name: {s for s, split in zip(clips.speakers, splits) if split == name}
                for name in ("train", "validation", "test")}
    assert all(speakers.values())
    assert not (speakers["train"] & speakers["validation"] or speakers["train"] & speakers["test"]
                or speakers["validation"] & speakers["test"])


def test_speaker_folds_partition_the_speakers(speech_slice):
    clips, _, _ = speech_data.read_folder(str(speech_slice), DataConfig(), 1.0)
    tests = []
    for fold in range(3):
        splits = speech_data.assign_splits(clips, DataConfig(folds=3, fold=fold))
        tests.append({s for s, split in zip(clips.speakers, splits) if split == "test"})
        trained = {s for s, split in zip(clips.speakers, splits) if split != "test"}
        assert not tests[-1] & trained
    assert not (tests[0] & tests[1] or tests[0] & tests[2] or tests[1] & tests[2])
    assert set.union(*tests) == set(clips.speakers)


def test_list_files_decide_the_splits(speech_slice, tmp_path):
    folder = tmp_path / "listed"
    shutil.copytree(speech_slice, folder)
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.wav"))
    (folder / "validation_list.txt").write_text("\n".join(names[:10]) + "\n")
    (folder / "testing_list.txt").write_text("\n".join(names[10:30]) + "\n")
    clips, _, layout = speech_data.read_folder(str(folder), DataConfig(), 1.0)
    assert "lists" in layout
    splits = speech_data.assign_splits(clips, DataConfig())
    assert splits.count("validation") == 10 and splits.count("test") == 20 and splits.count("train") == 66


def test_archive_reads_like_the_folder_and_background_noise_becomes_silence(speech_slice, tmp_path):
    folder = tmp_path / "noise"
    shutil.copytree(speech_slice, folder)
    shutil.rmtree(folder / "_silence_")
    (folder / "_background_noise_").mkdir()
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, 16_000 * 5 + 100)
    (folder / "_background_noise_" / "white.wav").write_bytes(wav_bytes(noise))
    archive = tmp_path / "speech.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="speech")
    clips, _, _ = speech_data.read_folder(str(archive), DataConfig(), 1.0)
    assert clips.labels.count("_silence_") == 5  # five whole seconds of noise
    assert len(clips) == 88 + 5


def test_fsdd_keeps_its_official_test_indices(fsdd_slice):
    config = SpeechConfig()
    splits = TASK.bind(config).load_data(str(fsdd_slice))
    assert "Free Spoken Digit" in splits.description
    test = list(splits.test.as_numpy_iterator())
    assert len(test) == 2 * 10 * 5  # indices 0-4 of two speakers, ten digits
    waveform, _ = test[0]
    assert waveform.shape == (16_000,) and waveform.dtype == np.float32  # 8 kHz → 16 kHz, padded
    assert len(labels_of(splits.train)) + len(labels_of(splits.validation)) == 60


def test_leave_one_speaker_out_validates_on_the_other_speakers_clips(fsdd_slice):
    """Two FSDD speakers, two folds: each fold tests one whole speaker; 10% of one speaker
    rounds to no speaker, so validation is a share of the other speaker's clips."""
    clips, _, _ = speech_data.read_folder(str(fsdd_slice), DataConfig(), 1.0)
    tested = []
    for fold in range(2):
        splits = speech_data.assign_splits(clips, DataConfig(folds=2, fold=fold))
        by_split = {name: [s for s, split in zip(clips.speakers, splits) if split == name]
                    for name in ("train", "validation", "test")}
        assert len(set(by_split["test"])) == 1 and len(by_split["test"]) == 80
        assert len(by_split["validation"]) == 8 and len(by_split["train"]) == 72
        assert set(by_split["train"]) == set(by_split["validation"]) != set(by_split["test"])
        assert splits == speech_data.assign_splits(clips, DataConfig(folds=2, fold=fold))
        tested.append(by_split["test"][0])
    assert sorted(tested) == ["george", "jackson"]


def test_bad_files_are_listed_with_a_count_and_skipped(speech_slice, tmp_path, caplog):
    folder = tmp_path / "bad"
    shutil.copytree(speech_slice, folder)
    (folder / "yes" / "stereo.wav").write_bytes(wav_bytes(channels=2))
    (folder / "no" / "notes.wav").write_bytes(b"not audio at all")
    (folder / "up" / "long.wav").write_bytes(wav_bytes(frames=30 * 16_000))
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        splits = TASK.bind(QUARTERS).load_data(str(folder))
    text = caplog.text
    assert "skipping 3 of 99 .wav files" in text
    assert "yes/stereo.wav: 2 channels" in text and "no/notes.wav: not a WAV file" in text
    assert "up/long.wav: 30.0 s long" in text
    assert sum(1 for _ in splits.train) + sum(1 for _ in splits.validation) + sum(1 for _ in splits.test) == 96


def test_nothing_usable_is_a_clear_error(tmp_path):
    for label in ("yes", "no"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "a_nohash_0.wav").write_bytes(wav_bytes(width=1))
    with pytest.raises(UserError, match="no usable clips .* all 2 .wav files were refused .*8-bit"):
        TASK.bind(SpeechConfig()).load_data(str(tmp_path))


def test_refused_files_are_not_listed_when_the_data_is_refused_anyway(tmp_path, caplog):
    """An error is one line: the refused files go into it, not into warnings before it."""
    for label in ("yes", "no"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "a_nohash_0.wav").write_bytes(wav_bytes())
        (tmp_path / label / "b_nohash_0.wav").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        with pytest.raises(UserError, match=r"leaves no clips for the .* split .*2 of 4 \.wav files were refused"):
            TASK.bind(SpeechConfig()).load_data(str(tmp_path))
        with pytest.raises(UserError, match="no usable clips"):
            for label in ("yes", "no"):
                (tmp_path / label / "a_nohash_0.wav").write_bytes(b"")
            TASK.bind(SpeechConfig()).load_data(str(tmp_path))
    assert caplog.text == ""


@pytest.mark.slow  # a new process that imports TensorFlow
def test_a_folder_of_empty_wav_files_is_one_line_from_the_cli(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    speech = tmp_path / "speech"
    for name in ("yes/a.wav", "yes/c.wav", "no/b.wav", "no/d.wav"):
        (speech / name).parent.mkdir(parents=True, exist_ok=True)
        (speech / name).write_bytes(b"")
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "train", "speech_commands", "--data", str(speech),
                           "--preset", "tiny", "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("Error: no usable clips") and "all 4 .wav files were refused" in lines[0]
    assert "not a WAV file" in lines[0] and "ffmpeg" in lines[0]  # the problem and the fix
    assert not (tmp_path / "runs").exists()


def test_sources_without_audio_are_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(UserError, match="holds no .wav files"):
        TASK.bind(SpeechConfig()).load_data(str(tmp_path))
    with pytest.raises(UserError, match="does not exist"):
        TASK.bind(SpeechConfig()).load_data(str(tmp_path / "missing"))


def test_tfds_offline_fails_fast_with_the_local_alternatives(offline):
    import time

    started = time.monotonic()
    with pytest.raises(UserError, match="or the data source 'builtin'"):
        TASK.bind(SpeechConfig()).load_data("tfds:speech_commands")
    assert time.monotonic() - started < 30


def test_builtin_clips_are_synthetic_keywords_in_twelve_classes():
    config = SpeechConfig(data=DataConfig(builtin_clips_per_class=10))
    splits = TASK.bind(config).load_data("builtin")
    labels = labels_of(splits.train) + labels_of(splits.validation) + labels_of(splits.test)
    assert len(labels) == 120 and len(set(labels)) == 12
    assert "synthetic" in splits.description


def test_keywords_turn_every_other_word_into_unknown(speech_slice):
    settings = DataConfig(keywords=("yes", "no"))
    clips, _, _ = speech_data.read_folder(str(speech_slice), settings, 1.0)
    assert sorted(set(clips.labels)) == ["_silence_", "_unknown_", "no", "yes"]
    assert clips.labels.count("_unknown_") == 9 * 8  # eight other words and the old _unknown_


def test_a_tfds_dataset_without_audio_is_refused_before_any_download(offline):
    with pytest.raises(UserError, match="has no 'audio' and 'label' features"):
        TASK.bind(SpeechConfig()).load_data("tfds:mnist")


def test_a_source_that_is_neither_folder_nor_archive_is_named_so(tmp_path):
    """A FIFO or device used to read as a folder without .wav files."""
    import os

    fifo = tmp_path / "clips"
    os.mkfifo(fifo)
    single = tmp_path / "clip.wav"
    single.write_bytes(b"RIFF")
    for source in (fifo, "/dev/zero", single):
        with pytest.raises(UserError, match="is neither a folder nor a tar archive"):
            speech_data.read_folder(str(source), DataConfig(), 1.0)
