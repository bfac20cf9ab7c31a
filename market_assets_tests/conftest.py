# Copyright (c) James Kassemi, SC, US. All rights reserved.
from __future__ import annotations

from pathlib import Path

import pytest

from market_assets_tests.config_files import write_config
from market_assets_tests.s3_server import s3_bucket, s3_server  # noqa: F401  (fixtures)


@pytest.fixture
def project_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a config whose mirror and warehouse live in tmp_path, and select it.

    Returns a function taking per-section overrides; call it again to rewrite the file.
    """

    def make(**sections):
        sections.setdefault("massive", {})
        sections["massive"] = {"local_root": str(tmp_path / "massive"), **sections["massive"]}
        sections["storage"] = {"root": str(tmp_path / "warehouse"), **sections.get("storage", {})}
        path = write_config(tmp_path / "config.toml", **sections)
        monkeypatch.setenv("MARKET_ASSETS_CONFIG", str(path))
        return path

    return make
