"""Artifacts: the trained objects a service needs, and how each kind is written to a bundle.

``bentolite.artifacts`` is both this module and the class decorator that declares a service's
artifacts::

    from bentolite import artifacts
    from bentolite.artifacts import PickleArtifact

    @artifacts([PickleArtifact("model")])
    class IrisClassifier(Service): ...

A custom kind subclasses :class:`Artifact` and implements :meth:`Artifact.save_file` and
:meth:`Artifact.load_file` (and, when it only accepts some objects, :meth:`Artifact.check`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable, TypeVar

from bentolite.exceptions import ArtifactError, InvalidArgument, ServiceError

_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")

ARTIFACTS_ATTR = "__bentolite_artifacts__"


class Artifact:
    """One named object a service needs at prediction time.

    Subclasses choose a file extension and how an object is written and read back. ``name`` must
    be a valid Python identifier: it becomes the attribute ``svc.artifacts.<name>``.
    """

    #: file name extension (with the dot) of the saved file
    extension: str = ".bin"

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise InvalidArgument(
                f"artifact name {name!r} is not valid: use a Python identifier such as 'model'"
            )
        self.name = name

    @property
    def kind(self) -> str:
        """The kind recorded in bentolite.yaml: the class name."""
        return type(self).__name__

    @property
    def file_name(self) -> str:
        """Name of the artifact's file inside the bundle's ``artifacts/`` folder."""
        return self.name + self.extension

    def options(self) -> dict[str, Any]:
        """Constructor options worth recording in bentolite.yaml."""
        return {}

    def check(self, obj: Any) -> None:
        """Raise :class:`ArtifactError` when ``obj`` cannot be stored as this kind."""

    def save_file(self, obj: Any, path: Path) -> None:
        """Write ``obj`` to ``path``."""
        raise NotImplementedError

    def load_file(self, path: Path) -> Any:
        """Read an object written by :meth:`save_file` (or a file the user supplies)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.kind}({self.name!r})"


class PickleArtifact(Artifact):
    """Any Python object, written with cloudpickle (classes and closures included)."""

    extension = ".pkl"

    def save_file(self, obj: Any, path: Path) -> None:
        import cloudpickle

        try:
            data = cloudpickle.dumps(obj)
        except Exception as exc:  # cloudpickle raises many types for unpicklable objects
            raise ArtifactError(
                f"artifact {self.name!r}: {type(obj).__name__} object cannot be pickled ({exc})"
            ) from exc
        path.write_bytes(data)

    def load_file(self, path: Path) -> Any:
        import pickle

        with open(path, "rb") as f:
            return pickle.load(f)


class JoblibArtifact(PickleArtifact):
    """An object written with joblib when it is installed (efficient for large numpy arrays),
    otherwise with cloudpickle. Either file loads back with either library present."""

    extension = ".joblib"

    def save_file(self, obj: Any, path: Path) -> None:
        try:
            import joblib
        except ImportError:
            super().save_file(obj, path)
            return
        try:
            joblib.dump(obj, path)
        except Exception as exc:  # joblib wraps pickling errors in several types
            raise ArtifactError(
                f"artifact {self.name!r}: {type(obj).__name__} object cannot be saved with joblib ({exc})"
            ) from exc

    def load_file(self, path: Path) -> Any:
        try:
            import joblib
        except ImportError:
            return super().load_file(path)
        return joblib.load(path)


class SklearnModelArtifact(JoblibArtifact):
    """A scikit-learn estimator (written like :class:`JoblibArtifact`)."""


class JSONArtifact(Artifact):
    """A JSON-serialisable value (dict, list, str, number, bool, None)."""

    extension = ".json"

    def check(self, obj: Any) -> None:
        try:
            json.dumps(obj)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"artifact {self.name!r} is not JSON-serialisable: {exc}") from exc

    def save_file(self, obj: Any, path: Path) -> None:
        path.write_text(json.dumps(obj, indent=2, sort_keys=True), encoding="utf-8")

    def load_file(self, path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))


