"""A Clipper cluster on one machine, for tests and examples: real model containers on a real
Docker engine, stand-ins for Clipper's own frontends on loopback.

Clipper's C++ frontends cannot run here, so two pieces replace them:

* :class:`LocalFrontend` plays the query and management frontends: a
  :class:`~clipper_peer.ClipperPeer` (the RPC side, which model containers register with) and
  one HTTP server answering Clipper's management REST API (``/admin/...``, every call recorded
  in :attr:`LocalFrontend.admin_calls`) and its query REST API (``POST /<app>/predict``,
  ``GET /metrics``);
* :class:`LocalContainerManager` is a container manager for ``clipper_admin.ClipperConnection``:
  it runs model images on the engine with host networking and the environment Clipper's own
  managers give them, pointed at the peer.

What survives a frontend restart (:meth:`LocalFrontend.restart`) is what Clipper keeps in Redis:
applications, models, current versions and links. Registered containers, query ids and msg_ids
start again, as in a restarted frontend process. A query whose container goes away before it
answers gets the application's default output, as Clipper answers after the latency SLO.

Usage::

    import docker
    from clipper_admin import ClipperConnection

    cm = LocalContainerManager(docker.from_env())
    conn = ClipperConnection(cm)
    conn.start_clipper()                      # starts the frontend stand-in
    deploy_to_clipper(conn, bundle, "predict", app_name="iris")
    requests.post(f"http://{conn.get_query_addr()}/iris/predict", json={"input": [5.1, 3.5, 1.4, 0.2]})
    conn.stop_all()                           # removes the containers, closes the frontend

clipper_admin is not imported here: ``ClipperConnection`` only needs the manager's methods.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from clipper_peer import ClipperPeer, ContainerGone

from bentolite.clipper.protocol import InputType

CLUSTER_LABEL = "ai.clipper.container.label"
MODEL_CONTAINER_LABEL = "ai.clipper.model_container.label"

# How Clipper's management frontend spells input types in its answers.
_READABLE = {
    InputType.BYTES: "bytes",
    InputType.INTS: "integers",
    InputType.FLOATS: "floats",
    InputType.DOUBLES: "doubles",
    InputType.STRINGS: "strings",
}
_PACK = {InputType.INTS: "<{}i", InputType.FLOATS: "<{}f", InputType.DOUBLES: "<{}d"}


class AdminError(Exception):
    """A management call Clipper would refuse (answered with HTTP 400 and the message)."""


class JsonInputError(ValueError):
    """A query input Clipper's JSON parsing refuses (HTTP 400, ``"error": "Json error"``)."""


@dataclass(frozen=True)
class AdminCall:
    """One request to the management API: its path (``/admin/add_model``) and JSON body."""

    path: str
    body: Any


