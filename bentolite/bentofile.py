"""``BuildConfig``: the ``bentofile.yaml`` that describes how to build a bundle.

The file is read through YAML's node API (:mod:`bentolite.bentofile_reader`), so every key and
list item keeps its line number and every error names the file, the line and the key. Validation
is strict: an unknown key (with a did-you-mean), a value of the wrong type or an invalid value is
an error. Scalars meant as text are read exactly as written, so ``version: 1.10`` is the text
``"1.10"``, never the number 1.1.

The rule for each kind of value lives in :mod:`bentolite.bentofile_checks`. ``BuildConfig``
renders back to YAML (``to_yaml``) and reading that text gives an equal object.
See ``bentofile.example.yaml`` at the repository root for every key, documented.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Callable

import attrs

from bentolite import safe_yaml
from bentolite.bentofile_checks import (  # noqa: F401 - did_you_mean is public here too
    _check_artifacts,
    _check_base_image,
    _check_copied,
    _check_env_vars,
    _check_file_key,
    _check_labels,
    _check_name,
    _check_origins,
    _check_packages,
    _check_patterns,
    _check_python_version,
    _check_service,
    _check_system_packages,
    _check_url,
    _check_urls,
    _check_version,
    _FieldError,
    _strings,
    _text_map,
    did_you_mean,
)
from bentolite.bentofile_reader import (  # noqa: F401 - the schemas are public here too
    _DOCKER_SCHEMA,
    _PYTHON_SCHEMA,
    _SCHEMA,
    _SERVE_SCHEMA,
    NodeReader,
    line_of,
)
from bentolite.exceptions import ConfigError

BENTOFILE = "bentofile.yaml"
#: every file under the build directory, except the ones build_context.py always leaves out
DEFAULT_INCLUDE = ("*",)


# --- the configuration ---------------------------------------------------------------------------


@attrs.frozen
class PythonOptions:
    """``python:``: the Python requirements written to the bundle's ``env/requirements.txt``."""

    packages: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_check_packages)
    requirements_txt: str | None = attrs.field(default=None, validator=_check_file_key)
    lock: bool = True
    index_url: str | None = attrs.field(default=None, validator=_check_url)
    extra_index_url: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_check_urls)

    def to_dict(self) -> dict[str, Any]:
        return _non_default(self)


@attrs.frozen
class DockerOptions:
    """``docker:``: what the bundle's image needs beyond Python packages."""

    base_image: str | None = attrs.field(default=None, validator=_check_base_image)
    python_version: str | None = attrs.field(default=None, validator=_check_python_version)
    system_packages: tuple[str, ...] = attrs.field(
        default=(), converter=_strings, validator=_check_system_packages
    )
    env: dict[str, str] = attrs.field(factory=dict, converter=_text_map, validator=_check_env_vars)
    setup_script: str | None = attrs.field(default=None, validator=_check_file_key)
    compile_bytecode: bool = True

    def to_dict(self) -> dict[str, Any]:
        return _non_default(self)


@attrs.frozen
class ServeOptions:
    """``serve:``: how ``bentolite serve`` (and so the HTTP image) serves the bundle, unless its
    options or environment variables say otherwise."""

    cors_origins: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_check_origins)

    def to_dict(self) -> dict[str, Any]:
        return _non_default(self)


