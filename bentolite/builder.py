"""Build a bundle from a ``bentofile.yaml``: the arrow ``bentofile.yaml -> bundle dir``.

:func:`build` reads the bentofile (:mod:`bentolite.bentofile`), imports the service from the
build directory (the bentofile's folder), packs the artifact files the bentofile names, collects
the ``include``/``exclude`` files into ``src/`` and saves the bundle with
:func:`bentolite.bundle.save_bundle`, which makes the save atomic.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

from bentolite import requirements
from bentolite.bentofile import BENTOFILE, BuildConfig, did_you_mean
from bentolite.build_context import collect_files
from bentolite.bundle import save_bundle
from bentolite.env_spec import EnvSpec
from bentolite.exceptions import ArtifactError, BentoliteError, BuildError
from bentolite.service import Service

#: the steps :func:`build` reports to ``progress``, in order
STEPS = ("Collecting sources", "Packing artifacts", "Resolving requirements", "Rendering files")

Progress = Callable[[str], None]


def _stdlib_module_names() -> frozenset[str]:
    """Top-level names of the standard library. Python 3.9 has no ``sys.stdlib_module_names``:
    there they are the modules in the standard library's folders (less its ``test`` package)."""
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:
        lib = os.path.dirname(os.__file__)
        folders = [lib, os.path.join(lib, "lib-dynload"), os.path.join(sys.base_prefix, "DLLs")]
        names = {m.name for m in pkgutil.iter_modules(folders)} - {"test"}
    return frozenset(names) | set(sys.builtin_module_names)


_STDLIB = _stdlib_module_names()
logger = logging.getLogger(__name__)


