"""README.md stays true: its two set-up commands work on a fresh machine, as written, and it
lists every command with a link to its page under docs/."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docs_pages import anchors

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def setup_commands() -> tuple[str, str]:
    """The first two ```bash blocks: the install-and-demo command and the test command."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    first, second = (b.strip() for b in blocks[:2])
    return first, second


def test_the_two_setup_commands_open_the_readme():
    demo, tests = setup_commands()
    assert demo == "pip install . && cnncli demo"
    assert tests == "pip install '.[test]' && python -m pytest -q"
    before_sections = README.split("\n## ", 1)[0]
    assert before_sections.count("```bash") == 2  # exactly two set-up commands at the top


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    _, tests = setup_commands()
    commands = [line for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    # README's test command (the fast suite) as written, then the slow tests it leaves out
    assert commands[-2:] == [tests, "python -m pytest -q -m slow"]


def test_readme_lists_every_command_with_its_page(cli):
    """The front page names every command of `cnncli --help` and links to pages that exist,
    at headings they have (tests/test_docs.py checks the pages themselves)."""
    result = cli("--help")
    commands = set(re.findall(r"│ (\w[\w-]*)\s{2,}", result.stdout))
    assert {"dataset", "summary", "train", "evaluate", "predict", "filter", "pool"} <= commands
    assert {"activations", "embed", "demo"} <= commands
    for command in commands:
        assert f"`cnncli {command}`" in README, f"README says nothing of `cnncli {command}`"
    for picture in re.findall(r"\]\((docs/img/[^)]+)\)", README):
        assert (REPO / picture).is_file(), picture
    links = re.findall(r"\]\((docs/[^)#]+\.md)(?:#([^)]+))?\)", README)
    assert len({page for page, _ in links}) >= 10
    for page, anchor in links:
        assert (REPO / page).is_file(), page
        if anchor:
            text = (REPO / page).read_text(encoding="utf-8")
            assert anchor in anchors(text), f"{page} has no heading #{anchor}"


# what running and testing leave in a source folder, never part of the source: anywhere,
# and at the top (the demo's and a run's outputs, venvs, builds)
JUNK_DIRS = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}
TOP_JUNK = {".venv", "venv", "build", "dist", "site", "cnncli-demo", "runs"}


def source_files(use_git: bool = True) -> list[str]:
    """The repository's files as in a clean clone: git's tracked files in a checkout; from
    an unpacked archive (no .git), every file but what running and testing leave behind
    (JUNK_DIRS, *.egg-info)."""
    if use_git and shutil.which("git") is not None and (REPO / ".git").exists():
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
        ).stdout.split(b"\0")
        return [os.fsdecode(n) for n in out if n]
    files = []
    for folder, dirs, names in os.walk(REPO):
        top = TOP_JUNK if Path(folder) == REPO else set()
        dirs[:] = sorted(
            d for d in dirs if d not in JUNK_DIRS | top and not d.endswith(".egg-info")
        )
        files += [str((Path(folder) / n).relative_to(REPO)) for n in sorted(names)]
    return files


def _tracked_copy(dest: Path) -> None:
    """The repository's source files (source_files), copied to `dest`."""
    for name in source_files():
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def test_an_unpacked_archive_gives_the_same_source_files():
    """Without git (a release archive), the copy still has every tracked file and none of
    the junk, so the fresh-venv test below runs there too."""
    walked = set(source_files(use_git=False))
    if shutil.which("git") is not None and (REPO / ".git").exists():
        tracked = {n for n in source_files() if (REPO / n).is_file()}
        assert tracked <= walked, sorted(tracked - walked)[:5]
    assert not any(part in JUNK_DIRS for name in walked for part in Path(name).parts[:-1])
    assert not any(Path(name).parts[0] in TOP_JUNK for name in walked)
    assert "pyproject.toml" in walked and "README.md" in walked


@pytest.mark.slow
def test_setup_commands_in_a_fresh_virtual_environment(tmp_path):
    """Both commands, as written, in a new venv (no system packages) from a copy of the repo.

    The test command's pytest gets `--collect-only`: running the whole suite inside the
    suite would recurse and double CI's time; collecting proves the fresh install imports
    every test module."""
    repo = tmp_path / "repo"
    _tracked_copy(repo)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    demo, tests = setup_commands()

    def shell(command: str, timeout: int):
        return subprocess.run(
            command,
            shell=True,
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    first = shell(demo, timeout=1200)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "cnncli demo wrote cnncli-demo" in first.stdout
    assert (repo / "cnncli-demo" / "activations" / "index.html").is_file()
    assert str(venv) in shell("command -v cnncli", 10).stdout  # the fresh venv's script

    second = shell(tests + " --collect-only -p no:cacheprovider", timeout=1200)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    collected = re.search(r"(\d+) tests? collected", second.stdout)
    assert collected and int(collected.group(1)) > 300, second.stdout[-2000:]
