# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The same graph with every step of a run sent to Celery workers (``dagster-celery``).

Load this module instead of ``market_assets.defs.definitions`` (``-m
market_assets.defs.celery_definitions`` for the webserver, the daemon and ``dagster job
backfill``) to run each step of a run on whichever Celery worker takes it: the run's own
process only queues the steps and follows them. The broker and the result backend come from
the environment, the same variables ``dagster_home/celery.yaml`` (the workers' config) reads:

- ``DAGSTER_CELERY_BROKER_URL``, e.g. ``redis://redis.internal:6379/0``
- ``DAGSTER_CELERY_BACKEND_URL``, e.g. ``redis://redis.internal:6379/1``

Workers need the code and the environment of a run: this package, ``MARKET_ASSETS_CONFIG``
(with the warehouse on S3, so every worker reads what another wrote), ``DAGSTER_HOME`` with
the shared PostgreSQL instance, and the S3 credentials. docs/operations.md has the steps.
"""

from __future__ import annotations

import dagster as dg
from dagster_celery import celery_executor

from market_assets.defs.definitions import build_definitions
from market_assets.settings import config_path, load_settings

BROKER_ENV = "DAGSTER_CELERY_BROKER_URL"
BACKEND_ENV = "DAGSTER_CELERY_BACKEND_URL"

CELERY_EXECUTOR: dg.ExecutorDefinition = celery_executor.configured(
    {"broker": {"env": BROKER_ENV}, "backend": {"env": BACKEND_ENV}},
    name="celery",
)

defs = build_definitions(load_settings(config_path()), executor=CELERY_EXECUTOR)
