"""``BundleMeta``: the ``bentolite.yaml`` file at the top of every bundle.

It is built from the YAML and renders to the YAML, and round-trips. Reading it never imports the
service's code, so listing a store stays fast and safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from bentolite import safe_yaml
from bentolite.exceptions import BundleError

META_FILE = "bentolite.yaml"
FORMAT_VERSION = 1


@attrs.frozen
class ArtifactRecord:
    name: str
    kind: str
    file: str
    options: dict[str, Any] = attrs.field(factory=dict)
    sha256: str | None = None  # of the file, checked when the artifact is loaded


@attrs.frozen
class ApiRecord:
    """An API as recorded in the bundle (the service class stays the authority when loaded)."""

    name: str
    route: str
    adapter: dict[str, Any]
    #: the output adapter (absent in bundles saved before outputs were recorded)
    output: dict[str, Any] | None = None
    batch: bool = False
    max_batch_size: int = 64
    max_latency_ms: float = 100.0
    doc: str = ""
    clipper_input_type: str | None = None


@attrs.frozen
class BundleMeta:
    name: str
    version: str
    created_at: str
    bentolite_version: str
    python_version: str
    module: str
    service_class: str
    apis: tuple[ApiRecord, ...] = ()
    artifacts: tuple[ArtifactRecord, ...] = ()
    env: dict[str, Any] = attrs.field(factory=dict)
    #: versions of the packages that wrote the artifacts (cloudpickle, numpy), checked at load
    pickled_with: dict[str, str] = attrs.field(factory=dict)
    labels: dict[str, str] = attrs.field(factory=dict)
    description: str = ""
    #: the origins ``bentolite serve`` lets browsers call from when given none (bentofile ``serve:``)
    cors_origins: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    format_version: int = FORMAT_VERSION

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version}"

    def api(self, name: str) -> ApiRecord | None:
        return next((a for a in self.apis if a.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format_version": self.format_version,
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at,
            "bentolite_version": self.bentolite_version,
            "python_version": self.python_version,
            "service": {"module": self.module, "class": self.service_class},
            "description": self.description,
            "labels": dict(self.labels),
            "apis": [_drop_none(attrs.asdict(a)) for a in self.apis],
            "artifacts": [_drop_none(attrs.asdict(a)) for a in self.artifacts],
            "env": dict(self.env),
            "pickled_with": dict(self.pickled_with),
        }
        if self.cors_origins:  # written only when set, so other bundles read as before
            data["serve"] = {"cors_origins": list(self.cors_origins)}
        return data

    def to_yaml(self) -> str:
        return safe_yaml.dump(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str = META_FILE) -> BundleMeta:
        if not isinstance(data, dict):
            raise BundleError(f"{source}: expected a mapping at the top level")
        try:
            service = data["service"]
            return cls(
                format_version=int(data.get("format_version", FORMAT_VERSION)),
                name=str(data["name"]),
                version=str(data["version"]),
                created_at=str(data["created_at"]),
                bentolite_version=str(data["bentolite_version"]),
                python_version=str(data["python_version"]),
                module=str(service["module"]),
                service_class=str(service["class"]),
                description=str(data.get("description") or ""),
                labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
                apis=tuple(ApiRecord(**a) for a in data.get("apis") or ()),
                artifacts=tuple(ArtifactRecord(**a) for a in data.get("artifacts") or ()),
                env=dict(data.get("env") or {}),
                pickled_with={str(k): str(v) for k, v in (data.get("pickled_with") or {}).items()},
                cors_origins=tuple(str(o) for o in (data.get("serve") or {}).get("cors_origins") or ()),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{source}: missing or invalid field ({exc})") from exc

    @classmethod
    def from_yaml(cls, text: str, source: str = META_FILE) -> BundleMeta:
        return cls.from_dict(safe_yaml.load(text, source, BundleError), source)

    @classmethod
    def read(cls, bundle_dir: Path) -> BundleMeta:
        path = Path(bundle_dir) / META_FILE
        if not path.is_file():
            raise BundleError(f"{bundle_dir} is not a bentolite bundle: {META_FILE} is missing")
        return cls.from_yaml(path.read_text(encoding="utf-8"), str(path))

    def write(self, bundle_dir: Path) -> None:
        (Path(bundle_dir) / META_FILE).write_text(self.to_yaml(), encoding="utf-8")


def _drop_none(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}
