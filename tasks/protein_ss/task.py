"""The protein secondary-structure task wired onto the lstmkit task contract."""

from __future__ import annotations

import dataclasses

import numpy as np

from lstmkit.data import read_fasta_sequences, seeded_split
from lstmkit.errors import UserError
from lstmkit.task import (DataSplits, ExtraPredictInputs, InputFileOption, Objective, PredictInputs, PreparedInputs,
                          Preprocessing, Report, ServingSignature, Task)
from lstmkit.tasks.protein_ss import config as protein_config
from lstmkit.tasks.protein_ss import data as protein_data
from lstmkit.tasks.protein_ss.config import MAX_RESIDUES
from lstmkit.tasks.protein_ss.search_space import search_space
from lstmkit.tasks.protein_ss.metrics import sov

# Labels of residues that are not scored (unresolved, or padding).
NOT_SCORED = -1


def state_letters(config) -> str:
    return protein_data.STATES_3 if config.states == 3 else protein_data.STATES_8


@dataclasses.dataclass(frozen=True)
class ProteinPreprocessing(Preprocessing):
    #: The structure letters the model predicts, in output order.
    states: str
    #: Values per residue of the evolutionary profile the training data came with (0: none).
    profile_features: int = 0


class ProteinTask(Task, ExtraPredictInputs):
    """Per-residue secondary structure (3- or 8-state) of amino-acid sequences."""

    name = "protein_ss"
    config_class = protein_config.ProteinConfig
    preprocessing_class = ProteinPreprocessing
    objective = Objective("val_accuracy", "max")
    # evaluate's result always holds "confusion_matrix" and "labels": the matrix is drawn.
    report = Report(headline="q3", metrics=("accuracy", "macro_f1", "loss", "q3", "q8", "per_chain_accuracy", "sov"),
                    counts={"residues": "scored residues"}, plots=("confusion_matrix",))
    predict_inputs = PredictInputs(files=(InputFileOption(
        "fasta", "Read one input per FASTA record (its sequence lines joined) from FILE.", read_fasta_sequences),))
    # The model's module imports Keras, so it is imported where a model is built. It
    # registers no Keras objects of its own (its layers are lstmkit's, which the library
    # registers before loading), so custom_object_modules stays empty.
    # Public and downloaded on first use, as the other tasks' defaults are; the NetSurfP-2.0
    # folder the benchmarks train on has to be named (it is not on every machine).
    default_data = "tfds:cullpdb_profile"
    sources_hint = protein_data.SOURCE_HINT

    def tiny_config(self):
        return protein_config.TINY

    def search_space(self, hp, config):
        return search_space(hp, config)

    # --- data ----------------------------------------------------------------------
    def load_data(self, source: str) -> DataSplits:
        config = self.config
        chains = protein_data.read_source(source)
        settings = config.data
        if config.states == 8 and any(chain.ss8 is None for chain in chains):
            raise UserError(f"{source} has 3-state labels only; set the config value states to 3")
        long = next((chain for chain in chains if len(chain.sequence) > MAX_RESIDUES), None)
        if long is not None:
            raise UserError(f"chain {long.id} has {len(long.sequence):,} residues; at most {MAX_RESIDUES:,} "
                            "are accepted (cut it into domains first)")
        if all(chain.split is None for chain in chains):
            kept, test = seeded_split(len(chains), settings.test_fraction, settings.split_seed)
            held = set(kept[seeded_split(len(kept), settings.validation_fraction, settings.split_seed + 1)[1]])
            for index, chain in enumerate(chains):
                chain.split = "test" if index in set(test) else "validation" if index in held else "train"
        parts = {split: [chain for chain in chains if chain.split == split]
                 for split in ("train", "validation", "test")}
        # A test set alone (CB513, TS115) is fine for evaluate --data; adapt refuses to train on it.
        if not parts["validation"]:
            parts["validation"] = parts["test"]
        train = parts["train"]
        if 0 < settings.max_train_chains < len(train):
            order = np.random.default_rng(settings.split_seed + 2).permutation(len(train))
            train = [train[i] for i in sorted(order[: settings.max_train_chains])]
        parts["train"] = cut_long_chains(train, settings.max_train_length)
        if not parts["test"]:
            parts["test"] = parts["validation"]
        counts = ", ".join(f"{split} {len(part)}" for split, part in parts.items())
        splits = {split: self.chains_dataset(part) for split, part in parts.items()
                  if split != "test" or part is not parts["validation"]}
        test = splits.get("test", splits["validation"])
        return DataSplits(splits["train"], splits["validation"], test, f"{source}: {counts} chains")

    def chains_dataset(self, chains):
        """(features, per-residue state ids) pairs; unscored residues are NOT_SCORED.
        The features are the sequence, or ``{"sequence", "profile"}`` where every chain
        has a sequence profile."""
        import tensorflow as tf

        config = self.config
        letters = state_letters(config)
        labels = []
        for chain in chains:
            states = chain.ss3 if config.states == 3 else chain.ss8
            ids = np.array([letters.index(state) for state in states], np.int32)
            if chain.mask is not None:
                ids[np.asarray(chain.mask) == 0] = NOT_SCORED
            labels.append(ids)
        ragged = tf.RaggedTensor.from_row_lengths(np.concatenate(labels or [np.zeros(0, np.int32)]),
                                                  np.array([len(ids) for ids in labels], np.int64))
        features = tf.constant([chain.sequence for chain in chains], tf.string)
        if chains and all(chain.profile is not None for chain in chains):
            profiles = tf.RaggedTensor.from_row_lengths(np.concatenate([chain.profile for chain in chains]),
                                                        [len(chain.sequence) for chain in chains])
            features = {"sequence": features, "profile": profiles}
        return tf.data.Dataset.from_tensor_slices((features, ragged)).map(lambda x, y: (x, y))

    def adapt(self, train_dataset) -> Preprocessing:
        from lstmkit.data import count

        if count(train_dataset) == 0:
            raise UserError("the data has no training chains (a test set such as CB513 is for evaluation "
                            "only); train on the NetSurfP-2.0 folder or your own labelled file")
        # The vocabulary is fixed; what the data decides is whether profiles come with it.
        features = train_dataset.element_spec[0]
        profile_features = features["profile"].shape[-1] if isinstance(features, dict) else 0
        return ProteinPreprocessing(state_letters(self.config), profile_features)

    def placeholder_preprocessing(self) -> Preprocessing:
        return ProteinPreprocessing(state_letters(self.config))

    def batches(self, dataset, *, training: bool = False, seed: int = 0):
        """For training: shuffled, then grouped by length (``data.bucket_boundaries``) so
        that short chains are not padded to long ones. Otherwise in order, padded to each
        batch's longest chain. Labels are padded with NOT_SCORED."""
        import tensorflow as tf

        config = self.config
        if training:
            from lstmkit.data import bucketed

            return bucketed(dataset, config.train.batch_size, lambda sequence, labels: tf.shape(labels)[0],
                            config.data.bucket_boundaries, seed=seed, buffer=config.train.shuffle_buffer,
                            padding_values=(None, NOT_SCORED))
        return dataset.padded_batch(config.train.batch_size, padding_values=(None, NOT_SCORED)).prefetch(
            tf.data.AUTOTUNE)

    # --- model ---------------------------------------------------------------------
    def build_model(self):
        from lstmkit.tasks.protein_ss import model as protein_model

        return protein_model.build_model(self.config, self.preprocessing.profile_features)

    def loss(self):
        import keras

        return keras.losses.SparseCategoricalCrossentropy(ignore_class=NOT_SCORED)

    def metrics(self) -> list:
        from lstmkit.metrics import MaskedAccuracy

        return [MaskedAccuracy(ignore_class=NOT_SCORED)]

    # --- evaluation, prediction, export ---------------------------------------------
    def label_names(self) -> list[str]:
        return list(state_letters(self.config))

    def evaluate(self, model, dataset) -> dict:
        """Per-residue accuracy over scored residues (Q3, or Q8 and Q3 from the 8-state
        predictions mapped to three), its mean per chain, the mean per-chain SOV'99,
        per-state precision/recall, and the confusion matrix."""
        import tensorflow as tf

        from lstmkit.scoring import confusion_metrics

        config, preprocessing = self.config, self.preprocessing
        batches = self.batches(dataset).map(
            lambda features, labels: (model_features(features, preprocessing), labels))
        # One graph for every batch length (called eagerly, the LSTM steps in Python).
        predict = tf.function(lambda features: model(features, training=False),
                              input_signature=[batches.element_spec[0]])
        letters = state_letters(config)
        truths, guesses, per_chain, segment_scores = [], [], [], []
        for features, labels in batches:
            predicted = predict(features).numpy().argmax(-1)
            for truth, guess in zip(labels.numpy(), predicted):
                scored = truth != NOT_SCORED
                if scored.any():
                    truths.append(truth[scored])
                    guesses.append(guess[scored])
                    per_chain.append(float((truth[scored] == guess[scored]).mean()))
                    # Over the scored residues only, joined: unresolved stretches are left out.
                    segment_scores.append(sov(truth[scored].tolist(), guess[scored].tolist()))
        truth, guess = np.concatenate(truths), np.concatenate(guesses)
        metrics = confusion_metrics(truth, guess, list(letters))
        metrics["residues"] = metrics["examples"]
        metrics["examples"] = metrics["chains"] = len(per_chain)
        metrics["per_chain_accuracy"] = float(np.mean(per_chain))
        metrics["sov"] = float(np.mean(segment_scores))
        metrics["q3" if config.states == 3 else "q8"] = metrics["accuracy"]
        if config.states == 8:
            to_three = np.array([protein_data.STATES_3.index(protein_data.EIGHT_TO_THREE[s]) for s in letters])
            metrics["q3"] = float((to_three[truth] == to_three[guess]).mean())
        return metrics

    def serving_signatures(self, max_generated_length: int | None = None) -> dict[str, ServingSignature]:
        import tensorflow as tf

        letters = tf.constant(list(state_letters(self.config)))
        profile_features = self.preprocessing.profile_features

        def build(model):
            def serve(sequence, profile=None):
                # Characters, not bytes: the per-residue outputs have one row per character.
                length = tf.strings.length(sequence, unit="UTF8_CHAR")
                # The rule predict applies (protein_data.clean_sequence): letters only, at
                # least one; a letter that is not an amino acid is read as unknown.
                checks = [
                    tf.debugging.Assert(tf.reduce_all(length >= 1), [
                        "sequence is empty; send at least one residue"]),
                    tf.debugging.Assert(tf.reduce_all(tf.strings.regex_full_match(sequence, r"\p{L}*")), [
                        "sequence holds a character that is not a letter (a digit, space or symbol); "
                        "sequences are amino-acid letters only"]),
                ]
                with tf.control_dependencies(checks):
                    sequence = tf.identity(sequence)
                if profile is None:
                    probabilities = model(sequence, training=False)
                else:
                    # Profiles padded past the longest sequence are cut to it.
                    profile = profile[:, : tf.reduce_max(length)]
                    probabilities = model({"sequence": sequence, "profile": profile}, training=False)
                inside = tf.range(tf.shape(probabilities)[1])[None, :] < length[:, None]
                states = tf.where(inside, tf.gather(letters, tf.argmax(probabilities, axis=-1)), "")
                return {"probabilities": probabilities, "structure": tf.strings.reduce_join(states, axis=1),
                        "length": length}

            return serve

        inputs = [tf.TensorSpec(shape=(None,), dtype=tf.string, name="sequence")]
        if profile_features:
            inputs.append(tf.TensorSpec(shape=(None, None, profile_features), dtype=tf.float32, name="profile"))
        # Per-residue outputs are padded to the batch's longest chain: rows of joined
        # requests would come back longer than they were sent.
        max_lengths = {"sequence": (MAX_RESIDUES, "residues")}
        if profile_features:
            max_lengths["profile"] = (MAX_RESIDUES, "residues")
        return {"serving_default": ServingSignature(inputs, build, batchable=False, max_lengths=max_lengths)}

    def preprocess(self, items: list[str], options: dict) -> PreparedInputs:
        """Sequences, stripped and upper-cased; one with a character that is not a letter,
        or longer than MAX_RESIDUES, is set aside. A model that reads profiles cannot
        predict from sequences alone."""
        if self.preprocessing.profile_features:
            raise UserError("this run's model reads sequence profiles (PSSM) as well as sequences; predict "
                            "takes sequences only: export it and send both to serving_default")
        rejected = {}
        for item in items:
            try:
                protein_data.clean_sequence(item, repr(item[:20]), set())
            except UserError as error:
                rejected[item] = str(error)
            else:
                if len(item) > MAX_RESIDUES:
                    rejected[item] = (f"{len(item):,} residues; at most {MAX_RESIDUES:,} are "
                                      "accepted (cut it into domains first)")
        kept = [item for item in items if item not in rejected]
        if not kept:
            return PreparedInputs([], None, rejected)
        import tensorflow as tf

        return PreparedInputs(kept, tf.constant([item.strip().upper() for item in kept]), rejected)

    def postprocess(self, items: list[str], outputs, options: dict, notes: dict | None = None) -> list[dict]:
        """The sequence with its predicted structure aligned under it."""
        letters = state_letters(self.config)
        records = []
        for item, probabilities in zip(items, outputs):
            sequence = item.strip().upper()
            rows = probabilities[: len(sequence)]
            structure = "".join(letters[i] for i in rows.argmax(-1))
            records.append({
                "sequence": sequence,
                "structure": structure,
                "probabilities": [dict(zip(letters, map(float, row))) for row in rows],
                "text": f"{sequence}\n{structure}",
            })
        return records


def model_features(features, preprocessing: Preprocessing):
    """What the run's model reads of a batch's features: the sequences, or sequences and
    profiles. A model trained with profiles cannot do without them."""
    wants_profiles = bool(preprocessing.profile_features)
    if not isinstance(features, dict):
        if wants_profiles:
            raise UserError("this run's model reads sequence profiles (PSSM) and this data has none; "
                            "evaluate it on tfds:cullpdb_profile, or train a model on sequences alone")
        return features
    return features if wants_profiles else features["sequence"]


def cut_long_chains(chains, max_length: int):
    """Chains longer than ``max_length`` become consecutive pieces of at most that length."""
    pieces = []
    for chain in chains:
        if len(chain.sequence) <= max_length:
            pieces.append(chain)
            continue
        for start in range(0, len(chain.sequence), max_length):
            pieces.append(chain.piece(start, start + max_length, f"[{start}:{start + max_length}]"))
    return pieces


TASK = ProteinTask()
