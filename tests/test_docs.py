"""The documentation pages (docs/, built by mkdocs.yml) stay whole: every command and
sub-command of `cnncli --help` has a section, every picture exists, and the site builds
with `mkdocs build --strict`, offline, into pages that open from the file system and load
nothing from the network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from docs_pages import headings, pages

REPO = Path(__file__).resolve().parents[1]
COMMAND_ROW = re.compile(r"│ (\w[\w-]*)\s{2,}")  # a command's row in rich's "Commands" box


def _commands(cli, *group: str) -> set[str]:
    """The commands `cnncli [GROUP] --help` lists in its Commands box."""
    result = cli(*group, "--help")
    assert result.exit_code == 0, result.output
    box = result.stdout.split("─ Commands ─", 1)
    return set(COMMAND_ROW.findall(box[1])) if len(box) == 2 else set()


def test_every_command_has_a_docs_section(cli):
    """Like sqlite-utils' test_docs: a command (or a group's sub-command) that no page's
    heading names fails here, so a new command comes with its page section."""
    names = []
    for command in sorted(_commands(cli)):
        names.append(command)
        names += [f"{command} {sub}" for sub in sorted(_commands(cli, command))]
    assert {"train", "evaluate", "predict", "dataset", "dataset build"} <= set(names)
    all_headings = "\n".join(h for text in pages().values() for h in headings(text))
    missing = [name for name in names if f"`cnncli {name}`" not in all_headings]
    assert not missing, f"no docs/ page has a heading naming {missing}"


def test_pages_pictures_exist():
    pictures = [
        (name, picture)
        for name, text in pages().items()
        for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    ]
    assert len(pictures) >= 6
    for name, picture in pictures:
        assert (REPO / "docs" / picture).is_file(), f"{name}: {picture}"


def test_site_builds_offline_and_opens_from_the_file_system(tmp_path):
    """`mkdocs build --strict` (a broken link, a missing anchor or a page left out of the
    nav fails it), with every proxy pointing at a closed port so nothing can be fetched."""
    site = tmp_path / "site"
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HTTP_PROXY": dead, "HTTPS_PROXY": dead}
    env.update(http_proxy=dead, https_proxy=dead)
    started = time.monotonic()
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    assert time.monotonic() - started < 60

    index = site / "index.html"
    assert index.is_file()
    html_files = sorted(site.glob("*.html"))
    assert {p.stem for p in html_files} >= {Path(name).stem for name in pages()}
    for page in html_files:
        html = page.read_text(encoding="utf-8")
        remote = re.findall(r"<(?:script|link|img|iframe)\b[^>]*(?:src|href)=\"(https?:)?//", html)
        assert not remote, f"{page.name} loads something from the network"
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html, page.name
        if page.name == "404.html":
            continue  # a web server's page, linked from the site's root: never from a file
        # links between pages are files (train.html), not folders a file:// URL cannot open
        for href in re.findall(r"href=\"([^\"#:]+)(?:#[^\"]*)?\"", html):
            assert (page.parent / href).is_file(), f"{page.name} links to missing {href}"
    for css in site.rglob("*.css"):
        assert not re.search(r"url\(['\"]?(https?:)?//", css.read_text(encoding="utf-8")), css