class LocalFrontend:
    """Clipper's query and management frontends, as far as a model container and
    ``clipper_admin`` can tell, on ``127.0.0.1``."""

    def __init__(
        self, rpc_port: int = 0, *, predict_timeout: float = 30.0, silence_timeout: float = 30.0
    ) -> None:
        #: a container silent for longer than ``silence_timeout`` is dropped (Clipper: 30 s)
        self.peer = ClipperPeer(
            port=rpc_port, silence_timeout=silence_timeout, check_interval=min(10.0, silence_timeout / 8)
        )
        #: a query waits this long for the container (Clipper would answer the default output
        #: after the app's SLO; tests would rather not depend on the machine's speed)
        self.predict_timeout = predict_timeout
        self.admin_calls: list[AdminCall] = []
        self.apps: dict[str, dict[str, Any]] = {}
        self.models: dict[tuple[str, str], dict[str, Any]] = {}
        self.current: dict[str, str] = {}
        self.links: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._query_ids = itertools.count()
        self._round_robin = itertools.count()
        self._http_port = 0
        self._serve_http()

    def _serve_http(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._http_port), _handler_for(self))
        self._server.daemon_threads = True
        self._http_port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="clipper-frontend", daemon=True
        )
        self._thread.start()

    def _stop_http(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def address(self) -> str:
        """``host:port`` of both REST APIs (what ``get_admin_addr``/``get_query_addr`` return)."""
        return f"127.0.0.1:{self._http_port}"

    def restart(self, down_for: float = 0.0) -> float:
        """Stop both frontends (forgetting every connected container), wait ``down_for``
        seconds, and start them again on the same ports, like a restarted Clipper frontend.
        Returns ``time.monotonic()`` when they answer again."""
        self._stop_http()
        self.peer.restart(down_for)
        with self._lock:
            self._query_ids = itertools.count()
        self._serve_http()
        return time.monotonic()

    def close(self) -> None:
        self._stop_http()
        self.peer.close()

    def calls(self, command: str) -> list[Any]:
        """Bodies of the recorded calls to ``/admin/<command>``."""
        with self._lock:
            return [c.body for c in self.admin_calls if c.path == f"/admin/{command}"]

    # --- management API ------------------------------------------------------------------------

    def admin(self, command: str, body: Any) -> Any:
        with self._lock:
            self.admin_calls.append(AdminCall(f"/admin/{command}", body))
            handler = getattr(self, f"_admin_{command}", None)
            if handler is None:
                raise LookupError(command)
            return handler(body)

    def _admin_add_app(self, body: dict[str, Any]) -> str:
        name = body["name"]
        if name in self.apps:
            raise AdminError(f"application {name} already exists")
        self.apps[name] = {
            "name": name,
            "input_type": _readable(body["input_type"]),
            "default_output": body["default_output"],
            "latency_slo_micros": int(body["latency_slo_micros"]),
        }
        self.links[name] = []
        return "Success!"

    def _admin_delete_app(self, body: dict[str, Any]) -> str:
        self.apps.pop(body["name"], None)
        self.links.pop(body["name"], None)
        return "Success!"

    def _admin_add_model(self, body: dict[str, Any]) -> str:
        name, version = body["model_name"], body["model_version"]
        for value in (name, version, *body.get("labels", [])):
            if "," in value or ":" in value:
                raise AdminError(f"{value!r}: names, versions and labels may not contain ',' or ':'")
        batch_size = int(body.get("batch_size", -1))
        if batch_size != -1 and batch_size <= 0:
            raise AdminError("batch_size must be greater than 0 or -1")
        if (name, version) in self.models:
            raise AdminError(f"model {name}:{version} already exists")
        self.models[(name, version)] = {
            "model_name": name,
            "model_version": version,
            "input_type": _readable(body["input_type"]),
            "labels": list(body.get("labels", [])),
            "container_name": body["container_name"],
            "model_data_path": body["model_data_path"],
            "batch_size": batch_size,
        }
        self.current[name] = version
        return "Success!"

    def _admin_delete_versioned_model(self, body: dict[str, Any]) -> str:
        name, version = body["model_name"], body["model_version"]
        self.models.pop((name, version), None)
        if self.current.get(name) == version:
            del self.current[name]
        return "Success!"

    def _admin_set_model_version(self, body: dict[str, Any]) -> str:
        key = (body["model_name"], body["model_version"])
        if key not in self.models:
            raise AdminError(f"model {key[0]}:{key[1]} does not exist")
        self.current[key[0]] = key[1]
        return "Success!"

    def _admin_add_model_links(self, body: dict[str, Any]) -> str:
        app, names = body["app_name"], body["model_names"]
        if app not in self.apps:
            raise AdminError(f"no application {app}")
        if len(names) != 1:
            raise AdminError("an application links exactly one model")
        if self.links[app]:
            raise AdminError(f"application {app} already has a linked model")
        infos = [m for (n, _), m in self.models.items() if n == names[0]]
        if not infos:
            raise AdminError(f"no model {names[0]}")
        if infos[0]["input_type"] != self.apps[app]["input_type"]:
            raise AdminError(
                f"Model with name '{names[0]}' has incompatible input_type '{infos[0]['input_type']}'. "
                f"Requested app to link to has input_type '{self.apps[app]['input_type']}'."
            )
        self.links[app] = list(names)
        return "Success!"

    def _admin_delete_model_links(self, body: dict[str, Any]) -> str:
        linked = self.links.get(body["app_name"], [])
        self.links[body["app_name"]] = [m for m in linked if m not in body["model_names"]]
        return "Success!"

    def _admin_get_all_applications(self, body: dict[str, Any]) -> list[Any]:
        if body.get("verbose"):
            return [self._app_info(name) for name in self.apps]
        return list(self.apps)

    def _admin_get_application(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._app_info(body["name"]) if body["name"] in self.apps else {}

    def _admin_get_linked_models(self, body: dict[str, Any]) -> list[str]:
        if body["app_name"] not in self.apps:
            raise AdminError(f"no application {body['app_name']}")
        return list(self.links[body["app_name"]])

    def _admin_get_all_models(self, body: dict[str, Any]) -> list[Any]:
        if body.get("verbose"):
            return [self._model_info(key) for key in self.models]
        return [f"{name}:{version}" for name, version in self.models]

    def _admin_get_model(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (body["model_name"], body["model_version"])
        return self._model_info(key) if key in self.models else {}

    def _admin_get_all_containers(self, body: dict[str, Any]) -> list[Any]:
        return [
            {
                "model_name": r.model_name,
                "model_version": r.model_version,
                "model_replica_id": r.replica_id,
                "zmq_connection_id": r.connection_id,
                "input_type": _READABLE[r.input_type],
            }
            for r in self.peer.registered()
        ]

    def _app_info(self, name: str) -> dict[str, Any]:
        return {**self.apps[name], "linked_models": list(self.links[name])}

    def _model_info(self, key: tuple[str, str]) -> dict[str, Any]:
        info = dict(self.models[key])
        info.pop("batch_size")
        return {**info, "is_current_version": self.current.get(key[0]) == key[1]}

    # --- query API -----------------------------------------------------------------------------

    def query(self, app: str, body: Any) -> dict[str, Any]:
        with self._lock:
            if app not in self.apps:
                raise LookupError(app)
            info = self.apps[app]
            linked = self.links[app]
            version = self.current.get(linked[0]) if linked else None
        input_type = InputType.from_name(info["input_type"])
        inputs = body["input_batch"] if "input_batch" in body else [body["input"]]
        for value in inputs:
            _check_input(value, input_type)
        replicas = [
            r
            for r in self.peer.registered()
            if linked and (r.model_name, r.model_version) == (linked[0], version)
        ]
        if not replicas:
            answers = [self._default(info, "No connected models found for query") for _ in inputs]
        else:
            replica = replicas[next(self._round_robin) % len(replicas)]
            try:
                outputs = self.peer.predict(
                    [_encode(x, input_type) for x in inputs],
                    input_type,
                    routing_id=replica.routing_id,
                    timeout=self.predict_timeout,
                )
            except (ContainerGone, TimeoutError):
                why = "Failed to retrieve a prediction response within the specified latency SLO"
                answers = [self._default(info, why) for _ in inputs]
            else:
                answers = [
                    {"query_id": next(self._query_ids), "output": _decode(out), "default": False}
                    for out in outputs
                ]
        return answers[0] if len(answers) == 1 else {"batch_predictions": answers}

    def _default(self, app: dict[str, Any], why: str) -> dict[str, Any]:
        return {
            "query_id": next(self._query_ids),
            "output": _decode(app["default_output"].encode()),
            "default": True,
            "default_explanation": why,
        }


def _readable(input_type: str) -> str:
    return _READABLE[InputType.from_name(input_type)]


# Element checks of Clipper's parser (rapidjson's IsInt/IsFloat/IsDouble): a number written
# without a fraction or exponent is an int, so a floats or doubles app refuses `6` and wants `6.0`.
_ELEMENTS = {
    InputType.INTS: (int, "int"),
    InputType.FLOATS: (float, "float"),
    InputType.DOUBLES: (float, "double"),
}


def _check_input(value: Any, input_type: InputType) -> None:
    if input_type in (InputType.STRINGS, InputType.BYTES):
        if not isinstance(value, str):
            raise JsonInputError(f"Input of type {_json_type(value)} is not of type string")
        return
    if not isinstance(value, list):
        raise JsonInputError(f"Array input of type {_json_type(value)} is not of type array")
    kind, label = _ELEMENTS[input_type]
    for element in value:
        if type(element) is not kind:  # exact type: JSON true/false are not numbers
            raise JsonInputError(f"Array input of type {_json_type(element)} is not of type {label}")


def _json_type(value: Any) -> str:
    """rapidjson's name of a JSON value's type."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    names = {dict: "Object", list: "Array", str: "String", int: "Number", float: "Number"}
    return names[type(value)]


def _encode(value: Any, input_type: InputType) -> bytes:
    """One query input as the frontend puts it on the wire."""
    if input_type is InputType.STRINGS:
        return value.encode()
    if input_type is InputType.BYTES:
        return base64.b64decode(value)
    return struct.pack(_PACK[input_type].format(len(value)), *value)


def _decode(output: bytes) -> Any:
    """A container's output as the frontend nests it: JSON if it parses, else a string."""
    text = output.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _handler_for(frontend: LocalFrontend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            pass

        def _reply(self, status: int, payload: Any) -> None:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/admin/ping":
                self._reply(200, "PONG")
            elif self.path in ("/metrics", "/admin/metrics"):
                self._reply(200, {"counters": [], "meters": [], "histograms": [], "ratio_counters": []})
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError as exc:
                self._reply(400, {"error": "Json error", "cause": str(exc)})
                return
            parts = self.path.strip("/").split("/")
            try:
                if len(parts) == 2 and parts[0] == "admin":
                    self._reply(200, frontend.admin(parts[1], body))
                elif len(parts) == 2 and parts[1] == "predict":
                    self._reply(200, frontend.query(parts[0], body))
                else:
                    self._reply(404, {"error": f"no route {self.path}"})
            except LookupError as exc:
                self._reply(404, {"error": f"unknown {exc}"})
            except JsonInputError as exc:
                self._reply(400, {"error": "Json error", "cause": str(exc)})
            except (AdminError, KeyError, TypeError, ValueError) as exc:
                self._reply(400, {"error": "Query processing error", "cause": f"{type(exc).__name__}: {exc}"})

    return Handler


class LocalContainerManager:
    """A ``clipper_admin`` container manager running model containers on a real Docker engine.

    Containers run with host networking, so they reach the frontend stand-in on 127.0.0.1, with
    the environment Clipper's managers set (``CLIPPER_MODEL_NAME``, ``CLIPPER_MODEL_VERSION``,
    ``CLIPPER_IP``, ``CLIPPER_INPUT_TYPE``) plus ``CLIPPER_PORT`` (the peer's port) and an empty
    ``BENTOLITE_METRICS_PORT`` (host networking would make replicas fight over port 1390). They
    carry Clipper's labels, are named ``<name>_<version>-<n>`` and count as started once healthy.
    An image missing from the engine is pulled from its registry first, as on a cluster node.

    As Clipper's managers find a running cluster by its name, a second manager of the same
    ``cluster_name`` in this process connects to the frontend the first one started (so a
    ``bentolite deploy-clipper --manager clipper_cluster:LocalContainerManager`` run in-process
    joins the test's cluster). ``silence_timeout`` is how long the frontend keeps a silent
    container (Clipper: 30 s).
    """

    #: the running frontends of this process, by cluster name
    _frontends: dict[str, LocalFrontend] = {}

    def __init__(
        self,
        docker_client: Any = None,
        cluster_name: str = "bentolite-local",
        *,
        start_timeout: float = 120.0,
        silence_timeout: float = 30.0,
    ) -> None:
        if docker_client is None:
            import docker

            docker_client = docker.from_env()
        self.docker = docker_client
        self.cluster_identifier = cluster_name
        self.start_timeout = start_timeout
        self.silence_timeout = silence_timeout
        self.frontend: LocalFrontend | None = None

    # --- cluster lifecycle ---------------------------------------------------------------------

    def start_clipper(self, *args: Any, **kwargs: Any) -> None:
        """Start the frontend stand-in (the images and sizes Clipper would use are ignored)."""
        if self.frontend is None:
            self.frontend = LocalFrontend(silence_timeout=self.silence_timeout)
            self._frontends[self.cluster_identifier] = self.frontend

    def connect(self) -> None:
        if self.frontend is None:
            self.frontend = self._frontends.get(self.cluster_identifier)
        if self.frontend is None:
            raise RuntimeError(
                f"no local Clipper frontend of cluster {self.cluster_identifier!r} is running; "
                "call start_clipper() first"
            )

    def stop_all(self, graceful: bool = True) -> None:
        self.stop_all_model_containers(graceful)
        if self.frontend is not None:
            self.frontend.close()
            if self._frontends.get(self.cluster_identifier) is self.frontend:
                del self._frontends[self.cluster_identifier]
            self.frontend = None

    def get_admin_addr(self) -> str:
        return self._frontend().address

    def get_query_addr(self) -> str:
        return self._frontend().address

    def get_metric_addr(self) -> str:
        return self._frontend().address

    def _frontend(self) -> LocalFrontend:
        self.connect()
        assert self.frontend is not None
        return self.frontend

    # --- model containers ----------------------------------------------------------------------

    def deploy_model(
        self, name: str, version: str, input_type: str, image: str, num_replicas: int = 1
    ) -> None:
        self.set_num_replicas(name, version, input_type, image, num_replicas)

    def get_num_replicas(self, name: str, version: str) -> int:
        return len(self.containers(name, version, running=True))

    def set_num_replicas(
        self, name: str, version: str, input_type: str, image: str, num_replicas: int
    ) -> None:
        running = self.containers(name, version, running=True)
        for container in running[num_replicas:]:
            self._remove(container, graceful=True)
        missing = num_replicas - len(running)
        if missing <= 0:
            return
        started = [self._run(name, version, input_type, image) for _ in range(missing)]
        for container in started:
            self._wait_healthy(container)

    def containers(
        self, name: str | None = None, version: str | None = None, *, running: bool = False
    ) -> list[Any]:
        """This cluster's model containers (of one model version, if given; only the running
        ones with ``running``), oldest first."""
        labels = [f"{CLUSTER_LABEL}={self.cluster_identifier}"]
        labels.append(f"{MODEL_CONTAINER_LABEL}={name}_{version}" if name else MODEL_CONTAINER_LABEL)
        found = self.docker.containers.list(all=not running, filters={"label": labels})
        return sorted(found, key=lambda c: c.attrs["Created"])

    def get_logs(self, logging_dir: str) -> list[str]:
        directory = Path(logging_dir)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for container in self.containers():
            path = directory / f"{container.name}.log"
            path.write_bytes(container.logs())
            paths.append(str(path))
        return paths

    def stop_models(self, models: dict[str, list[str]]) -> None:
        for name, versions in models.items():
            for version in versions:
                for container in self.containers(name, version):
                    self._remove(container, graceful=True)

    def stop_all_model_containers(self, graceful: bool = True) -> None:
        for container in self.containers():
            self._remove(container, graceful)

    def _run(self, name: str, version: str, input_type: str, image: str) -> Any:
        frontend = self._frontend()
        return self.docker.containers.run(
            image,
            detach=True,
            name=f"{name}_{version}-{random.randint(0, 100000)}",
            network_mode="host",
            labels={CLUSTER_LABEL: self.cluster_identifier, MODEL_CONTAINER_LABEL: f"{name}_{version}"},
            environment={
                "CLIPPER_MODEL_NAME": name,
                "CLIPPER_MODEL_VERSION": version,
                "CLIPPER_IP": "127.0.0.1",
                "CLIPPER_PORT": str(frontend.peer.port),
                "CLIPPER_INPUT_TYPE": input_type,
                "BENTOLITE_METRICS_PORT": "",
            },
        )

    def _wait_healthy(self, container: Any) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            container.reload()
            state = container.attrs["State"]
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy" or (health is None and state["Status"] == "running"):
                return
            if state["Status"] in ("exited", "dead"):
                logs = container.logs().decode(errors="replace")
                raise RuntimeError(f"model container {container.name} exited ({state['ExitCode']}):\n{logs}")
            time.sleep(0.5)
        raise TimeoutError(f"model container {container.name} not healthy within {self.start_timeout} s")

    def _remove(self, container: Any, graceful: bool) -> None:
        if graceful and container.status == "running":
            container.stop(timeout=5)
        container.remove(force=True)
