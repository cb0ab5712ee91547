"""Parsers for every protein format, on small slices of the shared files, and bad input."""

import logging

import pytest

from lstmkit.errors import UserError
from lstmkit.tasks.protein_ss import data


def slice_fasta(source, target, records):
    """The first ``records`` records of a FASTA file."""
    lines, count = [], 0
    for line in source.read_text().splitlines():
        if line.startswith(">"):
            count += 1
            if count > records:
                break
        lines.append(line)
    target.write_text("\n".join(lines) + "\n")


@pytest.fixture
def netsurfp_slice(shared_data, tmp_path):
    for name in data.NETSURFP_FILES:
        slice_fasta(shared_data / "protein_netsurfp2_flip" / name, tmp_path / name, 30)
    return tmp_path


def test_eight_states_map_to_three_the_standard_way():
    assert data.eight_to_three("HGIEBTSC") == "HHHEECCC"
    assert data.parse_structure("HG-ELTS", "AAAAAAA", "r") == ("HHCECCC", "HGCECTS")
    assert data.parse_structure("HEC", "AAA", "r") == ("HEC", None)


def test_netsurfp_layout_reads_aligned_records_with_masks_and_splits(netsurfp_slice, shared_data):
    chains = data.read_source(str(netsurfp_slice))
    assert len(chains) == 30
    first = chains[0]
    assert first.id == "1es5-A" and first.split == "train" and first.ss8 is None
    assert len(first.sequence) == len(first.ss3) == len(first.mask)
    assert first.mask[:3] == [0, 0, 1]  # mask.fasta's first residues are unresolved
    assert set(first.ss3) <= set("HEC")


def test_netsurfp_validation_and_test_records(shared_data):
    chains = data.read_netsurfp(shared_data / "protein_netsurfp2_flip")
    counts = {split: sum(chain.split == split for chain in chains) for split in ("train", "validation", "test")}
    assert counts == {"train": 9712, "validation": 1080, "test": 364}


def test_hhblits_csv_has_eight_states_and_the_disorder_mask(shared_data, tmp_path):
    lines = (shared_data / "protein_cb513" / "CB513_HHblits.csv").read_text().splitlines()
    path = tmp_path / "CB513_HHblits.csv"
    path.write_text("\n".join(lines[:6]) + "\n")
    chains = data.read_source(str(path))
    assert len(chains) == 5 and chains[0].id == "CB513|0"
    for chain in chains:
        assert data.eight_to_three(chain.ss8) == chain.ss3
        assert len(chain.mask) == len(chain.sequence) and set(chain.mask) <= {0, 1}


def test_labelled_fasta_and_tsv(tmp_path):
    fasta = tmp_path / "mine.fasta"
    fasta.write_text(">one\nmkvl\nCHHE\n>two desc\nACDX\nGHIB\n")
    chains = data.read_source(str(fasta))
    assert [c.sequence for c in chains] == ["MKVL", "ACDX"]  # lower case accepted
    assert chains[1].ss8 == "GHIB" and chains[1].ss3 == "HHHE"
    tsv = tmp_path / "mine.tsv"
    tsv.write_text("id\tsequence\tstructure\na\tMKV\tCHE\n")
    assert [(c.id, c.ss3) for c in data.read_source(str(tsv))] == [("a", "CHE")]


def test_letters_outside_the_alphabet_become_x_with_one_warning(tmp_path, caplog):
    fasta = tmp_path / "odd.fasta"
    fasta.write_text(">a\nMJVJ\nCCCC\n>b\nAJA\nCCC\n")
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        chains = data.read_source(str(fasta))
    assert chains[0].sequence == "MXVX"
    assert caplog.text.count("read as X") == 1 and "J" in caplog.text


@pytest.mark.parametrize("text, message", [
    (">a\nMKV\nCH\n", "record a: structure has 2 states for 3 residues"),
    (">a\n\n>b\nMK\nCC\n", "record a has no sequence"),
    (">a\nM1V\nCCC\n", "'1' at residue 2"),
    (">a\nMKV\nCQC\n", "unknown structure state(s) Q"),
    ("MKV\nCCC\n", "text before the first '>' header"),
])
def test_bad_records_name_the_record(tmp_path, text, message):
    path = tmp_path / "bad.fasta"
    path.write_text(text)
    with pytest.raises(UserError) as error:
        data.read_source(str(path))
    assert message in str(error.value)


def test_misaligned_netsurfp_files_are_refused(netsurfp_slice):
    slice_fasta(netsurfp_slice / "sampled.fasta", netsurfp_slice / "sampled.fasta", 29)
    with pytest.raises(UserError, match="different numbers of records"):
        data.read_source(str(netsurfp_slice))
