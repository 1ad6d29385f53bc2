"""The ``Service`` base class and the decorators that describe it.

Decorators only record metadata: ``@api`` marks a method with an :class:`ApiSpec`, ``@env`` and
``@ver`` attach an :class:`~bentolite.env_spec.EnvSpec` and a version prefix to the class, ``@artifacts`` (in
:mod:`bentolite.artifacts`) attaches artifact declarations. ``Service`` collects the APIs once,
when a subclass is created.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable, TypeVar

import attrs

from bentolite.adapters.base import Adapter
from bentolite.adapters.outputs import DefaultOutput, Output
from bentolite.artifacts import ARTIFACTS_ATTR, Artifact, ArtifactCollection
from bentolite.env_spec import EnvSpec
from bentolite.exceptions import ArtifactError, InvalidArgument, NotFound, ServiceError

API_ATTR = "__bentolite_api__"
ENV_ATTR = "__bentolite_env__"
VER_ATTR = "__bentolite_ver__"

#: routes the HTTP server keeps for itself
RESERVED_ROUTES = frozenset({"", "healthz", "livez", "readyz", "metrics", "docs", "docs.json"})
_API_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROUTE_RE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_LATENCY_MS = 100.0


def _positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value <= 0:
        raise InvalidArgument(f"@api({attribute.name}={value!r}) must be greater than 0")


@attrs.frozen
class ApiSpec:
    """One API of a service: its name, HTTP route, adapter, batching knobs and function.

    ``max_batch_size`` caps how many inputs one call of a batched function receives;
    ``max_latency_ms`` is the latency budget of one request (queueing plus the call) that the
    server's adaptive batcher keeps batches within.
    """

    name: str
    adapter: Adapter
    func: Callable[..., Any] = attrs.field(eq=False, repr=False)
    #: renders the function's result; by default the adapter's (JSON, or Clipper's answer)
    output: Output = attrs.field(
        default=attrs.Factory(lambda spec: spec.adapter.default_output(), takes_self=True)
    )
    route: str = ""
    batch: bool = False
    max_batch_size: int = attrs.field(default=DEFAULT_MAX_BATCH_SIZE, validator=_positive)
    max_latency_ms: float = attrs.field(default=DEFAULT_MAX_LATENCY_MS, validator=_positive)
    doc: str = ""

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    @property
    def clipper_input_type(self) -> str | None:
        return self.adapter.clipper_input_type

    def to_dict(self) -> dict[str, Any]:
        """The API's record in bentolite.yaml."""
        record: dict[str, Any] = {
            "name": self.name,
            "route": self.route,
            "adapter": self.adapter.to_spec(),
            "output": self.output.to_spec(),
            "batch": self.batch,
            "max_batch_size": self.max_batch_size,
            "max_latency_ms": self.max_latency_ms,
            "doc": self.doc,
        }
        if self.clipper_input_type:
            record["clipper_input_type"] = self.clipper_input_type
        return record


