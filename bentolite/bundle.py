"""Write a service to a bundle directory, and load a service back from one.

A bundle is self-contained::

    bentolite.yaml          name, version, APIs, artifacts, env (see bundle_meta.py)
    src/                    the service module (or its package) and included files
    artifacts/              one file per artifact
    env/requirements.txt    the lock: every distribution the service needs, pinned at save time
    env/wheels/             a wheel of the bentolite that saved the bundle
    env/setup.sh            optional setup script run while building an image
    env/entrypoint.sh       the image's entrypoint
    Dockerfile              builds an HTTP server image with the bundle as context
    .dockerignore
    README.md

Saving is atomic: everything is written to a temporary directory next to the target and renamed
into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import os
import platform
import secrets
import shutil
import sys
import types
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path

import attrs

import bentolite
from bentolite import lock as lock_module
from bentolite import requirements, store
from bentolite.artifacts import file_sha256
from bentolite.build_context import collect_files
from bentolite.bundle_meta import ApiRecord, ArtifactRecord, BundleMeta
from bentolite.env_spec import EnvSpec
from bentolite.exceptions import BentoliteError, BundleError, BundleExists, ServiceError
from bentolite.self_wheel import write_wheel
from bentolite.service import Service

logger = logging.getLogger(__name__)

SOURCE_ATTR = "__bentolite_source__"


def new_version(prefix: str = "") -> str:
    """``<prefix>YYYYMMDDHHMMSS_XXXXXX``: UTC time plus 6 random hex digits."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{prefix}{stamp}_{secrets.token_hex(3).upper()}"


def _source_files(
    cls: type, allow_external_symlinks: bool = False, collected_from: Path | None = None
) -> tuple[str, list[tuple[str, Path]]]:
    """The service's module name and the files to copy into ``src/`` (relative name, path).

    A service in a package brings the package's folder, collected as a build collects its
    directory (:func:`bentolite.build_context.collect_files`): a symbolic link leading outside
    the folder is an error unless ``allow_external_symlinks``. A package inside
    ``collected_from`` (a build directory whose files a build has already chosen) brings only
    the service's module and the ``__init__.py`` files above it.
    """
    if SOURCE_ATTR in cls.__dict__:
        src_dir, module = getattr(cls, SOURCE_ATTR)
        return module, _folder_files(src_dir, allow_external_symlinks)
    module_name = cls.__module__
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file:
        raise ServiceError(
            f"{cls.__name__} is not defined in a .py file (module {module_name!r}); "
            "move the class into a module such as my_service.py so the bundle can import it"
        )
    path = Path(file).resolve()
    if module_name == "__main__":
        module_name = path.stem
        if not module_name.isidentifier():
            raise ServiceError(f"{path.name}: rename the file so its stem is a Python identifier")
    top = module_name.split(".")[0]
    if "." not in module_name:
        return module_name, [(path.name, path)]
    top_module = sys.modules[top]
    if getattr(top_module, "__file__", None):
        package_dir = Path(top_module.__file__).resolve().parent
    else:  # a namespace package (a folder without __init__.py): the portion holding the module
        portions = [Path(p).resolve() for p in top_module.__path__]
        package_dir = next((p for p in portions if path.is_relative_to(p)), portions[0])
    if collected_from is not None and package_dir.is_relative_to(collected_from.resolve()):
        if path.is_relative_to(package_dir):
            inits = [f / "__init__.py" for f in (path.parent, *path.parent.parents)]
            chosen = [path, *(i for i in inits if i.is_relative_to(package_dir) and i.is_file())]
            return module_name, [(f"{top}/{p.relative_to(package_dir).as_posix()}", p) for p in chosen]
    files = _folder_files(package_dir, allow_external_symlinks)
    return module_name, [(f"{top}/{rel}", p) for rel, p in files]


#: how to fix a link leading outside a saved service's folder
SAVE_REMEDY = "remove it, or pass allow_external_symlinks=True to save()"


