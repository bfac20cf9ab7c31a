# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Dagster resources: the flat-file source and the loaded settings."""

from __future__ import annotations

import os
from functools import cached_property

import dagster as dg

from market_assets.io.source import FlatFileStore, OpenedFile, flat_file_key, store_from_settings
from market_assets.settings import Settings, load_settings


class SettingsResource(dg.ConfigurableResource):
    """config.toml, loaded and validated once per run (path: $MARKET_ASSETS_CONFIG)."""

    config_path: str = ""

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path or None)


class FlatFileSource(dg.ConfigurableResource):
    """Opens a day's Massive flat file as a byte stream, from a local mirror or S3.

    Credentials come from MASSIVE_ACCESS_KEY_ID / MASSIVE_SECRET_ACCESS_KEY at open time;
    they are never part of the resource's config (so never shown in the UI or logs).
    """

    config_path: str = ""

    def _store(self) -> FlatFileStore:
        return store_from_settings(load_settings(self.config_path or None).massive, os.environ)

    def store(self) -> FlatFileStore:
        return self._store()

    def open(self, dataset: str, day) -> OpenedFile:
        return self._store().open(flat_file_key(dataset, day))
