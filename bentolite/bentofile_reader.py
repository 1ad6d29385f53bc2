"""Reading a bentofile's YAML nodes: each key checked against the schema of the keys bentolite
reads (with a did-you-mean, or a migration hint for BentoML's keys), each value against its
kind, and each key's line remembered for messages. :mod:`bentolite.bentofile` builds the
typed configuration from what this reads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Union

import yaml

from bentolite.bentofile_checks import did_you_mean
from bentolite.exceptions import ConfigError

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"


def line_of(lines: Mapping[str, int], key: str) -> int:
    """The line of ``key`` (``a.b[2]``), else of its nearest parent that has one, else 1."""
    while key and key not in lines:
        key = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", key) if re.search(r"[.\[]", key) else ""
    return lines.get(key, lines.get("", 1))


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


class NodeReader:
    """Reads a bentofile's YAML nodes into plain values by a schema, recording each key's line
    (``lines``) and the artifacts marked ``copy: true`` (``copied``)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self.copied: list[str] = []

    def fail(self, line: int, key: str, message: str) -> ConfigError:
        where = f"{self.source}:{line}"
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    def claim(self, key: str, line: int) -> None:
        """Record that ``key`` is given on ``line``; a key given twice is an error."""
        if key in self.lines:
            raise self.fail(line, key, f"appears twice (first on line {self.lines[key]})")
        self.lines[key] = line

    def read(self, root: yaml.Node | None) -> dict[str, Any]:
        """The file's top-level values by :data:`SCHEMA`; refuses an empty file and a missing
        ``service``."""
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
        return values

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
            self.claim(full, line)
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
            self.claim(item_key, key_node.start_mark.line + 1)
            out[key_node.value] = self.text(value_node, item_key, "a string")
        return out

    def artifact_map(self, node: yaml.MappingNode, key: str) -> dict[str, str]:
        """``name: file``, or ``name: {file: path, copy: true}`` for a file copied as it is
        (the names copied go to ``self.copied``)."""
        files: dict[str, str] = {}
        for key_node, value_node in node.value:
            name = self.text(key_node, key, "a name")
            item_key = f"{key}.{name}"
            self.claim(item_key, key_node.start_mark.line + 1)
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
            self.claim(item_key, line)
            out[name] = value
        return out

    def text(self, node: yaml.Node, key: str, expected: str) -> str:
        """A scalar read exactly as written (``1.10`` stays ``"1.10"``)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            raise self.fail(node.start_mark.line + 1, key, f"expected {expected}, got {_describe(node)}")
        return node.value