def _folder_files(directory: Path, allow_external_symlinks: bool) -> list[tuple[str, Path]]:
    return collect_files(
        directory, ["*"], allow_external_symlinks=allow_external_symlinks, remedy=SAVE_REMEDY
    )


def _copy_files(files: Iterable[tuple[str, Path]], destination: Path) -> None:
    for rel, path in files:
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _major_minor(version: str) -> str:
    return ".".join(str(version).split(".")[:2])


def _requirements_text(
    env: EnvSpec,
    lock: bool,
    index_url: str | None,
    extra_index_urls: list[str],
) -> tuple[str, list[str], dict[str, object]]:
    """(``env/requirements.txt``, the pinned requested lines, what bentolite.yaml records)."""
    lines = requirements.resolve_lines(env.pip_packages, env.requirements_txt_file, lock=lock)
    # Index options go first in requirements.txt, so a plain `pip install -r` honours them.
    options = [f"--index-url {index_url}"] if index_url else []
    options += [f"--extra-index-url {url}" for url in extra_index_urls]
    options += [line.text for line in lines if line.is_option and line.text not in options]
    requested = [line.text for line in lines if not line.is_option]
    if not lock:
        return "".join(f"{line}\n" for line in [*options, *requested]), requested, {"locked": False}
    locked = lock_module.lock(
        lines,
        python_version=env.python_version,
        index_url=index_url,
        extra_index_urls=extra_index_urls,
    )
    locked = attrs.evolve(locked, options=tuple(options))
    record = {"locked": locked.complete, "lock_hashes": locked.hashed}
    return locked.render(), requested, record


def _env_record(
    env: EnvSpec,
    staging: Path,
    lock: bool,
    index_url: str | None = None,
    extra_index_urls: Iterable[str] = (),
    docker_env: Mapping[str, str] | None = None,
) -> dict[str, object]:
    env_dir = staging / "env"
    env_dir.mkdir(parents=True)
    extra_index_urls = list(extra_index_urls)
    text, requested, lock_record = _requirements_text(env, lock, index_url, extra_index_urls)
    (env_dir / "requirements.txt").write_text(text)
    wheel = write_wheel(env_dir / "wheels")
    setup_sh = None
    if env.setup_sh:
        script = Path(env.setup_sh)
        text = script.read_text() if "\n" not in env.setup_sh and script.is_file() else env.setup_sh
        (env_dir / "setup.sh").write_text(text)
        setup_sh = "env/setup.sh"
    return {
        "python_version": env.python_version,
        "pip_packages": list(env.pip_packages),
        "requirements_txt": "env/requirements.txt",
        "requirements": requested,
        **lock_record,
        "system_packages": list(env.system_packages),
        "docker_base_image": env.docker_base_image,
        "setup_sh": setup_sh,
        "bentolite_wheel": wheel.relative_to(staging).as_posix(),
        "pip_index_url": index_url,
        "pip_extra_index_urls": extra_index_urls,
        "docker_env": dict(docker_env or {}),
    }


def warn_if_python_differs(image_python: str | None, pickled_with: str, where: str) -> None:
    """Warn when the image's Python (major.minor) is not the one that pickled the artifacts."""
    if image_python and _major_minor(image_python) != _major_minor(pickled_with):
        logger.warning(
            "%s: the image runs Python %s but the artifacts were pickled on Python %s; they may "
            "not load there (set docker.python_version to %s, or save on Python %s)",
            where,
            _major_minor(image_python),
            _major_minor(pickled_with),
            _major_minor(pickled_with),
            _major_minor(image_python),
        )


