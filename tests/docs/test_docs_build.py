"""The documentation: the MkDocs site builds with --strict (a broken link or anchor between
pages fails it), the README stays short, and every relative link in README.md and docs/
points at a file that exists (and, for a link into a Markdown page, at a heading it has)."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_LINES = 160

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?:.|\n)*?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans (links there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _heading_text(raw: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)   # [text](url) -> text
    return re.sub(r"[`*]", "", text).strip()


def _slug_mkdocs(text: str) -> str:
    """Python-Markdown's toc slugify (what the built site uses)."""
    value = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def _slug_github(text: str) -> str:
    """GitHub's heading anchors (what a reader on GitHub follows)."""
    value = re.sub(r"[^\w\- ]", "", text.lower(), flags=re.UNICODE)
    return value.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Anchors of the page's headings as the built site and as GitHub spell them (the two
    differ only for punctuation and repeated headings)."""
    found: set[str] = set()
    for slugify, repeat in ((_slug_mkdocs, "{}_{}"), (_slug_github, "{}-{}")):
        seen: dict[str, int] = {}
        for m in HEADING.finditer(FENCE.sub("", page.read_text(encoding="utf-8"))):
            slug = slugify(_heading_text(m.group(2)))
            n = seen.get(slug, 0)
            found.add(repeat.format(slug, n) if n else slug)
            seen[slug] = n + 1
    return found


def relative_links(page: Path) -> list[str]:
    links = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # http:, https:, mailto:, ...
        links.append(target)
    return links


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail into docs/")


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path):
    broken = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: {dest.relative_to(REPO)} has no heading with anchor #{anchor}")
    assert not broken, f"{page.relative_to(REPO)}: broken links:\n  " + "\n  ".join(broken)


def test_docs_exist():
    assert (REPO / "mkdocs.yml").is_file()
    assert (DOCS / "index.md").is_file()


def test_mkdocs_build_strict(tmp_path: Path):
    missing = [m for m in ("mkdocs", "material") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install 'mkdocs>=1.6' "
                    "'mkdocs-material>=9.5' (both in requirements.txt) to build the docs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}   # Material's banner, not a build warning
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"mkdocs build --strict failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    assert (tmp_path / "site" / "index.html").is_file()
