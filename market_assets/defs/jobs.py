# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Job names shared by the definitions, the sensor, the schedule and the CLI."""

DAILY_FEATURES_JOB = "daily_features_job"  # every asset and check of one trading day
