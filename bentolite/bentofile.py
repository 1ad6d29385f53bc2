"""``BuildConfig``: the ``bentofile.yaml`` that describes how to build a bundle.

The file is read through YAML's node API, so every key and list item keeps its line number and
every error names the file, the line and the key. Validation is strict: an unknown key (with a
did-you-mean), a value of the wrong type or an invalid value is an error. Scalars meant as text
are read exactly as written, so ``version: 1.10`` is the text ``"1.10"``, never the number 1.1.

The rule for each kind of value lives in :mod:`bentolite.bentofile_checks`. ``BuildConfig``
renders back to YAML (``to_yaml``) and reading that text gives an equal object.
See ``bentofile.example.yaml`` at the repository root for every key, documented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Union

import attrs
import yaml

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
from bentolite.exceptions import ConfigError

BENTOFILE = "bentofile.yaml"
#: every file under the build directory, except the ones build_context.py always leaves out
DEFAULT_INCLUDE = ("*",)

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"


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
        return _Reader(source).config(safe_yaml.compose(text, source, ConfigError))

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
        return f"{self.source}:{_line_of(self.lines, key)}"

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


def _line_of(lines: Mapping[str, int], key: str) -> int:
    """The line of ``key`` (``a.b[2]``), else of its nearest parent that has one, else 1."""
    while key and key not in lines:
        key = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", key) if re.search(r"[.\[]", key) else ""
    return lines.get(key, lines.get("", 1))


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


# --- the reader: YAML nodes -> typed values, remembering lines --------------------------------

_Kind = Union[str, dict]  # "text", "bool", "text_list", "text_map", or a nested schema

_PYTHON_SCHEMA: dict[str, _Kind] = {
    "packages": "text_list",
    "requirements_txt": "text",
    "lock": "bool",
    "lock_packages": "bool",  # BentoML's name for ``lock``
    "index_url": "text",
    "extra_index_url": "text_list",
}
_DOCKER_SCHEMA: dict[str, _Kind] = {
    "base_image": "text",
    "python_version": "text",
    "system_packages": "text_list",
    "env": "env_map",
    "setup_script": "text",
    "compile_bytecode": "bool",
}
_SERVE_SCHEMA: dict[str, _Kind] = {
    "cors_origins": "text_list",
}
_SCHEMA: dict[str, _Kind] = {
    "service": "text",
    "name": "text",
    "version": "text",
    "labels": "text_map",
    "description": "text",
    "include": "text_list",
    "exclude": "text_list",
    "allow_external_symlinks": "bool",
    "python": _PYTHON_SCHEMA,
    "docker": _DOCKER_SCHEMA,
    "serve": _SERVE_SCHEMA,
    "artifacts": "artifact_map",
}
_KIND_NAMES = {
    "text": "a string",
    "bool": "true or false",
    "text_list": "a list of strings",
    "text_map": "a mapping of names to strings",
    "env_map": "a mapping of names to strings, or a list of NAME=value strings or name/value mappings",
    "artifact_map": "a mapping of artifact names to files",
}


#: keys of BentoML's bentofile that bentolite does not read, with what to write instead
BENTOML_KEYS: dict[str, str] = {
    "envs": "set the image's environment variables under docker.env (NAME: value)",
    "conda": "bentolite installs with pip: list the packages under python.packages, or install "
    "conda yourself in docker.setup_script",
    "models": "bentolite has no model store: name each artifact's file under artifacts: "
    "(model: path/to/model.pkl)",
    "python.pip_args": "give indexes with python.index_url and python.extra_index_url; other pip "
    "options are not supported",
    "docker.distro": "images are built FROM python:<python_version>-slim (Debian); choose another "
    "with docker.base_image",
    "docker.cuda_version": "bentolite installs no CUDA: set docker.base_image to an image that has "
    "CUDA and Python",
    "docker.dockerfile_template": "bentolite writes its own Dockerfile: add build steps with "
    "docker.setup_script, or run `bentolite containerize --output-context DIR` and edit the "
    "Dockerfile there",
}


def _unknown_key(full: str, key: str, schema: Mapping[str, Any], prefix: str) -> str:
    hint = BENTOML_KEYS.get(full)
    if hint is not None:
        return f"{full!r} is a BentoML key that bentolite does not support; {hint}"
    return f"unknown key {full!r}{did_you_mean(key, schema, prefix)}"


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing (null)"
    if node.tag == _BOOL:
        return f"the boolean {node.value}"
    return f"{node.value!r}"


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self.copied: list[str] = []

    def fail(self, line: int, key: str, message: str) -> ConfigError:
        where = f"{self.source}:{line}"
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    def config(self, root: yaml.Node | None) -> BuildConfig:
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL):
            raise ConfigError(
                f"{self.source}:1: the file is empty; it needs at least 'service: module.py:Class'"
            )
        self.lines[""] = root.start_mark.line + 1
        values = self.mapping(root, "", _SCHEMA)
        if values.get("service") is None:
            raise self.fail(
                self.lines[""], "service", "missing; name the service, e.g. service: 'service.py:MyService'"
            )
        python_values = values.pop("python", None) or {}
        if "lock_packages" in python_values:
            if "lock" in python_values:
                raise self.fail(
                    self.lines["python.lock_packages"],
                    "python.lock_packages",
                    f"is another name for python.lock (line {self.lines['python.lock']}); keep one",
                )
            python_values["lock"] = python_values.pop("lock_packages")
        python = self.build(PythonOptions, python_values, "python.")
        docker = self.build(DockerOptions, values.pop("docker", None) or {}, "docker.")
        serve = self.build(ServeOptions, values.pop("serve", None) or {}, "serve.")
        kwargs = {k: v for k, v in values.items() if v is not None}
        kwargs["copy_artifacts"] = tuple(self.copied)
        parts = {"python": python, "docker": docker, "serve": serve}
        return self.build(BuildConfig, {**kwargs, **parts}, "", finish=True)

    def build(
        self, cls: Callable[..., Any], kwargs: dict[str, Any], prefix: str, finish: bool = False
    ) -> Any:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if finish:
            kwargs.update(source=self.source, lines=self.lines)
        try:
            return cls(**kwargs)
        except _FieldError as exc:
            key = prefix + exc.key
            raise self.fail(_line_of(self.lines, key), key, exc.reason) from None

    def mapping(self, node: yaml.Node, prefix: str, schema: dict[str, _Kind]) -> dict[str, Any]:
        where = prefix.rstrip(".")
        if not isinstance(node, yaml.MappingNode):
            what = "the file" if not where else where
            raise self.fail(
                node.start_mark.line + 1,
                where,
                f"expected a mapping of keys for {what}, got {_describe(node)}",
            )
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(line, where, "keys must be plain names")
            key = key_node.value
            full = prefix + key
            if key not in schema:
                raise self.fail(line, "", _unknown_key(full, key, schema, prefix))
            if full in self.lines:
                raise self.fail(line, full, f"appears twice (first on line {self.lines[full]})")
            self.lines[full] = line
            values[key] = self.value(value_node, full, schema[key])
        return values

    def value(self, node: yaml.Node, key: str, kind: _Kind) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return None  # an empty value leaves the key at its default
        if isinstance(kind, dict):
            return self.mapping(node, key + ".", kind)
        line = node.start_mark.line + 1
        expected = _KIND_NAMES[kind]
        if kind == "text":
            return self.text(node, key, expected)
        if kind == "bool":
            if not (isinstance(node, yaml.ScalarNode) and node.tag == _BOOL):
                raise self.fail(line, key, f"expected {expected}, got {_describe(node)}")
            return node.value.lower() in ("true", "yes", "on", "y")
        if kind == "text_list":
            if not isinstance(node, yaml.SequenceNode):
                raise self.fail(line, key, f"expected {expected}, got {_describe(node)}")
            items = []
            for i, item in enumerate(node.value):
                self.lines[f"{key}[{i}]"] = item.start_mark.line + 1
                items.append(self.text(item, f"{key}[{i}]", "a string"))
            return tuple(items)
        if kind == "env_map" and isinstance(node, yaml.SequenceNode):
            return self.env_list(node, key)
        if kind == "artifact_map" and isinstance(node, yaml.MappingNode):
            return self.artifact_map(node, key)
        # text_map
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(line, key, f"expected {expected}, got {_describe(node)}")
        out: dict[str, str] = {}
        for key_node, value_node in node.value:
            item_key = f"{key}.{self.text(key_node, key, 'a name')}"
            if item_key in self.lines:
                raise self.fail(
                    key_node.start_mark.line + 1,
                    item_key,
                    f"appears twice (first on line {self.lines[item_key]})",
                )
            self.lines[item_key] = key_node.start_mark.line + 1
            out[key_node.value] = self.text(value_node, item_key, "a string")
        return out

    def artifact_map(self, node: yaml.MappingNode, key: str) -> dict[str, str]:
        """``name: file``, or ``name: {file: path, copy: true}`` for a file copied as it is
        (the names copied go to ``self.copied``)."""
        files: dict[str, str] = {}
        for key_node, value_node in node.value:
            name = self.text(key_node, key, "a name")
            item_key = f"{key}.{name}"
            if item_key in self.lines:
                raise self.fail(
                    key_node.start_mark.line + 1,
                    item_key,
                    f"appears twice (first on line {self.lines[item_key]})",
                )
            self.lines[item_key] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                fields = self.mapping(value_node, item_key + ".", {"file": "text", "copy": "bool"})
                if fields.get("file") is None:
                    raise self.fail(
                        value_node.start_mark.line + 1, item_key, "give the file (file: path/to/file)"
                    )
                files[name] = fields["file"]
                if fields.get("copy"):
                    self.copied.append(name)
            else:
                files[name] = self.text(value_node, item_key, "a file path or a mapping with 'file:'")
        return files

    def env_list(self, node: yaml.SequenceNode, key: str) -> dict[str, str]:
        """BentoML's list form of environment variables: ``- NAME=value`` strings, or
        ``- name: NAME`` / ``value: value`` mappings."""
        out: dict[str, str] = {}
        for i, item in enumerate(node.value):
            line = item.start_mark.line + 1
            if isinstance(item, yaml.MappingNode):
                fields = self.mapping(item, f"{key}[{i}].", {"name": "text", "value": "text"})
                if fields.get("name") is None:
                    raise self.fail(line, f"{key}[{i}]", "give the variable's name (name: NAME)")
                name, value = fields["name"], fields.get("value") or ""
            else:
                name, sep, value = self.text(item, f"{key}[{i}]", "NAME=value").partition("=")
                if not sep:
                    raise self.fail(line, f"{key}[{i}]", f"expected NAME=value, got {item.value!r}")
            item_key = f"{key}.{name}"
            if item_key in self.lines:
                raise self.fail(line, item_key, f"appears twice (first on line {self.lines[item_key]})")
            self.lines[item_key] = line
            out[name] = value
        return out

    def text(self, node: yaml.Node, key: str, expected: str) -> str:
        """A scalar read exactly as written (``1.10`` stays ``"1.10"``)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            raise self.fail(node.start_mark.line + 1, key, f"expected {expected}, got {_describe(node)}")
        return node.value
