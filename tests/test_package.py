"""Package-level promises: cheap import, explicit public API."""

from __future__ import annotations

import json
import subprocess
import sys


def test_import_does_not_load_heavy_dependencies():
    code = (
        "import sys, json, bentolite, bentolite.adapters, bentolite.artifacts\n"
        "print(json.dumps([m for m in ('pandas', 'numpy', 'docker', 'zmq', 'uvicorn', 'starlette',"
        " 'sklearn', 'rich') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_artifacts_is_both_module_and_decorator():
    import bentolite
    from bentolite import artifacts
    from bentolite.artifacts import PickleArtifact

    assert callable(artifacts) and artifacts is bentolite.artifacts
    assert artifacts.PickleArtifact is PickleArtifact


def test_bentoml_style_imports_work():
    from bentolite.artifact import PickleArtifact
    from bentolite.artifacts import PickleArtifact as Same

    assert PickleArtifact is Same
