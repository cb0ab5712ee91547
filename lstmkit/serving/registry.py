"""The models being served: the base path's folders of integer versions, kept in step
with the disk by a poller (newest version that loads; failed versions reported in
their status; removed or replaced versions unloaded)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
from pathlib import Path

from lstmkit.serving.requests import ServingError, Spec, check_version


logger = logging.getLogger("lstmkit.serving")

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

@dataclasses.dataclass
class Servable:
    """One loaded version of a model (what ``lstmkit.serving.requests`` runs requests on,
    its ``Signatures``)."""

    version: int
    functions: dict  # signature name -> concrete function
    signature_defs: dict  # signature name -> SignatureDef as TensorFlow Serving's JSON
    batchable: frozenset  # signature names whose rows are independent of each other
    loaded: object  # keeps the SavedModel's variables alive
    max_lengths: dict = dataclasses.field(default_factory=dict)  # signature -> {input: (most, unit)}
    # signature -> {name: Spec}, read from the functions: what a request is read into
    # without TensorFlow, and how large an answer will be.
    inputs: dict = dataclasses.field(init=False)
    outputs: dict = dataclasses.field(init=False)

    def __post_init__(self):
        self.inputs = {name: {input_name: Spec.of(spec)
                              for input_name, spec in function.structured_input_signature[1].items()}
                       for name, function in self.functions.items()}
        self.outputs = {}
        for name, function in self.functions.items():
            outputs = getattr(function, "structured_outputs", None)
            self.outputs[name] = {output_name: Spec.of(spec) for output_name, spec in outputs.items()
                                  if hasattr(spec, "dtype")} if isinstance(outputs, dict) else {}


@dataclasses.dataclass
class VersionStatus:
    version: int
    state: str  # TensorFlow Serving's: LOADING, AVAILABLE, END
    error_code: str = "OK"
    error_message: str = ""
    files: tuple = ()  # what was on disk when loading was tried

    def as_json(self) -> dict:
        return {"version": str(self.version), "state": self.state,
                "status": {"error_code": self.error_code, "error_message": self.error_message}}


def version_files(path: Path) -> tuple:
    """A version folder's files with sizes and times: changes while it is being written."""
    try:
        return tuple(sorted((str(file.relative_to(path)), file.stat().st_size, file.stat().st_mtime_ns)
                            for file in path.rglob("*") if file.is_file()))
    except OSError:
        return ()


def load_servable(path: Path, version: int) -> Servable:
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    (meta_graph,) = [graph for graph in proto.meta_graphs if "serve" in graph.meta_info_def.tags]
    signature_defs = {name: json_format.MessageToDict(definition, preserving_proto_field_name=True)
                      for name, definition in meta_graph.signature_def.items()}
    loaded = tf.saved_model.load(str(path), tags=["serve"])
    info_file = path / "assets.extra" / "lstmkit.json"
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
    signatures = info.get("signatures", {})
    batchable = frozenset(name for name, signature in signatures.items() if signature.get("batchable"))
    max_lengths = {name: {input_name: tuple(limit) for input_name, limit in signature.get("max_lengths", {}).items()}
                   for name, signature in signatures.items()}
    return Servable(version, dict(loaded.signatures), signature_defs, batchable, loaded, max_lengths)


def without_paths(message: str, folder: Path, shown_as: str) -> str:
    """``message`` with ``folder`` (and any other absolute path) replaced: clients
    learn what failed, not where the server keeps its files."""
    for form in {str(folder), str(folder.resolve())}:
        message = message.replace(form, shown_as)
    return re.sub(r"(?<![\w.])/[^\s'\"]+", "<path>", message)


