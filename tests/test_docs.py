"""The docs hold together: the README stays a user guide (at most 15 KB), and every link in the
README, docs/ and benchmarks/README.md points at a file of this repo (and, with #anchor, at one of its
headings, as GitHub makes their slugs). No link leaves the repo."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _unfenced(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", _unfenced(text))


def _anchors(path: Path) -> set[str]:
    """GitHub's heading slugs: lower case, punctuation dropped, spaces to '-', repeats numbered."""
    found, seen = set(), {}
    for line in _unfenced(path.read_text()).splitlines():  # inline code in a heading keeps its text
        if heading := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return found


def test_the_readme_is_a_user_guide_of_at_most_15_kb():
    assert len((ROOT / "README.md").read_bytes()) <= 15_000


def test_every_link_resolves_inside_the_repo():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", _prose(doc.read_text())):
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            where = f"{doc.relative_to(ROOT)}: {target}"
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or not dest.is_relative_to(ROOT):
                broken.append(f"{where} leaves the repo")
            elif not dest.exists():
                broken.append(f"{where} is missing")
            elif anchor and anchor not in _anchors(dest):
                broken.append(f"{where} names no heading")
    assert broken == [] and len(DOCS) > 10