@attrs.frozen
class BuildConfig:
    """A parsed, validated ``bentofile.yaml``.

    ``source`` (the file's name, for messages) and ``lines`` (dotted key -> line number) do not
    take part in equality: two files saying the same thing are equal configurations.
    """

    service: str = attrs.field(validator=_check_service)
    name: str | None = attrs.field(default=None, validator=_check_name)
    version: str | None = attrs.field(default=None, validator=_check_version)
    labels: dict[str, str] = attrs.field(factory=dict, converter=_text_map, validator=_check_labels)
    description: str | None = None
    include: tuple[str, ...] = attrs.field(
        default=DEFAULT_INCLUDE, converter=_strings, validator=_check_patterns
    )
    exclude: tuple[str, ...] = attrs.field(default=(), converter=_strings, validator=_check_patterns)
    allow_external_symlinks: bool = False
    python: PythonOptions = attrs.field(factory=PythonOptions)
    docker: DockerOptions = attrs.field(factory=DockerOptions)
    serve: ServeOptions = attrs.field(factory=ServeOptions)
    artifacts: dict[str, str] = attrs.field(factory=dict, converter=_text_map, validator=_check_artifacts)
    #: the artifacts (names under ``artifacts:``) whose files are copied as they are, unloaded
    copy_artifacts: tuple[str, ...] = attrs.field(
        default=(), converter=_strings, validator=lambda self, _, value: _check_copied(self, value)
    )
    source: str = attrs.field(default=BENTOFILE, eq=False, repr=False)
    lines: dict[str, int] = attrs.field(factory=dict, eq=False, repr=False)

    # --- reading -------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, text: str, source: str = BENTOFILE) -> BuildConfig:
        """Parse and validate bentofile text; ``source`` names the file in error messages."""
        reader = NodeReader(source)
        return _configuration(reader, reader.read(safe_yaml.compose(text, source, ConfigError)))

    @classmethod
    def from_file(cls, path: str | Path) -> BuildConfig:
        """Read a bentofile and check that the files it names exist next to it."""
        file = Path(path)
        if not file.is_file():
            raise ConfigError(
                f"{file}: no such file; write a {BENTOFILE} with at least "
                "'service: module.py:ServiceClass', or choose another file with -f"
            )
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{file}: not UTF-8 text ({exc.reason})") from None
        config = cls.from_yaml(text, source=str(path))
        config.check_files(file.resolve().parent)
        return config

    def where(self, key: str) -> str:
        """``"bentofile.yaml:7"``: the file and line of a dotted key (or of its nearest parent)."""
        return f"{self.source}:{line_of(self.lines, key)}"

    def error(self, key: str, message: str) -> ConfigError:
        """A :class:`ConfigError` naming the file, the line and ``key``."""
        return ConfigError(f"{self.where(key)}: {key}: {message}")

    # --- what the keys mean --------------------------------------------------------------------
    @property
    def service_module(self) -> str:
        """The part of ``service`` before the colon: a ``.py`` path or a dotted module name."""
        return self.service.rsplit(":", 1)[0]

    @property
    def service_attr(self) -> str:
        """The part of ``service`` after the colon (possibly dotted, ``module:obj.attr``)."""
        return self.service.rsplit(":", 1)[1]

    def module_name(self) -> str:
        """The dotted name the service module is imported as, from the build directory."""
        module = self.service_module
        if not module.endswith(".py"):
            return module
        return ".".join(PurePosixPath(module.replace("\\", "/")).with_suffix("").parts)

    def check_files(self, build_dir: Path) -> None:
        """Raise a :class:`ConfigError` for the first file named by the config that is missing."""
        named: list[tuple[str, str]] = []
        if self.service_module.endswith(".py"):
            named.append(("service", self.service_module))
        if self.python.requirements_txt:
            named.append(("python.requirements_txt", self.python.requirements_txt))
        if self.docker.setup_script:
            named.append(("docker.setup_script", self.docker.setup_script))
        named += [(f"artifacts.{name}", path) for name, path in self.artifacts.items()]
        for key, value in named:
            if not (build_dir / value).is_file():
                raise self.error(key, f"file {value!r} does not exist (looked in {build_dir})")

    # --- writing -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The keys that differ from their defaults, in the documented order."""
        data = _non_default(self, skip=("source", "lines", "python", "docker", "serve"))
        for key in ("python", "docker", "serve"):
            options = getattr(self, key).to_dict()
            if options:
                data[key] = options
        data.pop("copy_artifacts", None)
        if "artifacts" in data:  # keep artifacts last, as in the example file
            data["artifacts"] = {
                name: {"file": file, "copy": True} if name in self.copy_artifacts else file
                for name, file in data.pop("artifacts").items()
            }
        return data

    def to_yaml(self) -> str:
        return safe_yaml.dump(self.to_dict())


def _non_default(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(type(obj)):
        if field.name in skip:
            continue
        value = getattr(obj, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if value == default:
            continue
        out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


# --- from what the reader read to the typed configuration --------------------------------------
def _configuration(reader: NodeReader, values: dict[str, Any]) -> BuildConfig:
    python_values = values.pop("python", None) or {}
    if "lock_packages" in python_values:
        if "lock" in python_values:
            raise reader.fail(
                reader.lines["python.lock_packages"],
                "python.lock_packages",
                f"is another name for python.lock (line {reader.lines['python.lock']}); keep one",
            )
        python_values["lock"] = python_values.pop("lock_packages")
    python = _build(reader, PythonOptions, python_values, "python.")
    docker = _build(reader, DockerOptions, values.pop("docker", None) or {}, "docker.")
    serve = _build(reader, ServeOptions, values.pop("serve", None) or {}, "serve.")
    kwargs = {k: v for k, v in values.items() if v is not None}
    kwargs["copy_artifacts"] = tuple(reader.copied)
    parts = {"python": python, "docker": docker, "serve": serve}
    return _build(reader, BuildConfig, {**kwargs, **parts}, "", finish=True)


def _build(
    reader: NodeReader, cls: Callable[..., Any], kwargs: dict[str, Any], prefix: str, finish: bool = False
) -> Any:
    """``cls(**kwargs)``, a field's refusal turned into an error naming the file, line and key."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if finish:
        kwargs.update(source=reader.source, lines=reader.lines)
    try:
        return cls(**kwargs)
    except _FieldError as exc:
        key = prefix + exc.key
        raise reader.fail(line_of(reader.lines, key), key, exc.reason) from None
