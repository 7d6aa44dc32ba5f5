"""The repository documents itself: README.md is a short front door, docs/ holds the
rest, every relative link and anchor between them resolves, and nothing cites notes
that live outside the repository."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 250

# Where citations of outside notes must not appear.
SCANNED = ("notip", "tests", "bench", "deploy", "docs", "README.md", "compose.yaml",
           "Dockerfile", "Justfile")  # fmt: skip
# Spelled so that this file does not match its own patterns.
OUTSIDE_PATHS = ("../" + "shared/", "CONTRACTS" + ".md", "DESIGN" + ".md")
# The outside notes' section citations ("CONTRACTS" or "DESIGN", the section sign, a
# number) and bare section numbers, but not an RFC's ("RFC 9110", section sign, "15.5.6").
SECTION = "\u00a7"
OUTSIDE_CITATION = re.compile(r"\b(?:CONTRACTS|DESIGN)\s*" + SECTION)
BARE_SECTION = re.compile(SECTION + r"\d")
RFC_SECTION = re.compile(r"\bRFC \d+ " + SECTION)

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_CODE = re.compile(r"`[^`]*`")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: inline code and links reduced to their text,
    lowercase, punctuation dropped (word characters, `-` and spaces kept), spaces
    turned into hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> Iterator[tuple[int, str]]:
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for m in _LINK.finditer(_INLINE_CODE.sub("", line)):
            yield number, m.group(1)


def is_external(target: str) -> bool:
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) is not None


def test_slug_follows_github() -> None:
    assert slug("Stopping and exit codes") == "stopping-and-exit-codes"
    assert slug("`notip provisioning`") == "notip-provisioning"
    assert slug("REST conformance (schemathesis)") == "rest-conformance-schemathesis"
    assert slug("Restart = resume") == "restart--resume"
    assert slug("Rule Zero: the cloud never decrypts") == "rule-zero-the-cloud-never-decrypts"


def test_the_pages_exist() -> None:
    names = {p.name for p in DOCS.glob("*.md")}
    expected = {"consumer.md", "simulator.md", "platform.md", "operations.md",
                "contracts.md", "design.md", "performance.md", "testing.md"}  # fmt: skip
    assert expected <= names, sorted(expected - names)


def test_readme_is_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_readme_links_every_docs_page() -> None:
    linked = {
        (README.parent / target.split("#", 1)[0]).resolve()
        for _, target in links(README)
        if not is_external(target) and not target.startswith("#")
    }
    missing = [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    found = list(links(page))
    assert found, f"{page.name} links nothing"
    broken: list[str] = []
    for number, target in found:
        if is_external(target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(REPO)}:{number}: {target}"
        if not dest.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where} (no such heading)")
        elif anchor and dest.suffix != ".md":
            broken.append(f"{where} (anchor into a non-Markdown file)")
    assert not broken, "\n".join(broken)


def scanned_files() -> Iterator[Path]:
    for name in SCANNED:
        root = REPO / name
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in candidates:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield path


def outside_citations(text: str) -> list[str]:
    found = [s for s in OUTSIDE_PATHS if s in text]
    found += [m.group(0) for m in OUTSIDE_CITATION.finditer(text)]
    for m in BARE_SECTION.finditer(text):
        before = text[max(0, m.start() - 12) : m.end()]
        if not RFC_SECTION.search(before):
            found.append(m.group(0))
    return found


def test_outside_citation_detector() -> None:
    assert outside_citations("see CONTRACTS " + SECTION + "1.3 and DESIGN " + SECTION + "4")
    assert outside_citations("the aliases of " + SECTION + "1.4")
    assert outside_citations("../" + "shared/" + "schemas")
    assert not outside_citations("RFC 9110 " + SECTION + "15.5.6: a 405 carries Allow")
    assert not outside_citations("docs/contracts.md#telemetry-envelope")


def test_nothing_cites_notes_outside_the_repository() -> None:
    offenders: list[str] = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found = outside_citations(text)
        if found:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(set(found))}")
    assert not offenders, "\n".join(offenders)
