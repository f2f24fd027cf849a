"""The documentation stands on its own: docs/config.md is what the config classes generate
now, every relative link in the Markdown pages reaches an existing file (and heading), the
README stays a front page, and no file points at design notes outside the repository."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nowcast.config import Config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gen_config_docs.py"
PAGES = sorted(
    [REPO / "README.md", REPO / "models" / "README.md", REPO / "data" / "README.md"]
    + list((REPO / "docs").glob("*.md"))
)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _generator():
    spec = importlib.util.spec_from_file_location("gen_config_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces → '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M)}


def test_config_md_is_what_the_config_classes_generate():
    expected = _generator().render()
    current = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert current == expected, "docs/config.md is stale: run `make docs`"


def test_gen_config_docs_check_passes_on_the_repository():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr


def test_config_md_has_every_key_with_its_meaning():
    text = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    for section, info in Config.model_fields.items():
        assert f"## `{section}`" in text
        for key, field in info.annotation.model_fields.items():
            assert field.description, f"{section}.{key} has no docstring"
            row = next(
                (line for line in text.splitlines() if line.startswith(f"| `{section}.{key}` |")),
                None,
            )
            assert row is not None, f"{section}.{key} missing from docs/config.md"
            meaning = row.rstrip(" |").split(" | ")[-1]
            assert len(meaning) > 10, row


def test_slug_follows_github_rules():
    assert _slug("`preprocess`") == "preprocess"
    assert _slug("Reading only what is used") == "reading-only-what-is-used"
    assert _slug("Keys every checkpoint has") == "keys-every-checkpoint-has"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_reach_existing_files_and_headings(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor})")
        elif REPO not in dest.parents and dest != REPO:
            broken.append(f"{target} (outside the repository)")
    assert not broken, f"{page.relative_to(REPO)}: {broken}"


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    text = "\n".join(lines)
    for page in ("docs/config.md", "docs/preprocessing.md", "docs/verification.md"):
        assert f"({page})" in text
    # the key tables live in docs/config.md only
    assert "| `train` key |" not in text and "| `predict` key |" not in text


def test_no_file_points_outside_the_repository_for_documentation():
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            capture_output=True,
            cwd=REPO,
            timeout=60,
            check=True,
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    # spelled in pieces so that this file does not match itself
    needles = [n.encode() for n in ("DESIGN" + ".md", "REFERENCE" + ".md", "shared/" + "docs")]
    hits = []
    for name in filter(None, listed):
        path = REPO / name.decode()
        if not path.is_file() or path.suffix in (".pt", ".png", ".nc", ".h5", ".gif"):
            continue
        data = path.read_bytes()
        hits += [f"{name.decode()}: {n.decode()}" for n in needles if n in data]
    assert not hits