class TextArtifact(Artifact):
    """A text string, stored in ``encoding`` (UTF-8 by default)."""

    extension = ".txt"

    def __init__(self, name: str, encoding: str = "utf-8") -> None:
        super().__init__(name)
        self.encoding = encoding

    def options(self) -> dict[str, Any]:
        return {"encoding": self.encoding}

    def check(self, obj: Any) -> None:
        if not isinstance(obj, str):
            raise ArtifactError(
                f"artifact {self.name!r} is a TextArtifact and needs a str, got {type(obj).__name__}"
            )

    def save_file(self, obj: Any, path: Path) -> None:
        path.write_text(obj, encoding=self.encoding)

    def load_file(self, path: Path) -> Any:
        return path.read_text(encoding=self.encoding)


class NumpyArtifact(Artifact):
    """A numpy array, stored as ``.npy`` (no pickled objects)."""

    extension = ".npy"

    def check(self, obj: Any) -> None:
        import numpy as np

        if not isinstance(obj, np.ndarray):
            raise ArtifactError(
                f"artifact {self.name!r} is a NumpyArtifact and needs a numpy.ndarray, "
                f"got {type(obj).__name__}"
            )
        if obj.dtype.hasobject:
            raise ArtifactError(
                f"artifact {self.name!r}: arrays of Python objects cannot be stored as .npy; "
                "use PickleArtifact"
            )

    def save_file(self, obj: Any, path: Path) -> None:
        import numpy as np

        with open(path, "wb") as f:
            np.save(f, obj, allow_pickle=False)

    def load_file(self, path: Path) -> Any:
        import numpy as np

        return np.load(path, allow_pickle=False)


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _FileRef:
    """An artifact packed as a file to copy as it is; loaded only when first used."""

    def __init__(self, path: Path) -> None:
        self.path = path


class ArtifactCollection:
    """The packed artifacts of one service instance: ``svc.artifacts.<name>``."""

    def __init__(self, service_name: str, declared: Iterable[Artifact]) -> None:
        self._service_name = service_name
        self._declared = {a.name: a for a in declared}
        self._objects: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        obj = self[name]
        # kept as an attribute, so the next ``svc.artifacts.<name>`` is a plain lookup (this
        # method runs only for names the class does not define); _keep drops it on a re-pack
        self.__dict__[name] = obj
        return obj

    def __getitem__(self, name: str) -> Any:
        if name not in self._declared:
            raise ArtifactError(
                f"{self._service_name} declares no artifact {name!r}; declared: "
                f"{', '.join(self._declared) or 'none'}"
            )
        if name not in self._objects:
            raise ArtifactError(
                f"artifact {name!r} of {self._service_name} is declared but not packed: "
                f"call svc.pack({name!r}, obj) first"
            )
        obj = self._objects[name]
        if isinstance(obj, _FileRef):
            obj = self._load(name, self._declared[name], obj.path)
            self._keep(name, obj)
        return obj

    def _keep(self, name: str, obj: Any) -> None:
        """Hold ``obj`` (or a file to load it from) as artifact ``name``."""
        self._objects[name] = obj
        self.__dict__.pop(name, None)  # the attribute __getattr__ kept would be stale

    def __contains__(self, name: object) -> bool:
        return name in self._objects

    def __iter__(self) -> Iterator[str]:
        return iter(self._declared)

    def __len__(self) -> int:
        return len(self._declared)

    @property
    def declared(self) -> dict[str, Artifact]:
        """Declared artifacts by name, in declaration order."""
        return dict(self._declared)

    def missing(self) -> list[str]:
        """Names declared but not packed yet."""
        return [n for n in self._declared if n not in self._objects]

    def pack(self, name: str, obj: Any) -> None:
        """Check ``obj`` against the declared kind and keep it."""
        if name not in self._declared:
            raise ArtifactError(
                f"cannot pack {name!r}: {self._service_name} declares no artifact of that name "
                f"(declared: {', '.join(self._declared) or 'none'}); add it to @artifacts([...])"
            )
        self._declared[name].check(obj)
        self._keep(name, obj)

    def pack_file(self, name: str, path: Path) -> None:
        """Pack the file at ``path`` as artifact ``name`` without loading it: saving copies the
        file as it is (so it must be what the kind's loader reads), and the object is loaded from
        it only when first used."""
        if name not in self._declared:
            raise ArtifactError(
                f"cannot pack {name!r}: {self._service_name} declares no artifact of that name "
                f"(declared: {', '.join(self._declared) or 'none'}); add it to @artifacts([...])"
            )
        if not Path(path).is_file():
            raise ArtifactError(f"artifact {name!r}: {path} is not a file")
        self._keep(name, _FileRef(Path(path)))

    def save(self, directory: Path) -> dict[str, str]:
        """Write every packed artifact into ``directory``; returns name -> file name."""
        missing = self.missing()
        if missing:
            raise ArtifactError(
                f"cannot save {self._service_name}: artifact(s) not packed: {', '.join(missing)}; "
                "call svc.pack(name, obj) for each"
            )
        directory.mkdir(parents=True, exist_ok=True)
        files = {}
        for name, artifact in self._declared.items():
            obj = self._objects[name]
            if isinstance(obj, _FileRef):
                shutil.copyfile(obj.path, directory / artifact.file_name)
            else:
                artifact.save_file(obj, directory / artifact.file_name)
            files[name] = artifact.file_name
        return files

    def load(
        self,
        directory: Path,
        files: dict[str, str] | None = None,
        sha256: dict[str, str] | None = None,
    ) -> None:
        """Load every declared artifact from ``directory`` (file names default to the kind's).

        A file whose SHA-256 differs from the one ``sha256`` records for it is refused before it
        is read by its loader (a truncated copy, or a file changed after the save).
        """
        for name, artifact in self._declared.items():
            file_name = (files or {}).get(name, artifact.file_name)
            path = directory / file_name
            if not path.is_file():
                raise ArtifactError(f"artifact {name!r}: file {path} is missing from the bundle")
            expected = (sha256 or {}).get(name)
            if expected and file_sha256(path) != expected:
                raise ArtifactError(
                    f"artifact {name!r}: {path} does not match the SHA-256 the bundle records "
                    f"({expected[:12]}...); the file was changed or damaged after the save"
                )
            self._keep(name, self._load(name, artifact, path))

    @staticmethod
    def _load(name: str, artifact: Artifact, path: Path) -> Any:
        try:
            return artifact.load_file(path)
        except ArtifactError:
            raise
        except Exception as exc:  # a corrupt file or a missing library surfaces here
            raise ArtifactError(
                f"artifact {name!r}: cannot load {path} as {artifact.kind}: {type(exc).__name__}: {exc}"
            ) from exc


