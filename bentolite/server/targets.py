"""What ``bentolite serve TARGET`` names, turned into a :class:`~bentolite.service.Service`.

TARGET is one of:

* a tag in the store: ``Name``, ``Name:latest`` or ``Name:version``;
* a bundle directory (it holds ``bentolite.yaml``);
* a build directory (it holds ``bentofile.yaml``): the service it names, loaded as
  ``bentolite build`` loads it (``bentolite.builder.load_service``);
* ``path/to/module.py:attr`` for development: ``attr`` is a packed ``Service`` instance, or a
  ``Service`` class that declares no artifacts (it is instantiated).

Every kind ends as the same object, and everything downstream takes that object. Bundles come
back with their artifacts not loaded yet: the server loads them at startup and reports
readiness meanwhile.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from bentolite.bentofile import BENTOFILE
from bentolite.bundle import load_bundle
from bentolite.bundle_meta import META_FILE
from bentolite.exceptions import ArtifactError, BentoliteError, InvalidArgument, NotFound, ServiceError
from bentolite.service import Service


def normalize_target(target: str | os.PathLike[str]) -> str:
    """The target with any path made absolute, so another process or directory can load it."""
    text = os.fspath(target)
    module, sep, attr = text.rpartition(":")
    if sep and module.endswith(".py"):
        return f"{Path(module).resolve()}:{attr}"
    if Path(text).is_dir():
        return str(Path(text).resolve())
    return text


def source_dir(target: str) -> Path | None:
    """The directory whose files a development server reloads on (None for store tags)."""
    module, sep, _ = target.rpartition(":")
    if sep and module.endswith(".py"):
        return Path(module).resolve().parent
    path = Path(target)
    if (path / META_FILE).is_file():
        return (path / "src").resolve()
    return path.resolve() if path.is_dir() else None


def load_target(target: str | os.PathLike[str]) -> Service:
    """The service ``target`` names (see the module docstring)."""
    text = os.fspath(target)
    module, sep, attr = text.rpartition(":")
    if sep and module.endswith(".py"):
        return load_module_target(Path(module), attr)
    path = Path(text)
    if path.is_dir():
        if (path / META_FILE).is_file():
            return load_bundle(path, load_artifacts=False)
        if (path / BENTOFILE).is_file():
            return load_bentofile_target(path)
        raise NotFound(f"{path} is neither a bundle ({META_FILE}) nor a build directory ({BENTOFILE})")
    if text.endswith(".py") or path.is_file():
        raise InvalidArgument(f"{text}: name the service inside the module, as in {text}:svc")
    return load_bundle(text, load_artifacts=False)


def recorded_cors_origins(service: Service, target: str) -> tuple[str, ...]:
    """The ``serve.cors_origins`` recorded for ``target``: in the bundle ``service`` was loaded
    from, else in the bentofile of a build directory; ``()`` for anything else."""
    from bentolite.bundle_meta import BundleMeta

    if service.bundle_path is not None:
        return BundleMeta.read(service.bundle_path).cors_origins
    path = Path(target) if target else None
    if path is not None and path.is_dir() and (path / BENTOFILE).is_file():
        from bentolite.bentofile import BuildConfig

        return BuildConfig.from_file(path / BENTOFILE).serve.cors_origins
    return ()


def load_module_target(path: Path, attr: str) -> Service:
    """``module.py:attr``: a packed Service instance or an artifact-free Service class."""
    module = import_file(path)
    where = f"{path}:{attr}"
    obj = _get_attr(module, attr, where)
    if isinstance(obj, type) and issubclass(obj, Service):
        declared = [a.name for a in obj.declared_artifacts()]
        if declared:
            raise ArtifactError(
                f"{where} is the class {obj.__name__}, which declares artifact(s) {', '.join(declared)} "
                "that a class cannot hold: point at a packed instance instead "
                f"(svc = {obj.__name__}(); svc.pack(...) in the module, then {path}:svc) "
                "or serve a saved bundle"
            )
        return obj()
    if isinstance(obj, Service):
        missing = obj.artifacts.missing()
        if missing:
            raise ArtifactError(
                f"{where}: artifact(s) {', '.join(missing)} of {obj.name} are not packed; "
                "call svc.pack(name, obj) in the module, or serve a saved bundle"
            )
        return obj
    raise ServiceError(f"{where} is a {type(obj).__name__}, not a bentolite Service class or instance")


def load_bentofile_target(build_dir: Path) -> Service:
    """A build directory: the service its ``bentofile.yaml`` names, under the name it gives and
    with the artifact files it lists packed, exactly as ``bentolite build`` would bundle it."""
    from bentolite.bentofile import BuildConfig
    from bentolite.builder import load_service

    return load_service(BuildConfig.from_file(build_dir / BENTOFILE), build_dir)


def import_file(path: Path) -> ModuleType:
    """Import a ``.py`` file as the module named after its stem, with its directory on
    ``sys.path`` (as ``python file.py`` would) so that its sibling imports work."""
    path = path.resolve()
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    name = path.stem
    if not name.isidentifier():
        raise ServiceError(f"{path.name}: rename the file so that its stem is a Python identifier")
    loaded = sys.modules.get(name)
    if loaded is not None:
        loaded_file = getattr(loaded, "__file__", None)
        if loaded_file and Path(loaded_file).resolve() == path:
            return loaded
        raise ServiceError(
            f"{path}: a module named {name!r} is already imported from {loaded_file}; rename the file"
        )
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BentoliteError:
        del sys.modules[name]
        raise
    except Exception as exc:  # any error in user code at import time
        del sys.modules[name]
        raise ServiceError(f"cannot import {path}: {type(exc).__name__}: {exc}") from exc
    return module


def _get_attr(module: ModuleType, attr: str, where: str) -> Any:
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise NotFound(f"{where}: {getattr(obj, '__name__', attr)} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj
