"""The task contract: what every folder under ``tasks/`` provides.

Training, evaluation, prediction, tuning and export in ``lstmkit`` are written once
against ``Task``. A task answers the same verbs (after TensorFlow Model Garden's
``base_task``): load data, adapt preprocessing on training data, build the model,
describe its search space, evaluate, name its serving signatures, and predict as one
pipeline (preprocess, forward, postprocess). What only some tasks can do (generate
text, pretrain a text encoder, export to TensorFlow Lite, read predict inputs their own
way, read a whole outside source) are small optional interfaces at the end.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, ClassVar, NamedTuple

from lstmkit.errors import UserError

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
    ``--<name> VALUE`` of ``type``; ``Task.preprocess`` and ``postprocess`` receive it."""

    name: str
    help: str
    type: Any = str


@dataclasses.dataclass(frozen=True)
class PredictInputs:
    """What ``ExtraPredictInputs`` declares for ``predict``."""

    #: Settings of the task's own (``--horizon N``...).
    options: tuple[PredictOption, ...] = ()
    #: Files read the task's own way (``--fasta FILE``...).
    files: tuple[InputFileOption, ...] = ()
    #: ``--file FILE``: False, each non-blank line is an input; True, the file is one
    #: input (a table of one series' history...), passed on as its path (or, for
    #: standard input, as its text).
    file_is_one_input: bool = False


@dataclasses.dataclass
class PreparedInputs:
    """What ``Task.preprocess`` returns: the items it can predict, in order, with their
    batch of raw model input (None when there are none), and the rest with reasons."""

    items: list[str]
    inputs: Any
    rejected: dict[str, str] = dataclasses.field(default_factory=dict)
    #: What preprocessing learned of a kept item that ``postprocess`` needs, by item (a
    #: history's time column, so that the forecast's times continue it).
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)


class Objective(NamedTuple):
    """The metric Keras logs that picks the best epoch and trial (``val_accuracy``), and
    whether higher (``max``) or lower (``min``) is better."""

    metric: str
    direction: str


@dataclasses.dataclass(frozen=True)
class Report:
    """What ``evaluate`` shows, from the keys of ``Task.evaluate``'s result."""

    #: The test metric that sums a run up in listings.
    headline: str = "accuracy"
    #: Figures shown, in order (those a result lacks are left out: precision and recall
    #: exist for two classes only).
    metrics: tuple[str, ...] = ("accuracy", "loss")
    #: Counts besides ``examples``: result key -> what it counts.
    counts: dict = dataclasses.field(default_factory=dict)
    #: Figures drawn beside the report: names of ``lstmkit.plots.PLOTS``.
    plots: tuple[str, ...] = ()


