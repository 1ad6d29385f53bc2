"""What an image's cleanup removes and compiles (bentolite/image_slim.py), on real folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bentolite import image_slim


def make_site(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


SITE = {
    # a library whose run-time code imports its own tests package: it must stay
    "keeps/__init__.py": "from keeps.tests.fixtures import DATA\n",
    "keeps/tests/__init__.py": "",
    "keeps/tests/fixtures.py": "DATA = 1\nimport keeps.other.tests.util\n",
    # imported relatively by a sibling module: stays
    "rel/__init__.py": "",
    "rel/core.py": "from .tests import helpers\n",
    "rel/tests/__init__.py": "",
    "rel/tests/helpers.py": "X = 1\n",
    # from two levels down: stays
    "deep/__init__.py": "",
    "deep/a/__init__.py": "",
    "deep/a/b.py": "from .. import tests\n",
    "deep/tests/__init__.py": "",
    "deep/tests/t.py": "",
    # named in a string, as importlib.import_module takes it: stays
    "strs/__init__.py": "import importlib\nmod = importlib.import_module('strs.test.data')\n",
    "strs/test/__init__.py": "",
    "strs/test/data.py": "",
    # test suites only other test suites import: removed
    "lib/__init__.py": "VALUE = 1\n",
    "lib/tests/__init__.py": "",
    "lib/tests/test_lib.py": "from lib.sub.tests.common import helper\n",
    "lib/sub/__init__.py": "",
    "lib/sub/tests/__init__.py": "",
    "lib/sub/tests/common.py": "def helper():\n    return 1\n",
    # a test suite the kept one imports: stays with it
    "keeps/other/__init__.py": "",
    "keeps/other/tests/__init__.py": "",
    "keeps/other/tests/util.py": "",
    # a top-level tests package of a careless distribution: left alone
    "tests/__init__.py": "",
    # what only a compiler or a debugger reads
    "lib/app.js.map": "{}",
    "lib/__init__.pyi": "VALUE: int\n",
    "lib/fast.pyx": "def f(): pass\n",
}


def test_only_test_folders_nothing_imports_are_removed(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site-packages", SITE)
    removed = image_slim.slim(site)
    assert removed == {"test_dirs": 2, "files": 3}
    assert not (site / "lib/tests").exists() and not (site / "lib/sub/tests").exists()
    for kept in ("keeps/tests", "keeps/other/tests", "rel/tests", "deep/tests", "strs/test", "tests"):
        assert (site / kept / "__init__.py").is_file(), kept
    assert not (site / "lib/app.js.map").exists() and not (site / "lib/__init__.pyi").exists()
    assert (site / "lib/__init__.py").is_file()


def test_the_kept_library_still_imports(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site-packages", SITE)
    image_slim.slim(site, compile_bytecode=True)
    code = "import keeps, rel.core, deep.a.b, strs, lib; print(keeps.DATA, lib.VALUE)"
    done = subprocess.run([sys.executable, "-c", code], cwd=site, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 1"


def test_compiling_writes_hash_based_bytecode_only_for_what_is_asked(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site-packages", SITE)
    image_slim.slim(site, packages=["keeps"], compile_bytecode=True)
    tag = sys.implementation.cache_tag
    pyc = site / "keeps" / "__pycache__" / f"__init__.{tag}.pyc"
    assert pyc.is_file()
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, unchecked: the same bytes for the same source
    assert not (site / "lib" / "__pycache__").exists()  # another package: untouched
    assert (site / "lib" / "tests").is_dir()
    again = site / "keeps" / "__pycache__"
    before = {p.name: p.read_bytes() for p in again.iterdir()}
    for path in again.iterdir():
        path.unlink()
    image_slim.compile_tree(site / "keeps")
    assert {p.name: p.read_bytes() for p in again.iterdir()} == before


def test_runs_as_a_script_with_the_standard_library_alone(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site", SITE)
    script = tmp_path / "slim.py"
    script.write_text(Path(image_slim.__file__).read_text())
    code = (
        "import sys, sysconfig; site = sys.argv[1]; sysconfig.get_path = lambda name, *a, **k: site; "
        f"sys.argv = [sys.argv[0], '--compile']; exec(open({str(script)!r}).read())"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code, str(site)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "removed 2 unused test folders and 3 files" in done.stdout
    assert (site / "keeps" / "__pycache__").is_dir()