def build(
    bentofile_path: str | os.PathLike[str] = BENTOFILE,
    version: str | None = None,
    labels: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Build the bundle a bentofile describes into the store; returns the bundle directory.

    ``version`` and ``labels`` override the bentofile's. ``progress`` is called with the name of
    each step (see :data:`STEPS`) as it starts.
    """
    report = progress or (lambda step: None)
    bentofile = Path(bentofile_path)
    config = BuildConfig.from_file(bentofile)
    build_dir = bentofile.resolve().parent
    module_name = _checked_module_name(config)

    with _imports_from(build_dir, module_name):
        report(STEPS[0])
        service = _import_service(config, build_dir, module_name)
        files = collect_files(
            build_dir,
            config.include,
            config.exclude,
            skip=[build_dir / p for p in config.artifacts.values()],
            allow_external_symlinks=config.allow_external_symlinks,
        )

        report(STEPS[1])
        _pack_artifacts(service, config, build_dir, report, copy=True)

        report(STEPS[2])
        env = _env_spec(service, config, build_dir)
        requirements.resolve(env.pip_packages, env.requirements_txt_file, lock=config.python.lock)

        report(STEPS[3])
        path = save_bundle(
            service,
            version=version or config.version,
            labels={**config.labels, **dict(labels or {})},
            description=config.description,
            extra_files=files,
            lock=config.python.lock,
            env=env,
            index_url=config.python.index_url,
            extra_index_urls=config.python.extra_index_url,
            docker_env=config.docker.env,
            compile_bytecode=config.docker.compile_bytecode,
            cors_origins=config.serve.cors_origins,
            allow_external_symlinks=config.allow_external_symlinks,
            collected_from=build_dir,
        )
    logger.info("Built bundle %s:%s from %s", service.name, path.name, bentofile)
    return path


# --- the service ---------------------------------------------------------------------------------


def load_service(config: BuildConfig, build_dir: Path) -> Service:
    """The service a bentofile names, ready to use: imported from ``build_dir`` (added to
    ``sys.path``, where it stays), named as the bentofile says and with its ``artifacts:`` packed."""
    build_dir = build_dir.resolve()
    module_name = _checked_module_name(config)
    if str(build_dir) not in sys.path:
        sys.path.insert(0, str(build_dir))
    service = _import_service(config, build_dir, module_name)
    _pack_artifacts(service, config, build_dir)
    return service


def _checked_module_name(config: BuildConfig) -> str:
    module_name = config.module_name()
    top = module_name.split(".")[0]
    if top in _STDLIB or top == "bentolite":
        raise config.error(
            "service",
            f"the module {top!r} would hide the module of the same name that Python needs; rename it",
        )
    return module_name


@contextlib.contextmanager
def _imports_from(build_dir: Path, module_name: str) -> Iterator[None]:
    """Import from ``build_dir`` first, and afterwards leave ``sys.path`` and ``sys.modules`` as
    they were: modules of the build directory imported meanwhile are forgotten, and modules of the
    same names imported earlier from elsewhere (say another project's ``helpers``) are set aside
    meanwhile and put back."""
    tops = {module_name.split(".")[0]} | {
        name
        for name, module in list(sys.modules.items())
        if "." not in name and _shadowed(name, module, build_dir)
    }

    def same_name(name: str) -> bool:
        return (
            name == module_name
            or module_name.startswith(name + ".")
            or name.startswith(module_name + ".")
            or name.split(".")[0] in tops
        )

    saved_path = list(sys.path)
    before = set(sys.modules)
    displaced = {name: sys.modules.pop(name) for name in list(sys.modules) if same_name(name)}
    sys.path.insert(0, str(build_dir))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - before:
            if same_name(name) or _defined_in(sys.modules[name], build_dir):
                del sys.modules[name]
        sys.modules.update(displaced)


def _shadowed(name: str, module: Any, build_dir: Path) -> bool:
    """Whether the build directory defines top-level module ``name`` while ``module``, a user
    module from elsewhere, holds that name (the standard library and installed packages keep
    theirs, as they would in the bundle)."""
    if name in _STDLIB or name == "bentolite" or _defined_in(module, build_dir):
        return False
    if not ((build_dir / f"{name}.py").is_file() or (build_dir / name / "__init__.py").is_file()):
        return False
    file = getattr(module, "__file__", None)
    return bool(file) and not {"site-packages", "dist-packages"} & set(Path(file).parts)


def _defined_in(module: Any, directory: Path) -> bool:
    file = getattr(module, "__file__", None)
    if not file:
        return False
    path = Path(file).resolve()
    return path.is_relative_to(directory) and not {"site-packages", "dist-packages"} & set(path.parts)


def _import_service(config: BuildConfig, build_dir: Path, module_name: str) -> Service:
    """The service the bentofile's ``service`` key names (an instance, or a class instantiated),
    under the bentofile's ``name``."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise config.error("service", f"no module {module_name!r} in {build_dir}") from None
        raise BuildError(f"{config.where('service')}: importing {module_name} failed: {exc}") from exc
    except BentoliteError:
        raise
    except Exception as exc:  # any error in the user's module while it is imported
        raise BuildError(
            f"{config.where('service')}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if config.service_module.endswith(".py"):
        expected = (build_dir / config.service_module).resolve()
        found = Path(getattr(module, "__file__", "") or "").resolve()
        if found != expected:
            raise config.error(
                "service",
                f"{module_name!r} was imported from {found}, not {expected}; rename the module "
                "so it does not clash with an installed one",
            )

    obj: Any = module
    for part in config.service_attr.split("."):
        if not hasattr(obj, part):
            candidates = [n for n, v in vars(module).items() if _is_service(v)]
            raise config.error(
                "service",
                f"{module_name} has no attribute {config.service_attr!r}{did_you_mean(part, candidates)}",
            )
        obj = getattr(obj, part)
    if isinstance(obj, type) and issubclass(obj, Service):
        try:
            obj = obj()
        except BentoliteError:
            raise
        except Exception as exc:  # the user's __init__
            raise BuildError(
                f"{config.where('service')}: {obj.__name__}() failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(obj, Service):
        raise config.error(
            "service",
            f"{config.service_attr} in {module_name} is a {type(obj).__name__}, not a bentolite.Service "
            "subclass or instance",
        )
    if config.name:
        obj._name = config.name
    return obj


def _is_service(value: Any) -> bool:
    return isinstance(value, Service) or (isinstance(value, type) and issubclass(value, Service))


def _pack_artifacts(
    service: Service,
    config: BuildConfig,
    build_dir: Path,
    report: Progress | None = None,
    copy: bool = False,
) -> None:
    """Load each file under ``artifacts:`` with its kind's loader and pack it; with ``copy``,
    the files the bentofile marks ``copy: true`` are packed as files, unloaded. ``report`` hears
    ``"Loading artifact model (model.pkl, 1.2 MB)"`` (or ``Copying``) before each one."""
    declared = service.artifacts.declared
    for name, file in config.artifacts.items():
        key = f"artifacts.{name}"
        artifact = declared.get(name)
        if artifact is None:
            raise config.error(
                key,
                f"{type(service).__name__} declares no artifact {name!r} "
                f"(declared: {', '.join(declared) or 'none'}){did_you_mean(name, declared)}",
            )
        path = build_dir / file
        copied = copy and name in config.copy_artifacts
        if report is not None:
            verb = "Copying" if copied else "Loading"
            report(f"{verb} artifact {name} ({file}, {_size_text(path.stat().st_size)})")
        if copied:
            service.artifacts.pack_file(name, path)
            continue
        try:
            obj = artifact.load_file(path)
            service.pack(name, obj)
        except ArtifactError as exc:
            raise ArtifactError(f"{config.where(key)}: {key}: {exc}") from exc
        except Exception as exc:  # a corrupt file, or a library the file needs is missing
            raise ArtifactError(
                f"{config.where(key)}: {key}: cannot load {file} as {artifact.kind}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    missing = service.artifacts.missing()
    if missing:
        raise config.error(
            "artifacts",
            f"{type(service).__name__} needs artifact(s) {', '.join(missing)}, which are not packed; "
            f"name their files under 'artifacts:', e.g. '{missing[0]}: path/to/file'",
        )


def _size_text(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _env_spec(service: Service, config: BuildConfig, build_dir: Path) -> EnvSpec:
    """The service's ``@env`` with the bentofile's ``python:`` and ``docker:`` settings on top:
    package lists are joined, single values are replaced."""
    declared = service.env_spec()
    python, docker = config.python, config.docker

    def in_build_dir(path: str | None) -> str | None:
        # Relative paths in @env are read from the build directory when the file is there.
        if path and "\n" not in path and not Path(path).is_absolute() and (build_dir / path).is_file():
            return str(build_dir / path)
        return path

    return EnvSpec(
        pip_packages=_unique([*declared.pip_packages, *python.packages]),
        requirements_txt_file=(
            str(build_dir / python.requirements_txt)
            if python.requirements_txt
            else in_build_dir(declared.requirements_txt_file)
        ),
        python_version=docker.python_version or declared.python_version,
        docker_base_image=docker.base_image or declared.docker_base_image,
        system_packages=_unique([*declared.system_packages, *docker.system_packages]),
        setup_sh=str(build_dir / docker.setup_script)
        if docker.setup_script
        else in_build_dir(declared.setup_sh),
    )


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