def runtime_warnings(meta: BundleMeta) -> list[str]:
    """How the running Python, cloudpickle and numpy differ from those that saved the bundle."""
    found = []
    running = platform.python_version()
    if _major_minor(running) != _major_minor(meta.python_version):
        found.append(
            f"Python {_major_minor(running)} runs it, Python {_major_minor(meta.python_version)} saved it"
        )
    current = lock_module.runtime_versions(meta.pickled_with)
    for name, saved in meta.pickled_with.items():
        now = current.get(name)
        if now is None:
            found.append(f"{name} {saved} saved it and is not installed here")
        elif now.split(".")[0] != str(saved).split(".")[0]:
            found.append(f"{name} {now} is installed, {name} {saved} saved it")
    return found


def save_bundle(
    service: Service,
    *,
    version: str | None = None,
    target: Path | None = None,
    labels: dict[str, str] | None = None,
    description: str | None = None,
    extra_files: Iterable[tuple[str, Path]] = (),
    lock: bool = True,
    env: EnvSpec | None = None,
    index_url: str | None = None,
    extra_index_urls: Iterable[str] = (),
    docker_env: Mapping[str, str] | None = None,
    compile_bytecode: bool = True,
    cors_origins: Iterable[str] = (),
    allow_external_symlinks: bool = False,
    collected_from: Path | None = None,
) -> Path:
    """Write ``service`` as a bundle; returns the bundle directory.

    With no ``target`` the bundle goes to the store under ``<name>/<version>``. ``extra_files``
    are (path inside ``src/``, file) pairs copied next to the service module. ``env`` replaces
    the service's ``@env`` record; ``index_url``/``extra_index_urls`` become pip options in
    ``env/requirements.txt``; ``docker_env`` is recorded for the image's environment variables;
    ``compile_bytecode=False`` leaves bytecode out of its images. ``lock=False`` writes the
    requirements as given instead of the full lock. ``cors_origins`` are recorded as the origins
    ``bentolite serve`` allows when it is given none. A symbolic link in the service's package
    folder that leads outside it is an error unless ``allow_external_symlinks``;
    ``collected_from`` is the folder ``extra_files`` were chosen from (a build directory), whose
    choice stands for the rest of a package inside it.
    """
    service.check_ready_to_save()
    name = store.check_name(service.name)
    version = store.check_version(version or new_version(service.version_prefix()))
    destination = Path(target) if target is not None else store.bundle_dir(name, version)
    if destination.exists():
        raise _exists(name, version, destination)
    module, files = _source_files(type(service), allow_external_symlinks, collected_from)
    destination.parent.mkdir(parents=True, exist_ok=True)
    store.remove_stale_staging()
    if target is not None:
        store.remove_stale_staging(destination.parent)
    staging = store.staging_path(destination.parent, destination.name)
    try:
        staging.mkdir()
        _copy_files([*files, *extra_files], staging / "src")
        artifact_files = service.artifacts.save(staging / "artifacts")
        env_spec = env or service.env_spec()
        warn_if_python_differs(env_spec.python_version, platform.python_version(), f"saving {name}")
        env_record = _env_record(env_spec, staging, lock, index_url, extra_index_urls, docker_env)
        env_record["compile_bytecode"] = compile_bytecode
        meta = BundleMeta(
            name=name,
            version=version,
            created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            bentolite_version=bentolite.__version__,
            python_version=platform.python_version(),
            module=module,
            service_class=type(service).__name__,
            apis=tuple(ApiRecord(**spec.to_dict()) for spec in service.apis.values()),
            artifacts=tuple(
                ArtifactRecord(
                    name=a.name,
                    kind=a.kind,
                    file=artifact_files[a.name],
                    options=a.options(),
                    sha256=file_sha256(staging / "artifacts" / artifact_files[a.name]),
                )
                for a in service.declared_artifacts()
            ),
            env=env_record,
            pickled_with=dict(lock_module.runtime_versions()),
            labels=dict(labels or {}),
            description=description if description is not None else (type(service).__doc__ or ""),
            cors_origins=tuple(cors_origins),
        )
        meta.write(staging)
        _write_generated_files(meta, staging)
        try:
            os.rename(staging, destination)
        except OSError:
            if destination.exists():  # another save of the same version won the race
                raise _exists(name, version, destination) from None
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    service._name, service._version, service._bundle_path = name, version, destination
    logger.info("Saved bundle %s:%s to %s", name, version, destination)
    return destination


