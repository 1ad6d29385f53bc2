"""Which files of a build directory a bundle gets (bentolite/build_context.py): gitignore
patterns, .bentoignore, and symbolic links."""

from __future__ import annotations

from pathlib import Path

import pytest
from source_tree import write

from bentolite.build_context import collect_files, path_spec
from bentolite.exceptions import ConfigError


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("*", ["a.py", "x/y/z.txt"], []),
        ("*.py", ["a.py", "pkg/b.py"], ["a.pyc", "py"]),
        ("data/*.csv", ["data/a.csv"], ["data/sub/a.csv", "other/data/a.csv"]),
        ("data/**/*.csv", ["data/a.csv", "data/x/y/a.csv"], ["a.csv"]),
        ("tests/", ["tests/a.py", "pkg/tests/b.py", "tests/"], ["tests"]),
        ("notes", ["notes", "notes/a.md", "x/notes"], ["notes.md"]),
        ("./train.py", ["train.py"], ["sub/train.py"]),
        ("model_[0-9].pkl", ["model_1.pkl"], ["model_a.pkl"]),
    ],
)
def test_patterns_follow_gitignore(pattern, matches, misses):
    spec = path_spec([pattern])
    for path in matches:
        assert spec.match_file(path), (pattern, path)
    for path in misses:
        assert not spec.match_file(path), (pattern, path)


def test_collect_files_always_leaves_out_vcs_caches_and_virtualenvs(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOLITE_HOME", str(tmp_path / "home"))
    write(
        tmp_path,
        {
            "svc.py": "",
            "data/a.csv": "",
            "data/b.txt": "",
            "helpers/util.py": "",
            ".git/config": "",
            "pkg/__pycache__/x.cpython-311.pyc": "",
            "stale.pyc": "",
            "venv/lib/site.py": "",
            "myenv/pyvenv.cfg": "",
            "myenv/lib/mod.py": "",
            "home/bundles/x.py": "",
            "model.pkl": "",
        },
    )
    found = [rel for rel, _ in collect_files(tmp_path, ["*"], skip=[tmp_path / "model.pkl"])]
    assert found == ["data/a.csv", "data/b.txt", "helpers/util.py", "svc.py"]
    found = [rel for rel, _ in collect_files(tmp_path, ["*.py", "data/*.csv"], ["helpers/"])]
    assert found == ["data/a.csv", "svc.py"]


def test_negation_and_bentoignore(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOLITE_HOME", str(tmp_path / "home"))
    write(
        tmp_path,
        {
            "svc.py": "",
            "data/a.csv": "",
            "data/keep.csv": "",
            "data/sub/keep.csv": "",
            "notes/todo.md": "",
            "secret.env": "",
            "big/blob.bin": "",
            ".bentoignore": "# local files\nsecret.env\nbig/\n*.md\n\n!notes/todo.md\n",
        },
    )
    found = [rel for rel, _ in collect_files(tmp_path, ["*"], ["*.csv", "!keep.csv"])]
    assert found == [".bentoignore", "data/keep.csv", "data/sub/keep.csv", "notes/todo.md", "svc.py"]
    found = [rel for rel, _ in collect_files(tmp_path, ["*.py", "*.csv", "!data/sub/*.csv"], ["notes/"])]
    assert found == ["data/a.csv", "data/keep.csv", "svc.py"]
    (tmp_path / ".bentoignore").write_text("[z-a]\n")
    with pytest.raises(ConfigError, match=r"\.bentoignore:1: '\[z-a\]' is not a valid pattern"):
        collect_files(tmp_path, ["*"])


@pytest.fixture
def linked_dir(tmp_path: Path, monkeypatch) -> Path:
    """A build directory with links: to a file and a folder inside, and a dangling one."""
    monkeypatch.setenv("BENTOLITE_HOME", str(tmp_path / "home"))
    build_dir = write(tmp_path / "ctx", {"svc.py": "", "data/real.csv": "a,b\n", "conf/app.ini": "[x]\n"})
    (build_dir / "alias.csv").symlink_to("data/real.csv")
    (build_dir / "settings").symlink_to("conf", target_is_directory=True)
    (build_dir / "loop").symlink_to(".", target_is_directory=True)
    (build_dir / "gone.txt").symlink_to("nowhere.txt")
    return build_dir


def test_links_inside_the_build_directory_are_copied_as_content(linked_dir):
    found = dict(collect_files(linked_dir, ["*"]))
    assert sorted(found) == ["alias.csv", "conf/app.ini", "data/real.csv", "settings/app.ini", "svc.py"]
    assert found["alias.csv"].read_text() == "a,b\n" and found["settings/app.ini"].read_text() == "[x]\n"


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_link_leading_outside_is_an_error_unless_allowed(linked_dir, tmp_path, kind):
    secret = write(tmp_path / "elsewhere", {"credentials": "aws_secret_access_key = hunter2\n"})
    if kind == "file":
        (linked_dir / "creds.txt").symlink_to(secret / "credentials")
        named, copied = "creds.txt", "creds.txt"
    else:
        (linked_dir / "aws").symlink_to(secret, target_is_directory=True)
        named, copied = "aws", "aws/credentials"
    with pytest.raises(ConfigError, match=rf"{named} in .* is a symbolic link to {secret}.*outside"):
        collect_files(linked_dir, ["*"])
    assert [rel for rel, _ in collect_files(linked_dir, ["*"], [named])] == sorted(
        ["alias.csv", "conf/app.ini", "data/real.csv", "settings/app.ini", "svc.py"]
    )
    allowed = dict(collect_files(linked_dir, ["*"], allow_external_symlinks=True))
    assert allowed[copied].read_text().startswith("aws_secret")


def test_a_link_to_a_left_out_file_does_not_smuggle_it_in(linked_dir):
    write(linked_dir, {".git/config": "[remote]\nurl = https://token@host/repo\n", "private/key.pem": "k"})
    (linked_dir / "gitconfig").symlink_to(".git/config")
    (linked_dir / "gitdir").symlink_to(".git", target_is_directory=True)
    (linked_dir / "key").symlink_to("private/key.pem")
    found = [rel for rel, _ in collect_files(linked_dir, ["*"], ["private/"])]
    assert not {"gitconfig", "key"} & set(found) and not any(
        r.startswith(("gitdir", "private")) for r in found
    )
    assert "alias.csv" in found  # a link to a file that is collected still is
