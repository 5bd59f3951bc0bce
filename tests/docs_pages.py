"""The documentation as the tests read it: README.md (the front page) and the pages under
docs/ (built into a site by mkdocs.yml). Every example command is read from here, so a page
that moves an example keeps it tested."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def pages() -> dict[str, str]:
    """Each page under docs/ by file name ("train.md"), in name order."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md"))}


def bash_blocks(text: str) -> list[str]:
    """The ```bash blocks of one Markdown text, in order."""
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def headings(text: str) -> list[str]:
    """The Markdown headings of a text, fenced code blocks left out (a `# comment` in a
    shell example is no heading)."""
    prose = re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.S | re.M)
    return [line for line in prose.splitlines() if re.match(r"#{1,6} ", line)]


def anchors(text: str) -> set[str]:
    """The #anchors of a text's headings, as MkDocs (and, for these headings, GitHub) make
    them."""
    from markdown.extensions.toc import slugify

    return {slugify(h.lstrip("#").strip(), "-") for h in headings(text)}


def example_commands(command: str) -> list[list[str]]:
    """Every `cnncli COMMAND ...` line of a ```bash block in the README and then the pages
    (comments dropped), split as a shell would, without the leading `cnncli`."""
    lines = []
    for text in [readme(), *pages().values()]:
        for block in bash_blocks(text):
            for line in block.replace("\\\n", " ").splitlines():  # continued lines joined
                words = shlex.split(line, comments=True)
                if words[:2] == ["cnncli", command]:
                    lines.append(words[1:])
    return lines