def api(
    input: Adapter,  # noqa: A002 - the name users know from BentoML
    output: Output | None = None,
    name: str | None = None,
    route: str | None = None,
    batch: bool = False,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_latency_ms: float = DEFAULT_MAX_LATENCY_MS,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method of a :class:`Service` as an API taking ``input`` and answering with
    ``output`` (an output adapter such as ``JsonOutput()``; by default the input adapter's
    :meth:`~bentolite.adapters.Adapter.default_output`).

    Calling the method directly (``svc.predict(df)``) runs it on ``input.from_direct(df)`` and
    returns what the function returns: outputs apply to HTTP answers only.
    """
    if isinstance(input, type) and issubclass(input, Adapter):
        raise InvalidArgument(f"@api(input={input.__name__}) needs an instance: {input.__name__}()")
    if not isinstance(input, Adapter):
        raise InvalidArgument(f"@api(input=...) takes an adapter such as DataframeInput(), got {input!r}")
    if isinstance(output, type) and issubclass(output, Output):
        raise InvalidArgument(f"@api(output={output.__name__}) needs an instance: {output.__name__}()")
    if output is not None and not isinstance(output, Output):
        raise InvalidArgument(
            f"@api(output=...) takes an output adapter such as JsonOutput(), got {output!r}"
        )
    answer = (output or DefaultOutput()).for_input(input)
    if batch and not input.batchable:
        raise InvalidArgument(f"@api(batch=True): {input.name} cannot merge requests into batches")
    if name is not None and not _API_NAME_RE.match(name):
        raise InvalidArgument(f"@api(name={name!r}) must be a Python identifier")
    if route is not None:
        route = route.strip("/")
        if not _ROUTE_RE.match(route) or route in RESERVED_ROUTES:
            raise InvalidArgument(
                f"@api(route={route!r}) is not a usable route: use letters, digits, '_', '-', "
                f"'.', '/' and none of the server's own routes ({', '.join(sorted(RESERVED_ROUTES - {''}))})"
            )

    def record(func: Callable[..., Any]) -> Callable[..., Any]:
        if isinstance(func, (staticmethod, classmethod)) or not inspect.isfunction(func):
            raise ServiceError(f"@api must decorate a plain method (def f(self, x)), not {func!r}")
        params = list(inspect.signature(func).parameters)
        if len(params) < 2:
            raise ServiceError(f"@api method {func.__qualname__} must take (self, input): it has {params}")
        api_name = name or func.__name__
        if not _API_NAME_RE.match(api_name):
            raise ServiceError(f"API name {api_name!r} must be a Python identifier")
        api_route = route if route is not None else api_name
        if api_route in RESERVED_ROUTES:
            raise ServiceError(
                f"API {api_name!r} would take the server's own route /{api_route}; "
                "pass @api(route=...) with another route"
            )
        setattr(
            func,
            API_ATTR,
            ApiSpec(
                name=api_name,
                adapter=input,
                func=func,
                output=answer,
                route=api_route,
                batch=batch,
                max_batch_size=max_batch_size,
                max_latency_ms=float(max_latency_ms),
                doc=inspect.getdoc(func) or "",
            ),
        )
        return func

    return record


_C = TypeVar("_C", bound=type)


def _require_service_class(decorator: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        raise ServiceError(f"@{decorator} must decorate a subclass of bentolite.Service, not {cls!r}")


def env(
    pip_packages: Iterable[str] | None = None,
    requirements_txt_file: str | None = None,
    python_version: str | None = None,
    docker_base_image: str | None = None,
    system_packages: Iterable[str] | None = None,
    setup_sh: str | None = None,
    *,
    pip_dependencies: Iterable[str] | None = None,
) -> Callable[[_C], _C]:
    """Record the environment a service needs.

    ``pip_dependencies`` is accepted as another name for ``pip_packages``. ``setup_sh`` is a
    shell script (its text, or a path to it) run while building an image.
    """
    if pip_packages is not None and pip_dependencies is not None:
        raise InvalidArgument("@env: give pip_packages or pip_dependencies, not both")
    spec = EnvSpec(
        pip_packages=pip_packages if pip_packages is not None else pip_dependencies,
        requirements_txt_file=requirements_txt_file,
        python_version=python_version,
        docker_base_image=docker_base_image,
        system_packages=system_packages,
        setup_sh=setup_sh,
    )

    def record(cls: _C) -> _C:
        _require_service_class("env", cls)
        setattr(cls, ENV_ATTR, spec)
        return cls

    return record


def ver(major: int, minor: int) -> Callable[[_C], _C]:
    """Prefix the versions of saved bundles with ``<major>.<minor>.``."""
    for label, value in (("major", major), ("minor", minor)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidArgument(f"@ver({label}={value!r}) must be a non-negative integer")

    def record(cls: _C) -> _C:
        _require_service_class("ver", cls)
        setattr(cls, VER_ATTR, (major, minor))
        return cls

    return record


class _ApiMethod:
    """Class attribute standing in for an API method: a direct call converts its argument."""

    def __init__(self, spec: ApiSpec) -> None:
        self.spec = spec
        functools.update_wrapper(self, spec.func)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        spec = self.spec

        @functools.wraps(spec.func)
        def direct_call(value: Any) -> Any:
            return spec.func(obj, spec.adapter.from_direct(value))

        return direct_call


class Service:
    """Base class of a prediction service: declare APIs with ``@api`` and artifacts with
    ``@artifacts``, pack trained objects with :meth:`pack`, and :meth:`save` a bundle.
    """

    __bentolite_apis__: dict[str, ApiSpec] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        apis: dict[str, ApiSpec] = {}
        for klass in reversed(cls.__mro__):
            own: dict[str, ApiSpec] = {}
            for attr, value in list(vars(klass).items()):
                spec = value.spec if isinstance(value, _ApiMethod) else getattr(value, API_ATTR, None)
                if not isinstance(spec, ApiSpec):
                    continue
                if spec.name in own:
                    raise ServiceError(
                        f"{klass.__name__}: two APIs are named {spec.name!r}; "
                        "pass @api(name=...) to one of them"
                    )
                own[spec.name] = spec
                if klass is cls and not isinstance(value, _ApiMethod):
                    setattr(cls, attr, _ApiMethod(spec))
            apis.update(own)
        routes: dict[str, str] = {}
        for spec in apis.values():
            if spec.route in routes:
                raise ServiceError(
                    f"{cls.__name__}: APIs {routes[spec.route]!r} and {spec.name!r} share the "
                    f"route /{spec.route}; pass @api(route=...) to one of them"
                )
            routes[spec.route] = spec.name
        cls.__bentolite_apis__ = apis

    def __init__(self) -> None:
        self._name: str | None = None
        self._version: str | None = None
        self._bundle_path: Path | None = None
        self._artifacts = ArtifactCollection(type(self).__name__, self.declared_artifacts())

    # --- what the class declares ---------------------------------------------------------------
    @classmethod
    def declared_artifacts(cls) -> tuple[Artifact, ...]:
        return tuple(getattr(cls, ARTIFACTS_ATTR, ()))

    @classmethod
    def env_spec(cls) -> EnvSpec:
        return getattr(cls, ENV_ATTR, None) or EnvSpec()

    @classmethod
    def version_prefix(cls) -> str:
        version = getattr(cls, VER_ATTR, None)
        return f"{version[0]}.{version[1]}." if version else ""

    # --- this instance -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The bundle name: the class name unless a bentofile or bundle set another."""
        return self._name or type(self).__name__

    @property
    def version(self) -> str | None:
        """The version of the bundle this service was saved as or loaded from."""
        return self._version

    @property
    def bundle_path(self) -> Path | None:
        """The bundle directory this service was saved to or loaded from."""
        return self._bundle_path

    @property
    def apis(self) -> dict[str, ApiSpec]:
        """The service's APIs by name, in definition order."""
        return dict(type(self).__bentolite_apis__)

    @property
    def artifacts(self) -> ArtifactCollection:
        return self._artifacts

    def get_api(self, name: str) -> ApiSpec:
        try:
            return type(self).__bentolite_apis__[name]
        except KeyError:
            raise NotFound(
                f"{self.name} has no API {name!r}; APIs: {', '.join(self.apis) or 'none'}"
            ) from None

    def pack(self, name: str, obj: Any) -> Service:
        """Keep ``obj`` as the artifact ``name``; returns the service so calls chain."""
        self._artifacts.pack(name, obj)
        return self

    def call(self, api_name: str, payload: Any) -> Any:
        """Run an API's function on an already converted payload (no adapter conversion)."""
        return self.get_api(api_name).func(self, payload)

    def check_ready_to_save(self) -> None:
        if not self.apis:
            raise ServiceError(f"{self.name} has no API: decorate a method with @api(input=...)")
        missing = self._artifacts.missing()
        if missing:
            raise ArtifactError(
                f"cannot save {self.name}: artifact(s) not packed: {', '.join(missing)}; "
                "call svc.pack(name, obj) for each"
            )

    def save(
        self,
        version: str | None = None,
        *,
        labels: dict[str, str] | None = None,
        description: str | None = None,
        allow_external_symlinks: bool = False,
    ) -> str:
        """Save a new versioned bundle into the store; returns its directory.

        A service defined in a package brings its package folder; a symbolic link there is
        copied as its content while it resolves inside the folder, and one leading outside is a
        :class:`~bentolite.exceptions.ConfigError` naming it unless ``allow_external_symlinks``
        (the bentofile's ``allow_external_symlinks: true``).
        """
        from bentolite.bundle import save_bundle

        return str(
            save_bundle(
                self,
                version=version,
                labels=labels,
                description=description,
                allow_external_symlinks=allow_external_symlinks,
            )
        )

    def save_to_dir(
        self, path: str | Path, version: str | None = None, *, allow_external_symlinks: bool = False
    ) -> str:
        """Save a bundle into ``path`` (which must not exist yet); returns the path. Symbolic
        links are treated as by :meth:`save`."""
        from bentolite.bundle import save_bundle

        return str(
            save_bundle(
                self, version=version, target=Path(path), allow_external_symlinks=allow_external_symlinks
            )
        )

    def __repr__(self) -> str:
        tag = f"{self.name}:{self.version}" if self.version else self.name
        return f"<{type(self).__name__} {tag} apis={list(self.apis)}>"


#: the name BentoML users know
BentoService = Service