_C = TypeVar("_C", bound=type)


def declare(artifact_list: Iterable[Artifact]) -> Callable[[_C], _C]:
    """Class decorator recording the artifacts a service needs (exposed as ``@artifacts``)."""
    if isinstance(artifact_list, Artifact):
        artifact_list = [artifact_list]
    items = list(artifact_list)
    for item in items:
        if not isinstance(item, Artifact):
            raise InvalidArgument(
                f"@artifacts takes a list of Artifact objects such as PickleArtifact('model'), got {item!r}"
            )
    names = [a.name for a in items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidArgument(f"@artifacts declares {', '.join(duplicates)} more than once")

    def record(cls: _C) -> _C:
        from bentolite.service import Service

        if not (isinstance(cls, type) and issubclass(cls, Service)):
            raise ServiceError(f"@artifacts must decorate a subclass of bentolite.Service, not {cls!r}")
        setattr(cls, ARTIFACTS_ATTR, tuple(items))
        return cls

    return record


#: every built-in kind by the name recorded in bentolite.yaml
KINDS: dict[str, type[Artifact]] = {
    k.__name__: k
    for k in (
        PickleArtifact,
        JoblibArtifact,
        SklearnModelArtifact,
        JSONArtifact,
        TextArtifact,
        NumpyArtifact,
    )
}


class _ArtifactsModule(types.ModuleType):
    """Lets ``@artifacts([...])`` work whether ``artifacts`` names this module or the decorator."""

    def __call__(self, artifact_list: Iterable[Artifact]) -> Callable[[_C], _C]:
        return declare(artifact_list)


sys.modules[__name__].__class__ = _ArtifactsModule

__all__ = [
    "Artifact",
    "ArtifactCollection",
    "JSONArtifact",
    "JoblibArtifact",
    "NumpyArtifact",
    "PickleArtifact",
    "SklearnModelArtifact",
    "TextArtifact",
    "declare",
]
