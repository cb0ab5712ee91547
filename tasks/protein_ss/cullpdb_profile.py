"""TensorFlow Datasets builder for Zhou & Troyanskaya's CullPDB/CB513 profile data (ICML 2014).

``--data tfds:cullpdb_profile`` (importing this module registers the builder with TFDS).
The source files are numpy arrays of ``N x 700 x 57`` per-residue features (see
``FEATURES``): the de-duplicated CullPDB set filtered against CB513 (5,365 chains) to train
on, and CB513 (514 rows: the longest chain is cut into two overlapping rows) to test on.

Splits: ``train`` is the CullPDB rows but the last ``VALIDATION_CHAINS``, ``validation``
those, ``test`` is CB513 (the file has no validation split of its own; 256 is the size of
the validation split of the unfiltered CullPDB set). Each example holds the sequence, its
8-state DSSP string and the 21-column sequence profile (PSSM, already squashed to 0..1 by
the authors), padding removed.

The files download from the authors' page when online. Offline, or if that page is gone,
put them in TFDS's manual folder (``~/tensorflow_datasets/downloads/manual/`` unless
``--data-dir`` says otherwise): ``MANUAL_DOWNLOAD_INSTRUCTIONS`` names them.
"""

from __future__ import annotations

import gzip

import numpy as np
import tensorflow_datasets as tfds

URL = "https://www.princeton.edu/~jzthree/datasets/ICML2014/"
FILES = {"cullpdb": "cullpdb+profile_5926_filtered.npy.gz", "cb513": "cb513+profile_split1.npy.gz"}
VALIDATION_CHAINS = 256
MAX_LENGTH = 700
# Per-residue columns, from the dataset's README: one-hot residue (its own letter order;
# the 22nd column marks padding), one-hot 8-state label ("L" is coil; the 9th column marks
# padding), N-/C-terminus flags, solvent accessibility (training-only), and the profile,
# whose columns follow PROFILE_LETTERS (a 22nd column is unused).
FEATURES = 57
RESIDUE_COLUMNS = slice(0, 22)
RESIDUE_LETTERS = "ACEDGFIHKMLNQPSRTWVYX"
LABEL_COLUMNS = slice(22, 31)
LABEL_LETTERS = "LBEGIHST"
PROFILE_COLUMNS = slice(35, 56)
PROFILE_LETTERS = "ACDEFGHIKLMNPQRSTVWXY"

MANUAL = (f"Download {FILES['cullpdb']} and {FILES['cb513']} (from {URL}, or a mirror of the "
          "ICML 2014 data such as Zenodo record 7764556) and put both files in the manual folder.")


def chains_from_array(array: np.ndarray, prefix: str, first_row: int = 0):
    """(id, sequence, 8-state DSSP with C for coil, profile) per row of the N x 700 x 57
    data; ids are ``prefix|row`` with rows counted from ``first_row``."""
    array = np.asarray(array).reshape(-1, MAX_LENGTH, FEATURES)
    for row, features in enumerate(array):
        residues = features[:, RESIDUE_COLUMNS]
        # A residue row has one of the 21 letters set; padding has none (or the 22nd).
        length = int((residues[:, :21].sum(-1) > 0).sum())
        if length == 0:
            continue
        features = features[:length]
        sequence = "".join(RESIDUE_LETTERS[i] for i in features[:, RESIDUE_COLUMNS][:, :21].argmax(-1))
        labels = features[:, LABEL_COLUMNS][:, :8].argmax(-1)
        structure = "".join(LABEL_LETTERS[i] for i in labels).replace("L", "C")
        yield f"{prefix}|{first_row + row}", sequence, structure, features[:, PROFILE_COLUMNS].astype(np.float32)


def read_array(path) -> np.ndarray:
    with gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb") as handle:
        return np.load(handle)


class CullpdbProfile(tfds.core.GeneratorBasedBuilder):
    """CullPDB (filtered against CB513) for training, CB513 for testing, with PSSM profiles."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "cullpdb+profile_5926_filtered and cb513+profile_split1."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL
    # TFDS looks for a builder's metadata files in the folder its module name implies
    # (lstmkit/tasks/protein_ss), but lstmkit.tasks is installed from the top-level
    # tasks/ folder: without this it fails to construct the builder at all.
    pkg_dir_path = tfds.core.Path(__file__).parent

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__.split("\n\n")[1],
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Text(),
                "sequence": tfds.features.Text(),
                "dssp8": tfds.features.Text(),
                "profile": tfds.features.Tensor(shape=(None, len(PROFILE_LETTERS)), dtype=np.float32),
            }),
            homepage=URL,
            citation="Zhou, J. and Troyanskaya, O. G. Deep supervised and convolutional generative "
                     "stochastic network for protein secondary structure prediction. ICML 2014.",
        )

    def _split_generators(self, dl_manager):
        paths = self._local_files(dl_manager)
        if paths is None:
            paths = dl_manager.download({key: URL + name for key, name in FILES.items()})
        cullpdb = read_array(paths["cullpdb"]).reshape(-1, MAX_LENGTH, FEATURES)
        return {
            "train": self._generate_examples(cullpdb[:-VALIDATION_CHAINS], "cullpdb", 0),
            "validation": self._generate_examples(cullpdb[-VALIDATION_CHAINS:], "cullpdb",
                                                  len(cullpdb) - VALIDATION_CHAINS),
            "test": self._generate_examples(read_array(paths["cb513"]), "cb513", 0),
        }

    @staticmethod
    def _local_files(dl_manager) -> dict | None:
        """The two files in the manual folder, if both are there."""
        try:
            folder = dl_manager.manual_dir
        except (AssertionError, ValueError):  # no manual folder, or an empty one
            return None
        paths = {key: folder / name for key, name in FILES.items()}
        return paths if all(path.exists() for path in paths.values()) else None

    def _generate_examples(self, array, prefix: str, first_row: int):
        for chain_id, sequence, structure, profile in chains_from_array(array, prefix, first_row):
            yield chain_id, {"id": chain_id, "sequence": sequence, "dssp8": structure, "profile": profile}
