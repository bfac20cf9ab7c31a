# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The repository stands alone: no file reads a path outside the clone, every source file
carries the licence header."""

from __future__ import annotations

import re
import subprocess

from market_assets_tests.config_files import REPO

HEADER = "# Copyright (c) James Kassemi, SC, US. All rights reserved."
# An absolute path of a development machine, or a folder beside the clone (spelt in pieces
# so that this file does not match itself).
_PIECES = ("/" + "work/", "/" + "root/", ".." + "/shared")
OUTSIDE = re.compile("|".join(map(re.escape, _PIECES)) + r"|/home/\w|parent / \"shared\"")


def _tracked(*patterns: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:  # a copy without .git: every file on disk
        return [
            str(p.relative_to(REPO))
            for pat in patterns
            for p in REPO.rglob(pat)
            if ".venv" not in p.parts
        ]
    return [f for f in out.stdout.splitlines() if (REPO / f).exists()]


def test_no_source_or_build_file_names_a_path_outside_the_repository():
    files = _tracked("*.py", "*.toml", "*.yaml", "*.cfg", "Makefile", ".ci/*")
    offenders = [
        f"{f}: {m.group(0)}"
        for f in files
        for m in [OUTSIDE.search((REPO / f).read_text(errors="replace"))]
        if m
    ]
    assert not offenders, offenders


def test_every_python_source_file_starts_with_the_licence_header():
    missing = [f for f in _tracked("*.py") if HEADER not in (REPO / f).read_text().splitlines()[:3]]
    assert not missing, missing
