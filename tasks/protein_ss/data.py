"""Reading protein chains with secondary-structure labels.

Formats (``read_source`` picks by what it finds):
- the NetSurfP-2.0 training layout: ``sequences.fasta``, ``sampled.fasta`` (3-state labels;
  headers carry ``SET=train|test`` and ``VALIDATION=True|False``) and an optional
  ``mask.fasta`` (1 = resolved, scored; 0 = unresolved), the same records in the same order;
- the NetSurfP-2.0/ProtTrans "HHblits" CSVs of CB513 and TS115 (header
  ``input, dssp3, dssp8, disorder, cb513_mask``; every field a space-separated token per
  residue);
- users' own labelled chains: FASTA records of a header, a sequence line and a structure
  line, or a TSV of ``id, sequence, structure``;
- ``tfds:cullpdb_profile``: Zhou & Troyanskaya's CullPDB/CB513 data with 8-state labels and
  sequence profiles (PSSM), through the TFDS builder in ``cullpdb_profile.py``.

Sequences are upper-cased; a letter outside ``ALPHABET`` becomes ``X`` (unknown residue)
with one warning per source. Structures may be 3-state (H, E, C) or 8-state DSSP (H G I
E B T S C, also "-" or "L" for coil); 8-state is reduced to 3-state the standard way:
H, G, I → H; E, B → E; everything else → C.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import numpy as np

from lstmkit.data import load_tfds, read_csv_rows, read_fasta, read_text, require_path
from lstmkit.errors import UserError

logger = logging.getLogger("lstmkit")

# The 20 standard amino acids, then X (unknown), B (D or N), Z (E or Q), U
# (selenocysteine) and O (pyrrolysine).
ALPHABET = "ACDEFGHIKLMNPQRSTVWY" + "XBZUO"
STATES_3 = "HEC"
STATES_8 = "HGIEBTSC"
EIGHT_TO_THREE = {"H": "H", "G": "H", "I": "H", "E": "E", "B": "E", "T": "C", "S": "C", "C": "C"}
# DSSP writes coil as a blank, "-" or "L" depending on the tool.
COIL_ALIASES = {"-": "C", "L": "C", " ": "C", ".": "C"}
NETSURFP_FILES = ("sequences.fasta", "sampled.fasta", "mask.fasta")
HHBLITS_FIELDS = ("input", "dssp3", "dssp8", "disorder", "cb513_mask")
SOURCE_HINT = ("the data source must be a NetSurfP-2.0 folder (sequences.fasta + sampled.fasta [+ mask.fasta]), "
               "a CB513/TS115 *_HHblits.csv, a FASTA of header/sequence/structure records, a "
               "TSV of id, sequence, structure, or tfds:cullpdb_profile")
TFDS_HINT = ("put cullpdb+profile_5926_filtered.npy.gz and cb513+profile_split1.npy.gz in TFDS's manual "
             "folder (~/tensorflow_datasets/downloads/manual/), or use a NetSurfP-2.0 folder as the data source")


@dataclasses.dataclass
class Chain:
    """One labelled chain. ``mask`` holds 1 for residues that count (resolved) and 0
    for those that do not; ``split`` is the source's own split name, if it has one;
    ``profile`` the per-residue sequence profile (residues x profile columns), if any."""

    id: str
    sequence: str
    ss3: str
    ss8: str | None = None
    mask: list[int] | None = None
    split: str | None = None
    profile: np.ndarray | None = None

    def piece(self, start: int, end: int, suffix: str = "") -> "Chain":
        """Residues ``start:end`` with their labels, mask and profile."""
        return Chain(self.id + suffix, self.sequence[start:end], self.ss3[start:end],
                     self.ss8[start:end] if self.ss8 else None, self.mask[start:end] if self.mask else None,
                     self.split, self.profile[start:end] if self.profile is not None else None)


def eight_to_three(structure: str) -> str:
    return "".join(EIGHT_TO_THREE[state] for state in structure)


def clean_sequence(sequence: str, record: str, unknown: set) -> str:
    """Upper-case; letters outside ALPHABET become X (collected in ``unknown``)."""
    sequence = re.sub(r"\s+", "", sequence).upper()
    if not sequence:
        raise UserError(f"record {record} has an empty sequence; remove it or add its residues")
    if not sequence.isalpha():
        bad = next(char for char in sequence if not char.isalpha())
        position = sequence.index(bad) + 1
        raise UserError(f"record {record} has {bad!r} at residue {position}; sequences are letters only")
    outside = set(sequence) - set(ALPHABET)
    if outside:
        unknown.update(outside)
        sequence = "".join(char if char in ALPHABET else "X" for char in sequence)
    return sequence


def parse_structure(structure: str, sequence: str, record: str) -> tuple[str, str | None]:
    """(3-state, 8-state or None) from a structure string of either alphabet."""
    structure = "".join(COIL_ALIASES.get(char, char) for char in structure.strip().upper())
    if len(structure) != len(sequence):
        raise UserError(f"record {record}: structure has {len(structure)} states for {len(sequence)} "
                        "residues; they must be the same length")
    states = set(structure)
    if states <= set(STATES_3):
        return structure, None
    if states <= set(STATES_8):
        return eight_to_three(structure), structure
    bad = sorted(states - set(STATES_8))
    raise UserError(f"record {record}: unknown structure state(s) {', '.join(bad)}; "
                    "use H/E/C or DSSP's H G I E B T S C")


def read_netsurfp(folder: Path) -> list[Chain]:
    """The three aligned FASTA files of NetSurfP-2.0's training data."""
    sequences = read_fasta(read_text(folder / "sequences.fasta"), str(folder / "sequences.fasta"))
    labels = read_fasta(read_text(folder / "sampled.fasta"), str(folder / "sampled.fasta"))
    masks = (read_fasta(read_text(folder / "mask.fasta"), str(folder / "mask.fasta"))
             if (folder / "mask.fasta").is_file() else None)
    if len(labels) != len(sequences) or (masks is not None and len(masks) != len(sequences)):
        raise UserError(f"{folder}: sequences.fasta, sampled.fasta and mask.fasta hold different numbers "
                        "of records; they must list the same chains in the same order")
    chains, unknown = [], set()
    for index, (header, lines) in enumerate(sequences):
        label_header, label_lines = labels[index]
        chain_id = header.split()[0]
        if label_header.split()[0] != chain_id:
            raise UserError(f"{folder}: record {index + 1} is {chain_id} in sequences.fasta but "
                            f"{label_header.split()[0]} in sampled.fasta; the files must be aligned")
        sequence = clean_sequence("".join(lines), chain_id, unknown)
        ss3, ss8 = parse_structure("".join(label_lines), sequence, chain_id)
        mask = None
        if masks is not None:
            mask = [int(char) for char in "".join(masks[index][1])]
            if len(mask) != len(sequence):
                raise UserError(f"{folder}: mask of {chain_id} has {len(mask)} values for {len(sequence)} residues")
        fields = dict(part.split("=", 1) for part in label_header.split()[1:] if "=" in part)
        split = None
        if fields.get("SET") == "test":
            split = "test"
        elif fields.get("SET") == "train":
            split = "validation" if fields.get("VALIDATION") == "True" else "train"
        chains.append(Chain(chain_id, sequence, ss3, ss8, mask, split))
    warn_unknown(unknown, folder)
    return chains


