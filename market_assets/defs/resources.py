# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Dagster resources: the loaded settings and the flat-file source built from them."""

from __future__ import annotations

import datetime as dt
import os
from functools import cached_property

import dagster as dg

from market_assets.io.source import (
    FlatFileStore,
    OpenedFile,
    RetryLog,
    flat_file_key,
    store_from_settings,
)
from market_assets.settings import Settings, load_settings


class SettingsResource(dg.ConfigurableResource):
    """config.toml, validated (path: ``config_path`` or $MARKET_ASSETS_CONFIG).

    The file is parsed once per process (:func:`load_settings` caches it until it changes);
    a run sees one ``Settings`` object throughout.
    """

    config_path: str = ""

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path or None)


class FlatFileSource(dg.ConfigurableResource):
    """Opens a day's Massive flat file as a byte stream, from a local mirror or S3 ([massive]).

    The store is built once, at the first open; S3 credentials come from
    MASSIVE_ACCESS_KEY_ID / MASSIVE_SECRET_ACCESS_KEY in the environment then. They are never
    part of any resource's config (so never shown in the UI or logs).
    """

    settings: SettingsResource

    @cached_property
    def _store(self) -> FlatFileStore:
        return store_from_settings(self.settings.settings.massive, os.environ)

    def open(self, dataset: str, day: dt.date, log: RetryLog | None = None) -> OpenedFile:
        """Open the day's file; S3 retry lines go to ``log`` (e.g. ``context.log``)."""
        return self._store.with_log(log).open(flat_file_key(dataset, day))
