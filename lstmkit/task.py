"""The task contract: what every folder under ``tasks/`` provides.

Training, evaluation, prediction, tuning and export in ``lstmkit`` are written once
against this class. A task answers the same verbs (after TensorFlow Model Garden's
``base_task``): load data, adapt preprocessing on training data, build the model,
describe its search space, and name its serving signature.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, ClassVar

from lstmkit.errors import UserError
from lstmkit.runs import lstmkit_command

# The most a generative task produces per request: more is almost certainly a typo
# (and would hold a server for minutes).
MAX_GENERATED_LENGTH = 100_000
# The most an exported model generates per request unless ``export --max-generate-length``
# says otherwise: a served request should answer in seconds. Eight concurrent requests of
# 100,000 characters held a server for minutes; this cap bounds each request, and serve's
# per-signature concurrency how many run at once (TensorFlow Serving has only the cap).
MAX_SERVED_GENERATED_LENGTH = 2_000


@dataclasses.dataclass
class DataSplits:
    """Unbatched ``tf.data.Dataset``s of ``(raw_input, label)`` pairs.

    ``test`` is the dataset's own test split when it has one, otherwise a seeded
    split (or, where a task documents it, the validation split itself: the same
    object); ``validation`` always comes out of the training data.
    """

    train: Any
    validation: Any
    test: Any
    # Where the data came from, in words, for run metadata and logs.
    description: str


@dataclasses.dataclass(frozen=True)
class ServingSignature:
    """A named SavedModel endpoint.

    ``input_signature`` is a list of named ``tf.TensorSpec``s; ``build_fn(model)``
    returns a function taking those tensors and returning a dict of named outputs.
    ``batchable``: each row's outputs are the same whatever other rows share its batch,
    so a server may join concurrent requests (not so when outputs are padded to the
    batch's longest input).
    """

    input_signature: list
    build_fn: Callable[[Any], Callable[..., dict]]
    batchable: bool = True
    #: Input name -> (most, unit): the longest a row of that input may be, in characters
    #: for strings, in values along the second dimension for numbers. Checked in the
    #: exported graph (``endpoint``), so TensorFlow Serving refuses longer inputs too,
    #: and by ``cli.py serve`` before the model runs.
    max_lengths: dict = dataclasses.field(default_factory=dict)

    def endpoint(self, model) -> Callable:
        """``build_fn(model)`` behind the input checks (``check_inputs``) and the output
        check (``check_outputs``), taking the inputs by position in ``input_signature``
        order."""
        serve = self.build_fn(model)
        names = [spec.name for spec in self.input_signature]

        def checked(*inputs):
            return check_outputs(serve(*check_inputs(dict(zip(names, inputs)), self.max_lengths).values()))

        return checked


def check_inputs(inputs: dict, max_lengths: dict) -> dict:
    """``inputs`` again, computed only after every check has passed (each row no longer
    than ``max_lengths``; floating-point inputs finite): a bad input stops the graph with
    InvalidArgument before the model allocates anything for it."""
    import tensorflow as tf

    checks = []
    for name, (most, unit) in max_lengths.items():
        tensor = inputs[name]
        if tensor.dtype == tf.string:
            lengths = tf.reshape(tf.strings.length(tensor, unit="UTF8_CHAR"), [-1])
            length = tf.reduce_max(tf.concat([[0], lengths], axis=0))
        else:
            length = tf.shape(tensor)[1]
        checks.append(tf.debugging.Assert(length <= most, [f"input {name} is longer than {most:,} {unit}; "
                                                           f"send at most {most:,} {unit} per row"]))
    for name, tensor in inputs.items():
        if tensor.dtype.is_floating:
            checks.append(tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(tensor)), [
                f"input {name} holds a NaN or infinite value; send finite numbers"]))
    with tf.control_dependencies(checks):
        return {name: tf.identity(tensor) for name, tensor in inputs.items()}


def check_outputs(outputs: dict) -> dict:
    """``outputs`` again, after checking that every floating-point one is finite: a
    forecast or probability of NaN (from inputs finite but too large for float32
    arithmetic) is an error, never an answer."""
    import tensorflow as tf

    checks = [tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(tensor)), [
        f"output {name} is not finite for this input (its values are likely too large for float32 arithmetic); "
        "send values of a smaller magnitude"]) for name, tensor in outputs.items() if tensor.dtype.is_floating]
    with tf.control_dependencies(checks):
        return {name: tf.identity(tensor) for name, tensor in outputs.items()}


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """What a task adapts on training data only (a vocabulary, class names, normalisation
    statistics), as a frozen dataclass of JSON values: each task subclasses it with its
    own fields (``Task.preprocessing_class``). A run keeps it in ``preprocessing.json``;
    the model is built from it, and evaluation, prediction and export read it back."""

    @classmethod
    def from_json(cls, state: dict, source: str = "preprocessing.json"):
        """The state ``to_json`` wrote; a field it lacks takes its default (runs saved
        before the field existed)."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(state) - names)
        if unknown:
            raise UserError(f"{source} holds {', '.join(unknown)}, which {cls.__name__} does not have; "
                            "is it from a run of another task?")
        try:
            return cls(**state)
        except TypeError as error:  # a field without a default is missing
            raise UserError(f"{source} is incomplete for {cls.__name__} ({error}); train the run again") from None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TextEncoder:
    """What language-model pretraining (``lstmkit.training.pretrain``) needs from a task
    whose model reads text: how to turn texts into word ids, and how to build the
    embedding and recurrent layers on them, with the same layer names as in
    ``build_model``, so that the pretrained weights move into the task's model by name."""

    #: A ``PretrainConfig`` (usually the task config's ``pretrain`` section).
    settings: Any
    #: Makes a layer that maps a batch of strings to word ids (0 = padding).
    tokenizer: Callable[[], Any]
    #: Word ids (a Keras tensor, ``[batch, time]``) -> the stack's per-step outputs.
    build: Callable[[Any], Any]
    #: The name of the word embedding (a ``keras.layers.Embedding``), whose matrix is
    #: also the language model's output layer (tied weights).
    embedding_layer: str
    vocabulary_size: int
    bidirectional: bool
    #: Recurrent layers in the stack.
    layers: int
    #: A split's unbatched dataset -> a dataset of its texts.
    texts: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class InputFileOption:
    """A task's own way for ``predict`` to read inputs from a file: the CLI offers it as
    ``--<name> FILE`` (sequences from a FASTA file...). ``read(path)`` returns the
    inputs the file holds, as command-line items, and raises ``UserError`` for a file it
    cannot read."""

    name: str
    help: str
    read: Callable[[str], list[str]]


@dataclasses.dataclass(frozen=True)
class PredictOption:
    """A task's own setting of ``predict`` (a forecast's horizon...): the CLI offers it as
    ``--<name> VALUE`` of ``type``, and ``Task.prediction_config`` applies it."""

    name: str
    help: str
    type: Any = str


class Task(abc.ABC):
    """One machine-learning task, as the shared machinery sees it.

    Importing a task's module must register every custom Keras object its models use,
    so that ``keras.saving.load_model`` can rebuild a saved model in a fresh process.
    """

    #: Registry name, used on the command line and in ``runs/<name>/``.
    name: ClassVar[str]
    #: The frozen config dataclass; it must have a ``train: TrainingConfig`` field.
    config_class: ClassVar[type]
    #: What ``adapt`` returns: a ``Preprocessing`` subclass.
    preprocessing_class: ClassVar[type[Preprocessing]]
    #: The metric Keras logs that picks the best epoch and trial, and its direction.
    objective: ClassVar[str]
    objective_direction: ClassVar[str] = "max"
    #: The test metric (a key of ``evaluate``'s result) that sums a run up in listings.
    headline_metric: ClassVar[str] = "accuracy"
    #: What ``evaluate`` reports, in order: the keys of ``evaluate``'s result shown as
    #: figures (those a result lacks are left out: precision and recall exist for two
    #: classes only).
    reported_metrics: ClassVar[tuple[str, ...]] = ("accuracy", "precision", "recall", "f1", "macro_f1", "loss")
    #: Counts besides ``examples`` that ``evaluate`` reports: result key -> what it counts.
    reported_counts: ClassVar[dict[str, str]] = {}
    #: Extra ways ``predict`` reads inputs from files.
    input_file_options: ClassVar[tuple[InputFileOption, ...]] = ()
    #: Settings of ``predict`` of this task's own (``prediction_config`` applies them).
    predict_options: ClassVar[tuple[PredictOption, ...]] = ()
    #: ``predict --file FILE``: False, each non-blank line is an input; True, the file
    #: is one input (a table of one series' history...), passed on as its path (or, for
    #: standard input, as its text).
    predict_file_is_one_input: ClassVar[bool] = False
    #: The data source used when none is given: a public one (``tfds:NAME``), never a
    #: path that exists only in a checkout.
    default_data: ClassVar[str]

    # --- configuration -------------------------------------------------------------
    def default_config(self):
        return self.config_class()

    @abc.abstractmethod
    def tiny_config(self):
        """A config small enough for tests and smoke runs (seconds on 2 cores)."""

    # --- data ----------------------------------------------------------------------
    @abc.abstractmethod
    def load_data(self, source: str, config) -> DataSplits:
        """Read ``source`` (a ``--data`` value) into train/validation/test splits.

        Must raise ``UserError`` with a one-line fix for anything wrong with the source.
        """

    @abc.abstractmethod
    def adapt(self, config, train_dataset) -> Preprocessing:
        """Fit preprocessing on training data only; return its state (a vocabulary,
        normalisation statistics...), a ``preprocessing_class``, for ``build_model``."""

    def load_all(self, source: str, config):
        """Every example of ``source`` as one unbatched dataset of ``(raw_input, label)``
        pairs, for scoring a whole outside file (``evaluate --split all``), however small.
        By default the splits of ``load_data`` joined; a task whose ``load_data`` needs
        enough examples to hold some out, or keeps only some, reads the source itself."""
        splits = self.load_data(source, config)
        dataset = splits.train.concatenate(splits.validation)
        if splits.test is not splits.validation:  # a source without a test split of its own
            dataset = dataset.concatenate(splits.test)
        return dataset

    def encode_labels(self, dataset, config, preprocessing: Preprocessing):
        """Turn ``load_data``'s raw labels into what the loss reads, with the adapted
        preprocessing (a language model's target characters become vocabulary ids).
        Applied to every split before training and evaluation; labels that are class
        ids already pass through unchanged."""
        return dataset

    def encode_splits(self, splits: DataSplits, config, preprocessing: Preprocessing) -> DataSplits:
        """``encode_labels`` applied to train, validation (unless None: merged into
        train) and test (a test split that is the validation split stays the same object)."""
        train = self.encode_labels(splits.train, config, preprocessing)
        validation = None if splits.validation is None else self.encode_labels(splits.validation, config,
                                                                                preprocessing)
        test = validation if splits.test is splits.validation else self.encode_labels(
            splits.test, config, preprocessing)
        return dataclasses.replace(splits, train=train, validation=validation, test=test)

    def training_batches(self, dataset, config, preprocessing: Preprocessing, seed: int):
        """Batch the encoded training split for ``fit``: by default reshuffled every
        epoch (from ``seed``). A task whose model carries state from one batch to the
        next (truncated backpropagation through time) orders the batches itself; one
        that augments its input (noise, shifts) does it here."""
        from lstmkit.data import batched

        settings = config.train
        return batched(dataset, settings.batch_size, shuffle=True, seed=seed, buffer=settings.shuffle_buffer)

    def evaluation_batches(self, dataset, config):
        """Batch an encoded validation or test split for ``fit`` and ``evaluate``; a task
        whose examples differ in length pads them here."""
        from lstmkit.data import batched

        return batched(dataset, config.train.batch_size)

    def placeholder_preprocessing(self, config) -> Preprocessing:
        """A preprocessing state of the right shape without data (e.g. a vocabulary of
        ``vocab_size`` made-up tokens), so ``doctor`` can build the model offline."""
        raise UserError(f"{self.name} cannot build a model without data; train it first, then: "
                        f"{lstmkit_command('doctor', self.name, '--run', 'latest')}")

    # --- model ---------------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self, config, preprocessing: Preprocessing):
        """Return an uncompiled ``keras.Model`` that takes raw input."""

    def text_encoder(self, config, preprocessing: Preprocessing) -> TextEncoder | None:
        """For a task whose model reads text: the encoder that language-model
        pretraining trains before the task does (when its settings' ``epochs`` > 0).
        None (the default): the task has none."""
        return None

    @abc.abstractmethod
    def loss(self, config):
        """The Keras loss to train with."""

    def metrics(self, config) -> list:
        return []

    @abc.abstractmethod
    def search_space(self, hp, config):
        """Map Keras Tuner's ``hp`` onto a copy of ``config`` (the task's whole
        search space lives here)."""

    # --- evaluation, prediction, export ---------------------------------------------
    @abc.abstractmethod
    def label_names(self, config, preprocessing: Preprocessing) -> list[str]:
        """Class names, in output order (fixed by the task, or found in the training
        data by ``adapt`` and read back from ``preprocessing``)."""

    def evaluate(self, model, dataset, config, preprocessing: Preprocessing) -> dict:
        """Metrics of ``model`` on an unbatched dataset; classification by default."""
        from lstmkit.scoring import classification_metrics

        return classification_metrics(model, dataset, self.label_names(config, preprocessing),
                                      config.train.batch_size)

    @abc.abstractmethod
    def serving_signatures(self, config, preprocessing: Preprocessing,
                           max_generated_length: int | None = None) -> dict[str, ServingSignature]:
        """Named endpoints for export; must include ``serving_default``. A generative
        endpoint refuses to produce more than ``max_generated_length`` per request
        (default ``MAX_SERVED_GENERATED_LENGTH``)."""

    def tflite_signature(self, config, preprocessing: Preprocessing) -> ServingSignature | None:
        """The one endpoint of a TensorFlow Lite export (fixed shapes, built-in ops),
        or None where the task has no on-device use."""
        return None

    def generate(self, config, model, prompt: str, length: int, sampling: dict, seed: int):
        """Yield generated text piece by piece after ``prompt`` (``length`` pieces);
        ``sampling`` holds ``temperature``, ``top_k`` and ``top_p``. Only generative
        tasks implement it."""
        raise UserError(f"{self.name} is not a generative task; generate works for text generation tasks")

    def prediction_config(self, config, options: dict):
        """The run's config as ``predict`` uses it, given the values of ``predict_options``
        (None where not given). Raises UserError for a value the run cannot honour."""
        return config

    def rejected_predict_inputs(self, config, preprocessing: Preprocessing, items: list[str]) -> dict[str, str]:
        """Command-line items that cannot be predicted (an unreadable file...), each
        with a one-line reason; the rest are still predicted, and the command fails.
        Raises UserError when the run's model cannot predict from such items at all."""
        return {}

    @abc.abstractmethod
    def parse_predict_inputs(self, config, items: list[str]):
        """Turn command-line items (texts, file names...) into a batch of raw input."""

    def prediction_records(self, config, preprocessing: Preprocessing, model, items: list[str], outputs) -> list[dict]:
        """One JSON-able record per input item; ``"text"`` is its one-line rendering.

        The default suits classifiers: the most probable label, its probability and
        the probability of every class.
        """
        labels = self.label_names(config, preprocessing)
        records = []
        for item, row in zip(items, outputs):
            best = int(row.argmax())
            shown = item if len(item) <= 60 else item[:57] + "..."
            records.append({
                "input": item,
                "label": labels[best],
                "probabilities": dict(zip(labels, map(float, row))),
                "text": f"{labels[best]}\t{row[best]:.4f}\t{shown}",
            })
        return records


class ClassificationTask(Task):
    """A task whose model ends in a softmax over ``label_names``: sparse categorical
    cross-entropy, accuracy as the objective, and served outputs named
    ``probabilities`` and ``label``."""

    objective = "val_accuracy"
    objective_direction = "max"

    def loss(self, config):
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self, config) -> list:
        return ["accuracy"]

    def classifier_outputs(self, config, preprocessing: Preprocessing) -> Callable[[Any], dict]:
        """A function for serving endpoints: probabilities → the two named outputs."""
        import tensorflow as tf

        names = tf.constant(self.label_names(config, preprocessing))

        def outputs(probabilities):
            return {"probabilities": probabilities, "label": tf.gather(names, tf.argmax(probabilities, axis=-1))}

        return outputs