def read_hhblits_csv(path: Path) -> list[Chain]:
    """A CB513/TS115 CSV. A residue counts where ``disorder`` is 1 (0 marks unresolved or
    disordered residues: ProtTrans's convention); ``cb513_mask`` is not used."""
    rows = read_csv_rows(read_text(path), str(path))
    header = [field.strip() for field in rows[0]] if rows else []
    if header[:3] != list(HHBLITS_FIELDS[:3]):
        raise UserError(f"{path} does not start with the header 'input, dssp3, dssp8, ...'; {SOURCE_HINT}")
    chains, unknown = [], set()
    for number, row in enumerate(rows[1:], 2):
        if not any(field.strip() for field in row):
            continue
        fields = dict(zip(header, (field.split() for field in row)))
        record = f"{path.name} row {number}"
        sequence = clean_sequence("".join(fields["input"]), record, unknown)
        ss3, _ = parse_structure("".join(fields["dssp3"]), sequence, record)
        _, ss8 = parse_structure("".join(fields["dssp8"]), sequence, record)
        mask = [1] * len(sequence)
        if "disorder" in fields:
            mask = [int(float(value)) for value in fields["disorder"]]
            if len(mask) != len(sequence):
                raise UserError(f"{record}: disorder has {len(mask)} values for {len(sequence)} residues")
        chains.append(Chain(f"{path.stem.split('_')[0]}|{number - 2}", sequence, ss3, ss8, mask, "test"))
    if not chains:
        raise UserError(f"{path} has a header but no chains")
    warn_unknown(unknown, path)
    return chains


