"""Every example runs the way its docstring and the README say, so the docs cannot rot.

Scripts run as a user runs them: in a child process, from their own folder, with the venv's
``bin`` first on PATH and the test's own store (BENTOLITE_HOME, set by conftest's ``store_home``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import requests
from live_server import Server

import bentolite
from bentolite.bundle_meta import BundleMeta
from bentolite.image_names import default_image_name

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IRIS = EXAMPLES / "iris_classifier"
TEXT_LENGTH = EXAMPLES / "text_length"
BIN = Path(sys.executable).parent  # the venv's bin: python, bentolite
SETOSA, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.5, 3.0, 5.8, 2.2]


def run(*args: str, cwd: Path) -> str:
    """Run a command like a user in ``cwd``; its stdout, or a failure showing both streams."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def import_example(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_iris_demo_script(store_home: Path) -> None:
    out = run("bash", str(IRIS / "demo.sh"), cwd=EXAMPLES)
    assert "predict_clipper([X[0]]) -> [0]" in out
    assert "\n[0,2]\n" in out
    assert json.loads(out.strip().splitlines()[-1]) == {"query_id": 0, "output": 2, "default": False}
    assert len(list((store_home / "bundles" / "IrisClassifier").iterdir())) == 2  # saved, built
    assert not (IRIS / "model.pkl").exists()  # the demo cleans up after itself


def test_iris_train_saves_a_bundle_and_exports_a_model(store_home: Path, tmp_path: Path) -> None:
    run("python", "train.py", cwd=IRIS)
    saved = bentolite.load("IrisClassifier:latest")
    assert saved.predict_clipper([SETOSA, VIRGINICA]).tolist() == [0, 2]

    run("python", "train.py", "--export", str(tmp_path / "model.pkl"), cwd=IRIS)
    model = pickle.loads((tmp_path / "model.pkl").read_bytes())
    assert model.predict([VIRGINICA]).tolist() == [2]


def test_text_length_save_and_build(store_home: Path) -> None:
    assert "[3, 1]" in run("python", "save.py", cwd=TEXT_LENGTH)
    built = json.loads(run("bentolite", "build", "-o", "json", cwd=TEXT_LENGTH))
    assert [api["clipper_input_type"] for api in built["apis"] if api["name"] == "length"] == ["strings"]
    assert len(list((store_home / "bundles" / "TextLength").iterdir())) == 2
    assert not (Path(built["path"]) / "src" / "save.py").exists()  # the bentofile leaves it out

    one = run(
        "bentolite",
        "run",
        built["tag"],
        "length",
        "--input",
        '{"input": "hello clipper world"}',
        cwd=EXAMPLES,
    )
    assert json.loads(one)["output"] == 3  # config.json counts words
    text = run("bentolite", "run", built["tag"], "length_of_text", "--input", '"one two"', cwd=EXAMPLES)
    assert json.loads(text) == {"unit": "words", "length": 2}


IRIS_HEADER = "sepal_length,sepal_width,petal_length,petal_width\n"
#: (content type, body, what the 400's error says): each a request the iris model cannot take
MALFORMED_IRIS_REQUESTS = [
    ("application/json", '[[5.1, "x", 1.4, 0.2]]', "row 0, column 'sepal_width': 'x' is not a number"),
    ("application/json", "[[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4]]", "row 1 has 3 values; expected 4"),
    ("application/json", "[[5.1, null, 1.4, 0.2]]", "row 0, column 'sepal_width': null is not a number"),
    ("application/json", "[[5.1, [3.5], 1.4, 0.2]]", "column 'sepal_width': an array is not a number"),
    ("application/json", "[[5.1, NaN, 1.4, 0.2]]", "holds NaN, which is not JSON"),
    ("application/json", "[[5.1, Infinity, 1.4, 0.2]]", "holds Infinity"),
    ("application/json", "[[5.1, 1e400, 1.4, 0.2]]", "number 1e400 is out of the range"),
    (
        "application/json",
        '[{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4}]',
        "missing column 'petal_width'",
    ),
    ("application/json", "[" * 900 + "]" * 900, "nests arrays/objects more than 64 deep"),
    ("application/json", '[["\\ud800", 3.5, 1.4, 0.2]]', "lone UTF-16 surrogate"),
    ("text/csv", IRIS_HEADER, "the CSV has a header but no rows"),
    ("text/csv", IRIS_HEADER + "0,5.1,3.5,1.4,0.2\n", "row 0 (line 2) has 5 fields; the header has 4"),
]


