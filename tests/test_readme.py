"""The README's promises: its test command is CI's, its code runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def setup_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block, "README must open with a bash block of set-up commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_setup_commands():
    commands = setup_commands()
    assert len(commands) == 2
    assert "examples/iris_classifier/demo.sh" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup_commands()[1] in ci


def test_readme_python_examples_run(tmp_path, monkeypatch, iris_model):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    service_block = next(b for b in blocks if b.startswith("# iris_classifier.py"))
    (tmp_path / "iris_classifier.py").write_text(service_block)
    monkeypatch.syspath_prepend(str(tmp_path))
    usage = next(b for b in blocks if "svc.save()" in b)
    namespace: dict = {}
    exec(compile(usage, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert namespace["svc"].predict_clipper([namespace["iris"].data[0]]).tolist() == [0]
    assert namespace["same"].version == namespace["svc"].version
