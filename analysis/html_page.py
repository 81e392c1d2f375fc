"""report.md -> one self-contained report.html: readable offline, every PNG embedded as a
base64 data URI, the style inline (no external CSS, JS or fonts).

The Markdown is converted by Python-Markdown (the `tables` extension for the pipe tables)
rather than by hand: the report's Markdown is the single source, so both files always say
the same. Links to PDFs, CSVs and LaTeX stay relative links (they open beside the page).
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
code { background: #f4f4f4; padding: 0 0.2em; font-size: 0.9em; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
"""

_IMG = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]+)(")')
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def embed_images(body: str, base: Path) -> str:
    """Replace every local <img src> with a data URI of the file (left as is if missing)."""
    def repl(m: re.Match) -> str:
        src = html.unescape(m.group(2))
        path = base / src
        mime = _MIME.get(path.suffix.lower())
        if src.startswith(("data:", "http:", "https:")) or mime is None or not path.is_file():
            return m.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"{m.group(1)}data:{mime};base64,{data}{m.group(3)}"
    return _IMG.sub(repl, body)


_CODE = re.compile(r"<code>(.*?)</code>", re.S)


_URL = re.compile(r'(\b(?:href|src)=")([^"]*)(")', re.I)
_SAFE_URL = re.compile(r"^(?:https?:|data:image/|#|[^:]*$)", re.I)   # relative paths have no scheme


def _safe_urls(body: str) -> str:
    """Any link or image address with another scheme (javascript:, vbscript:, data:text/html...) -> '#'."""
    def repl(m: re.Match) -> str:
        url = html.unescape(m.group(2)).strip()
        return m.group(0) if _SAFE_URL.match(url) else f"{m.group(1)}#{m.group(3)}"
    return _URL.sub(repl, body)


def markdown_to_html(md_text: str) -> str:
    """Markdown -> HTML with raw HTML switched off: everything the report takes from the results
    tree (folder names, genotypes, notes, paths) shows as text, never as live HTML (`<img
    onerror=...>` is printed, not run), and a link or image address can only be relative or
    http(s)."""
    md = markdown.Markdown(extensions=["tables"], output_format="html")
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return _safe_urls(md.convert(md_text))


def to_html(md_text: str, base: Path, title: str) -> str:
    body = markdown_to_html(md_text)
    # A pipe inside a table cell is written `\|` (GitHub's rule, also inside code spans);
    # Python-Markdown keeps the backslash in code spans, so drop it there.
    body = _CODE.sub(lambda m: "<code>" + m.group(1).replace("\\|", "|") + "</code>", body)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"{embed_images(body, base)}\n</body>\n</html>\n")


def write_html(md_path: Path, out: Path, title: str) -> Path:
    """report.html beside report.md, figures resolved relative to the Markdown's folder."""
    out.write_text(to_html(md_path.read_text(), md_path.parent, title), encoding="utf-8")
    return out