class Task(abc.ABC):
    """One machine-learning task, as the shared machinery sees it.

    A task object is bound to one config (``bind(config)``) and, once preprocessing is
    adapted on training data, to that too (``bind(preprocessing=...)``): the methods
    below read ``self.config`` and ``self.preprocessing`` instead of taking them
    (TensorFlow Model Garden binds a task's params once; keras-hub's task owns its
    preprocessor). The object an entry point names is unbound: its declarations,
    ``default_config``, ``tiny_config`` and ``search_space`` need nothing more.

    Importing a task's module must be cheap (no TensorFlow, no Keras): the CLI reads
    the task's config and checks a command line before TensorFlow loads. Keras code is
    imported inside the methods that build models; ``custom_object_modules`` names the
    modules that register the task's own Keras objects, imported before a saved model
    is loaded.

    Abilities only some tasks have are the optional interfaces below (``Generative``,
    ``PretrainsText``, ``TFLiteExportable``, ``ExtraPredictInputs``, ``ReadsWholeSource``),
    which the library checks for with ``isinstance``.
    """

    # --- what the task is -----------------------------------------------------------
    #: Registry name, used on the command line and in ``runs/<name>/``.
    name: ClassVar[str]
    #: The frozen config dataclass; it must have a ``train: TrainingConfig`` field.
    config_class: ClassVar[type]
    #: What ``adapt`` returns: a ``Preprocessing`` subclass.
    preprocessing_class: ClassVar[type[Preprocessing]]
    #: The data source used when none is given: a public one (``tfds:NAME``) or a name
    #: the task reads offline (``builtin``), never a path that exists only in a checkout.
    default_data: ClassVar[str]
    #: What ``--data`` takes, in words: the fix named when a source does not exist.
    sources_hint: ClassVar[str] = "give a file or folder that exists, or a public source (tfds:NAME)"
    #: The metric Keras logs that picks the best epoch and trial, and its direction.
    objective: ClassVar[Objective] = Objective("val_accuracy", "max")
    #: What ``evaluate`` reports and draws.
    report: ClassVar[Report] = Report()
    #: Modules that register the task's custom Keras objects (imported before loading).
    custom_object_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config=None, preprocessing: Preprocessing | None = None):
        self._config = config
        self._preprocessing = preprocessing

    def bind(self, config=None, preprocessing: Preprocessing | None = None) -> Task:
        """This task bound to ``config`` and ``preprocessing`` (each, where not given,
        kept from this object): a new object; this one is unchanged."""
        return type(self)(self._config if config is None else config,
                          self._preprocessing if preprocessing is None else preprocessing)

    @property
    def config(self):
        if self._config is None:
            raise TypeError(f"task {self.name} is not bound to a config; call bind(config) first")
        return self._config

    @property
    def preprocessing(self) -> Preprocessing:
        if self._preprocessing is None:
            raise TypeError(f"task {self.name} has no preprocessing yet; adapt it, then bind(preprocessing=...)")
        return self._preprocessing

    # --- configuration (unbound) ------------------------------------------------------
    def default_config(self):
        return self.config_class()

    @abc.abstractmethod
    def tiny_config(self):
        """A config small enough for tests and smoke runs (seconds on 2 cores)."""

    @abc.abstractmethod
    def search_space(self, hp, config):
        """Map Keras Tuner's ``hp`` onto a copy of ``config`` (the task's whole search
        space lives here)."""

    # --- data (bound to a config) ---------------------------------------------------------
    @abc.abstractmethod
    def load_data(self, source: str) -> DataSplits:
        """Read ``source`` (a ``--data`` value) into train/validation/test splits.

        Must raise ``UserError`` with a one-line fix for anything wrong with the source.
        """

    @abc.abstractmethod
    def adapt(self, train_dataset) -> Preprocessing:
        """Fit preprocessing on training data only; return its state (a vocabulary,
        normalisation statistics...), a ``preprocessing_class``."""

    @abc.abstractmethod
    def placeholder_preprocessing(self) -> Preprocessing:
        """A preprocessing state of the right shape without data (e.g. a vocabulary of
        ``vocab_size`` made-up tokens), so ``doctor`` can build the model offline."""

    # --- data (bound to a config and preprocessing) ---------------------------------------
    def encode_labels(self, dataset):
        """Turn ``load_data``'s raw labels into what the loss reads (a language model's
        target characters become vocabulary ids). Applied to every split before training
        and evaluation; labels that are class ids already pass through unchanged."""
        return dataset

    def batches(self, dataset, *, training: bool = False, seed: int = 0):
        """Batch an encoded split. ``training``: for ``fit``, by default reshuffled every
        epoch from ``seed`` (a task whose model carries state from one batch to the next
        orders the batches itself; one that augments its input does it here). Otherwise
        for validation and evaluation, in order (a task whose examples differ in length
        pads them here)."""
        from lstmkit.data import batched

        settings = self.config.train
        if training:
            return batched(dataset, settings.batch_size, shuffle=True, seed=seed, buffer=settings.shuffle_buffer)
        return batched(dataset, settings.batch_size)

    # --- model ---------------------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self):
        """An uncompiled ``keras.Model`` that takes raw input."""

    @abc.abstractmethod
    def loss(self):
        """The Keras loss to train with."""

    def metrics(self) -> list:
        return []

    def configure_optimizer(self, steps_per_epoch: int):
        """The optimizer to train with (after Lightning's ``configure_optimizers``): by
        default Adam with the config's learning-rate schedule, global-norm clipping and
        optional exponential moving average (``lstmkit.optimization``)."""
        from lstmkit.optimization import adam

        return adam(self.config.train, steps_per_epoch)

    # --- evaluation, export, prediction ---------------------------------------------------
    @abc.abstractmethod
    def label_names(self) -> list[str]:
        """Output names, in order: class names (fixed by the task, or found in the
        training data by ``adapt``), or the quantiles of a forecast."""

    @abc.abstractmethod
    def evaluate(self, model, dataset) -> dict:
        """Metrics of ``model`` on an encoded, unbatched dataset, with ``examples`` and
        whatever ``report.plots`` draw from."""

    @abc.abstractmethod
    def serving_signatures(self, max_generated_length: int | None = None) -> dict[str, ServingSignature]:
        """Named endpoints for export; must include ``serving_default``. A generative
        endpoint refuses to produce more than ``max_generated_length`` per request
        (default ``MAX_SERVED_GENERATED_LENGTH``)."""

    @abc.abstractmethod
    def preprocess(self, items: list[str], options: dict) -> PreparedInputs:
        """The first step of ``predict`` (after transformers' pipelines: preprocess,
        forward, postprocess): command-line items (texts, file names...) -> a batch of
        raw model input. Items that cannot be predicted (an unreadable file...) are set
        aside with a one-line reason each; the rest are still predicted. ``options``
        holds the values of ``ExtraPredictInputs.predict_inputs.options`` (None where
        not given). Raises UserError for an option, or a run, that cannot predict at all."""

    @abc.abstractmethod
    def postprocess(self, items: list[str], outputs, options: dict, notes: dict | None = None) -> list[dict]:
        """The last step of ``predict``: one JSON-able record per predicted item, from the
        model's ``outputs`` (numpy); ``"text"`` is its one-line rendering. ``notes``:
        ``PreparedInputs.notes`` of these items."""