def _exists(name: str, version: str, destination: Path) -> BundleExists:
    return BundleExists(
        f"{name}:{version} already exists ({destination}); choose another version or directory"
    )


def _write_generated_files(meta: BundleMeta, staging: Path) -> None:
    from bentolite.dockerfile import write_docker_files
    from bentolite.templating import render

    write_docker_files(staging, meta, target="http")
    (staging / "README.md").write_text(render("bundle_README.md.j2", meta=meta))


@contextlib.contextmanager
def _own_sibling_modules(src: Path) -> Iterator[None]:
    """While a bundle is imported (and its artifacts unpickled), its own top-level modules win.

    ``from helpers import x`` in a bundle must get that bundle's ``helpers.py`` even when another
    bundle (another version of the same service, say) already imported a ``helpers``. Modules of
    those names imported before are set aside and put back afterwards, so what was loaded first
    keeps its modules; the bundle's own copies stay referenced by the code that imported them.
    """
    if not src.is_dir():
        raise BundleError(f"{src.parent} is not a complete bundle: its src/ folder is missing")
    names = {p.stem if p.is_file() else p.name for p in src.iterdir() if p.suffix == ".py" or p.is_dir()}

    def ours(module_name: str) -> bool:
        return module_name.split(".", 1)[0] in names

    set_aside = {name: sys.modules.pop(name) for name in [m for m in sys.modules if ours(m)]}
    if str(src) in sys.path:
        sys.path.remove(str(src))
    sys.path.insert(0, str(src))  # absolute imports of the service's sibling modules
    try:
        yield
    finally:
        sys.modules.update(set_aside)


def _import_service_class(src: Path, module: str, class_name: str) -> type[Service]:
    """Import the service class from a bundle's ``src/`` under a name unique to that bundle,
    so two versions of one service load side by side in one process."""
    package = f"_bentolite_bundle_{hashlib.sha1(str(src).encode()).hexdigest()[:12]}"
    if package not in sys.modules:
        namespace = types.ModuleType(package)
        namespace.__path__ = [str(src)]  # type: ignore[attr-defined]
        sys.modules[package] = namespace
    try:
        loaded = importlib.import_module(f"{package}.{module}")
    except BentoliteError:
        raise
    except Exception as exc:  # any error in user code at import time
        raise BundleError(f"cannot import {module} from {src}: {type(exc).__name__}: {exc}") from exc
    cls = getattr(loaded, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        raise BundleError(f"{src}/{module}: no Service class named {class_name!r}")
    if SOURCE_ATTR not in cls.__dict__:
        setattr(cls, SOURCE_ATTR, (src, module))
    return cls


def load_bundle(path_or_tag: str | os.PathLike[str], *, load_artifacts: bool = True) -> Service:
    """Load the service in a bundle directory or a store tag (artifacts loaded unless told not)."""
    path = store.resolve(path_or_tag)
    meta = BundleMeta.read(path)
    differences = runtime_warnings(meta)
    if differences:
        logger.warning(
            "loading %s where its artifacts may not unpickle: %s", meta.tag, "; ".join(differences)
        )
    src = (path / "src").resolve()
    with _own_sibling_modules(src):
        cls = _import_service_class(src, meta.module, meta.service_class)
        service = cls()
        service._name, service._version, service._bundle_path = meta.name, meta.version, path
        if load_artifacts:
            service.artifacts.load(
                path / "artifacts",
                {a.name: a.file for a in meta.artifacts},
                {a.name: a.sha256 for a in meta.artifacts if a.sha256},
            )
    return service
