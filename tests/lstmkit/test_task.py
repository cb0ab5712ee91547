"""The task contract's typed preprocessing state and its JSON form."""

import dataclasses

import pytest

from lstmkit.errors import UserError
from lstmkit.task import Preprocessing


@dataclasses.dataclass(frozen=True)
class Vocabulary(Preprocessing):
    tokens: list[str]
    # A field added after runs were saved: their preprocessing.json lacks it.
    lowercase: bool = True


def test_preprocessing_round_trips_through_json_and_reads_older_files():
    state = Vocabulary(["", "[UNK]", "good"], lowercase=False)
    assert Vocabulary.from_json(state.to_json()) == state
    assert Vocabulary.from_json({"tokens": ["a"]}) == Vocabulary(["a"], lowercase=True)


@pytest.mark.parametrize("saved, fragment", [
    ({"tokens": [], "labels": ["x"]}, "holds labels, which Vocabulary does not have"),
    ({"lowercase": True}, "is incomplete for Vocabulary"),
])
def test_preprocessing_of_another_task_or_an_incomplete_file_is_one_clear_line(saved, fragment):
    with pytest.raises(UserError, match=fragment) as caught:
        Vocabulary.from_json(saved, "runs/x/preprocessing.json")
    assert str(caught.value).startswith("runs/x/preprocessing.json") and "\n" not in str(caught.value)