class ClassificationTask(Task):
    """A task whose model ends in a softmax over ``label_names``: sparse categorical
    cross-entropy, accuracy as the objective, classification metrics with a confusion
    matrix, served outputs named ``probabilities`` and ``label``, and predictions that
    name the most probable label."""

    objective = Objective("val_accuracy", "max")
    report = Report(headline="accuracy", metrics=("accuracy", "precision", "recall", "f1", "macro_f1", "loss"),
                    plots=("confusion_matrix",))

    def loss(self):
        import keras

        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self) -> list:
        return ["accuracy"]

    def evaluate(self, model, dataset) -> dict:
        from lstmkit.scoring import classification_metrics

        return classification_metrics(model, dataset, self.label_names(), self.config.train.batch_size)

    def classifier_outputs(self) -> Callable[[Any], dict]:
        """A function for serving endpoints: probabilities → the two named outputs."""
        import tensorflow as tf

        names = tf.constant(self.label_names())

        def outputs(probabilities):
            return {"probabilities": probabilities, "label": tf.gather(names, tf.argmax(probabilities, axis=-1))}

        return outputs

    def postprocess(self, items: list[str], outputs, options: dict, notes: dict | None = None) -> list[dict]:
        """The most probable label, its probability and the probability of every class."""
        labels = self.label_names()
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


# --- optional interfaces: abilities only some tasks have ------------------------------------
class Generative(abc.ABC):
    """A task whose model writes: ``generate`` verb."""

    @abc.abstractmethod
    def generate(self, model, prompt: str, length: int, sampling: dict, seed: int):
        """Yield generated text piece by piece after ``prompt`` (``length`` pieces);
        ``sampling`` holds ``temperature``, ``top_k`` and ``top_p``. Refuses a bad prompt
        (UserError) before yielding anything."""


class PretrainsText(abc.ABC):
    """A task whose model reads text: language-model pretraining
    (``lstmkit.training.pretrain``) trains its encoder before the task does, when the
    encoder's settings have ``epochs`` > 0."""

    @abc.abstractmethod
    def text_encoder(self) -> TextEncoder:
        """How to turn texts into word ids and build the embedding and recurrent layers."""


class TFLiteExportable(abc.ABC):
    """A task with an on-device use: ``export --format tflite``."""

    @abc.abstractmethod
    def tflite_signature(self) -> ServingSignature:
        """The one endpoint of a TensorFlow Lite export (fixed shapes, built-in ops)."""


class ExtraPredictInputs(abc.ABC):
    """A task whose ``predict`` takes more than lines of text: options of its own, files
    read its own way, or a ``--file`` that is one input."""

    predict_inputs: ClassVar[PredictInputs]


class Calibrates(abc.ABC):
    """A task whose model's uncertainty is set on held-out data after training: the
    library calls ``calibrate`` with the best model and the validation split (when there
    is one) before the test split is scored, and saves the calibrated model as the run's."""

    @abc.abstractmethod
    def calibrate(self, model, validation_dataset) -> dict:
        """Set ``model``'s calibration (non-trainable weights) from ``validation_dataset``,
        the same way whether or not it was calibrated before; returns what was set, for
        metrics.json."""


class ReadsWholeSource(abc.ABC):
    """A task that reads a whole outside source for ``evaluate --split all`` itself
    (by default the library joins ``load_data``'s splits), because its ``load_data``
    needs enough examples to hold some out, or keeps only some."""

    @abc.abstractmethod
    def load_all(self, source: str):
        """Every example of ``source`` as one unbatched dataset of ``(raw_input, label)``."""


def encode_splits(task: Task, splits: DataSplits) -> DataSplits:
    """``task.encode_labels`` applied to train, validation (unless None: merged into
    train) and test (a test split that is the validation split stays the same object)."""
    train = task.encode_labels(splits.train)
    validation = None if splits.validation is None else task.encode_labels(splits.validation)
    test = validation if splits.test is splits.validation else task.encode_labels(splits.test)
    return dataclasses.replace(splits, train=train, validation=validation, test=test)


def whole_source(task: Task, source: str):
    """Every example of ``source`` as one unbatched dataset, for scoring a whole outside
    file (``evaluate --split all``): the task's own ``load_all``, or else the splits of
    ``load_data`` joined."""
    if isinstance(task, ReadsWholeSource):
        return task.load_all(source)
    splits = task.load_data(source)
    dataset = splits.train.concatenate(splits.validation)
    if splits.test is not splits.validation:  # a source without a test split of its own
        dataset = dataset.concatenate(splits.test)
    return dataset


def predict_inputs(task: Task) -> PredictInputs:
    """What ``predict`` takes for ``task`` besides lines of text."""
    return task.predict_inputs if isinstance(task, ExtraPredictInputs) else PredictInputs()