def read_labelled_fasta(path: Path) -> list[Chain]:
    """Records of a header, a sequence line and a structure line."""
    chains, unknown = [], set()
    for header, lines in read_fasta(read_text(path), str(path)):
        record = header.split()[0] if header else "(no name)"
        if not lines:
            raise UserError(f"{path}: record {record} has no sequence")
        if len(lines) != 2:
            raise UserError(f"{path}: record {record} has {len(lines)} lines; a labelled record is a "
                            "sequence line and a structure line of the same length")
        sequence = clean_sequence(lines[0], record, unknown)
        chains.append(Chain(record, sequence, *parse_structure(lines[1], sequence, record)))
    warn_unknown(unknown, path)
    return chains


def read_tsv(path: Path) -> list[Chain]:
    """Rows of ``id, sequence, structure`` (a header row naming them is allowed)."""
    chains, unknown = [], set()
    for number, row in enumerate(read_csv_rows(read_text(path), str(path), delimiter="\t"), 1):
        if not row or not "".join(row).strip():
            continue
        if number == 1 and [field.strip().lower() for field in row[:3]] == ["id", "sequence", "structure"]:
            continue
        if len(row) < 3:
            raise UserError(f"{path} line {number}: expected id, sequence and structure separated by tabs")
        record = row[0].strip() or f"line {number}"
        sequence = clean_sequence(row[1], record, unknown)
        chains.append(Chain(record, sequence, *parse_structure(row[2], sequence, record)))
    if not chains:
        raise UserError(f"{path} has no chains")
    warn_unknown(unknown, path)
    return chains


def warn_unknown(letters: set, source) -> None:
    if letters:
        logger.warning("%s: residue letters %s are not amino acids lstmkit knows; read as X (unknown)",
                       source, ", ".join(sorted(letters)))


def read_tfds(name: str) -> list[Chain]:
    """Chains of a TFDS dataset with ``sequence`` and ``dssp8`` (and ``profile``) features."""
    from lstmkit.tasks.protein_ss import cullpdb_profile  # noqa: F401  (registers tfds:cullpdb_profile)

    splits = load_tfds(name, ["train", "validation", "test"], TFDS_HINT, as_supervised=False)
    if not {"sequence", "dssp8"} <= set(splits[0].element_spec):
        raise UserError(f"tfds:{name} has no 'sequence' and 'dssp8' features; use tfds:cullpdb_profile")
    chains, unknown = [], set()
    for split, dataset in zip(("train", "validation", "test"), splits):
        for number, example in enumerate(dataset.as_numpy_iterator()):
            record = example["id"].decode() if "id" in example else f"{split} {number}"
            sequence = clean_sequence(example["sequence"].decode(), record, unknown)
            ss3, ss8 = parse_structure(example["dssp8"].decode(), sequence, record)
            profile = example.get("profile")
            chains.append(Chain(record, sequence, ss3, ss8, None, split,
                                None if profile is None else profile.astype(np.float32)))
    warn_unknown(unknown, f"tfds:{name}")
    return chains


def read_source(source: str) -> list[Chain]:
    """Chains from a ``--data`` path (or ``tfds:NAME``), by what the path holds."""
    if source.startswith("tfds:"):
        return read_tfds(source[len("tfds:"):])
    path = require_path(source, "data source", SOURCE_HINT)
    if path.is_dir():
        if (path / "sequences.fasta").is_file() and (path / "sampled.fasta").is_file():
            return read_netsurfp(path)
        raise UserError(f"{path} is a folder without sequences.fasta and sampled.fasta; {SOURCE_HINT}")
    if path.suffix.lower() == ".csv":
        return read_hhblits_csv(path)
    if path.suffix.lower() in (".tsv", ".tab"):
        return read_tsv(path)
    return read_labelled_fasta(path)