def test_iris_client_against_bentolite_serve(iris_example_bundle: Path, tmp_path: Path) -> None:
    server = Server(str(iris_example_bundle), home=tmp_path, log=tmp_path / "server.log")
    try:
        out = run("python", "client.py", "--url", server.base, cwd=IRIS)
        for content_type, body, error in MALFORMED_IRIS_REQUESTS:
            answer = server.post("/predict", data=body.encode(), headers={"content-type": content_type})
            assert answer.status_code == 400 and error in answer.json()["error"], (body[:60], answer.text)
        assert server.post("/predict", json=[[6.5, 3.0, 5.8, 2.2]]).json() == [2]
    finally:
        server.stop()
    answers = [json.loads(line.split("-> ", 1)[1]) for line in out.splitlines() if "-> " in line]
    assert answers[0] == [0, 2]
    assert answers[1] == {"query_id": 0, "output": 2, "default": False}
    assert [p["output"] for p in answers[2]["batch_predictions"]] == [0, 2]


def test_deploy_example_trains_and_saves_a_bundle(store_home: Path) -> None:
    # in a child process: train_and_save imports the iris example's modules by their plain names
    code = "import deploy_to_clipper as d; print(d.train_and_save())"
    path = Path(run("python", "-c", code, cwd=EXAMPLES).strip().splitlines()[-1])
    assert path.parent.parent == store_home / "bundles"
    assert [api.name for api in BundleMeta.read(path).apis] == ["predict", "predict_clipper"]


@pytest.mark.docker
def test_deploy_example_on_a_clipper_cluster(clipper, built_images, iris_example_bundle: Path) -> None:
    conn, manager = clipper
    meta = BundleMeta.read(iris_example_bundle)
    built_images.append(default_image_name(meta.name, meta.version, "clipper", "predict_clipper"))
    example = import_example(EXAMPLES / "deploy_to_clipper.py")

    result = example.run(conn, iris_example_bundle)

    assert result["output"] == 2 and result["default"] is False  # virginica
    frontend = manager.frontend
    assert frontend.calls("add_app") == [
        {
            "name": "bentolite-iris",
            "input_type": "floats",
            "default_output": "null",
            "latency_slo_micros": 100000,
        }
    ]
    (model,) = frontend.calls("add_model")
    assert (model["model_name"], model["input_type"]) == ("irisclassifier-predict-clipper", "floats")
    assert frontend.calls("add_model_links") == [
        {"app_name": "bentolite-iris", "model_names": ["irisclassifier-predict-clipper"]}
    ]
    # Clipper refuses integer literals for a floats application; the example sends 6.0, not 6
    url = f"http://{conn.get_query_addr()}/bentolite-iris/predict"
    refused = requests.post(url, json={"input": [6, 3, 5, 2]}, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "Json error"
    assert example.query(conn, [6, 3, 5, 2])["default"] is False
    # a second run on the same cluster (--connect) registers nothing twice
    example.register_app(conn)
    assert len(frontend.calls("add_app")) == 1


@pytest.mark.docker
def test_deploy_example_says_when_no_cluster_runs(docker_client) -> None:
    pytest.importorskip("clipper_admin")
    clusters = docker_client.containers.list(filters={"label": "ai.clipper.container.label=default-cluster"})
    if clusters:
        pytest.skip("a Clipper cluster named default-cluster runs on this engine")
    example = import_example(EXAMPLES / "deploy_to_clipper.py")
    with pytest.raises(SystemExit, match="no Clipper cluster named 'default-cluster'"):
        example.connect(start=False)
