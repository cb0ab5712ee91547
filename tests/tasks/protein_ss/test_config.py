import json

import pytest

from lstmkit import config as config_lib
from lstmkit.errors import UserError
from lstmkit.tasks.protein_ss.config import TINY, ProteinConfig


def test_lists_are_tuples_set_as_comma_separated_numbers():
    config = config_lib.apply_overrides(ProteinConfig(), ["data.bucket_boundaries=50, 150,500",
                                                          "conv_kernel_sizes=5"])
    assert config.data.bucket_boundaries == (50, 150, 500) and config.conv_kernel_sizes == (5,)
    # No boundaries at all: one bucket.
    assert config_lib.apply_overrides(ProteinConfig(), ["data.bucket_boundaries="]).data.bucket_boundaries == ()
    # A finished run's config.json holds JSON lists and reads back the same.
    saved = json.loads(json.dumps(config_lib.to_dict(TINY)))
    assert saved["data"]["bucket_boundaries"] == [100, 200]
    assert config_lib.from_dict(ProteinConfig, saved) == TINY


def test_runs_saved_with_comma_separated_strings_still_load():
    saved = json.loads(json.dumps(config_lib.to_dict(TINY)))
    saved["data"]["bucket_boundaries"] = "100,200"
    saved["conv_kernel_sizes"] = "3,5"
    assert config_lib.from_dict(ProteinConfig, saved) == TINY


def test_states_is_set_by_its_number():
    assert config_lib.apply_overrides(ProteinConfig(), ["states=8"]).states == 8
    with pytest.raises(UserError, match=r"^states must be one of 3, 8, got '5'$"):
        config_lib.apply_overrides(ProteinConfig(), ["states=5"])


@pytest.mark.parametrize("override, message", [
    ("data.bucket_boundaries=200,100", r"data.bucket_boundaries must be increasing, got \(200, 100\)"),
    ("data.bucket_boundaries=100,100", r"data.bucket_boundaries must be increasing, got \(100, 100\)"),
    ("data.bucket_boundaries=100,0", r"data.bucket_boundaries\[1\] must be in \[1, 10000\], got 0"),
    ("conv_kernel_sizes=", "conv_kernel_sizes must hold 1 to 16 sizes, got 0"),
    ("conv_kernel_sizes=" + ",".join(map(str, range(1, 18))), "conv_kernel_sizes must hold 1 to 16 sizes, got 17"),
    ("conv_kernel_sizes=3,3", r"conv_kernel_sizes must not repeat a size, got \(3, 3\)"),
    ("conv_kernel_sizes=3,20000", r"conv_kernel_sizes\[1\] must be in \[1, 10000\], got 20000"),
])
def test_bad_lists_name_the_problem(override, message):
    with pytest.raises(UserError, match=f"^{message}$"):
        config_lib.apply_overrides(ProteinConfig(), [override])