class ModelRegistry:
    """What is served, kept in step with the base path by ``refresh``."""

    def __init__(self, base_path: str | Path, loader=load_servable):
        self.base_path = Path(base_path)
        self.loader = loader
        self.lock = threading.Lock()
        self.serving: dict[str, Servable] = {}
        self.statuses: dict[str, dict[int, VersionStatus]] = {}

    def scan(self) -> dict[str, dict[int, Path]]:
        found = {}
        for model in sorted(self.base_path.iterdir()) if self.base_path.is_dir() else []:
            if not model.is_dir() or not MODEL_NAME.match(model.name):
                continue
            versions = {int(path.name): path for path in model.iterdir() if path.name.isdigit() and path.is_dir()}
            # A model is a folder with at least one SavedModel version (not, say, the
            # TensorFlow Lite exports beside them); then every integer folder is a version.
            if any((path / "saved_model.pb").is_file() for path in versions.values()):
                found[model.name] = versions
        return found

    def refresh(self) -> None:
        """Load each model's newest version if it is not the one served and has not
        already failed with the same files; unload a version whose folder was removed
        or replaced (then serve the newest one left that loads, as TensorFlow Serving does)."""
        found = self.scan()
        for name in set(self.serving) - set(found):  # the whole model folder is gone
            self._unload(name, "its folder was removed")
        with self.lock:  # versions that failed to load and are gone are forgotten
            for name, statuses in self.statuses.items():
                for version in [version for version, status in statuses.items()
                                if status.error_code != "OK" and version not in found.get(name, {})]:
                    del statuses[version]
        for name, versions in found.items():
            statuses = self.statuses.setdefault(name, {})
            current = self.serving.get(name)
            if current is not None and (current.version not in versions
                                        or version_files(versions[current.version]) != statuses[current.version].files):
                # Removed, or replaced by another export with the same number: what is in
                # memory is no longer what is on disk.
                self._unload(name, "its version folder was removed or replaced")
                current = None
            for version in sorted(versions, reverse=True):
                if current is not None and version <= current.version:
                    break
                files = version_files(versions[version])
                known = statuses.get(version)
                if known is not None and known.state == "END" and known.files == files:
                    continue  # failed before, unchanged since: try an older one
                if self._load(name, version, versions[version], files):
                    break

    def _unload(self, name: str, reason: str) -> None:
        with self.lock:
            servable = self.serving.pop(name)
            statuses = self.statuses.setdefault(name, {})
            statuses[servable.version] = VersionStatus(servable.version, "END")
        logger.info("unloaded %s version %s: %s", name, servable.version, reason)

    def _load(self, name: str, version: int, path: Path, files: tuple) -> bool:
        statuses = self.statuses[name]
        with self.lock:
            statuses[version] = VersionStatus(version, "LOADING", files=files)
        try:
            servable = self.loader(path, version)
        except Exception as error:  # any failure to load is reported, never served
            text = str(error).strip()
            message = f"{error.__class__.__name__}: {text.splitlines()[0] if text else ''}"
            shown = without_paths(message, path, f"{name}/{version}")
            with self.lock:
                statuses[version] = VersionStatus(version, "END", "UNKNOWN", f"failed to load {name} version "
                                                  f"{version}: {shown}", files)
            logger.warning("%s version %s failed to load (%s); still serving %s", name, version, message,
                           self.serving[name].version if name in self.serving else "nothing")
            return False
        with self.lock:
            previous = self.serving.get(name)
            self.serving[name] = servable
            statuses[version] = VersionStatus(version, "AVAILABLE", files=files)
            if previous is not None:  # unloaded, as TensorFlow Serving does with older versions
                # No files recorded: loaded again if the newer one goes away.
                statuses[previous.version] = VersionStatus(previous.version, "END")
        logger.info("serving %s version %s", name, version)
        return True

    def status(self, name: str, version: str | None) -> dict:
        with self.lock:
            statuses = dict(self.statuses.get(name) or {})
        if not statuses:
            raise ServingError(404, f"Could not find any versions of model {name}")
        if version is None:
            shown = sorted(statuses.values(), key=lambda status: -status.version)
        else:
            check_version(version)
            shown = [statuses[int(version)]] if int(version) in statuses else []
            if not shown:
                raise ServingError(404, f"Could not find version {version} of model {name}")
        return {"model_version_status": [status.as_json() for status in shown]}

    def get(self, name: str, version: str | None) -> Servable:
        with self.lock:
            servable = self.serving.get(name)
        if version is None:
            if servable is None:
                raise ServingError(404, f"Servable not found for request: Latest({name})")
            return servable
        check_version(version)
        if servable is None or int(version) != servable.version:
            raise ServingError(404, f"Servable not found for request: Specific({name}, {version})")
        return servable


def metadata(name: str, servable: Servable) -> dict:
    return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": servable.signature_defs}}}


def poll(registry: ModelRegistry, every_s: float, stop: threading.Event) -> None:
    """Refresh ``registry`` every ``every_s`` seconds until ``stop`` is set."""
    while not stop.wait(every_s):
        try:
            registry.refresh()
        except Exception:  # a poller that dies would silently stop new versions
            logger.exception("checking %s for new versions failed; trying again", registry.base_path)
