# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Live data: Massive's WebSocket protocol and the local replay server (no Dagster)."""
