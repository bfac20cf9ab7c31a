# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""The runs' executor: every step in the run's own process unless the run config asks for
one process per step.

Dagster's default (``multi_or_in_process_executor``) starts a process per step, and each
one imports Dagster, pandas, scipy and the definitions again (3-5 s on 2 busy cores) before
it does any work: a tiny day's full graph took 40-50 s that way, 4 steps of well under a
second of work each. The steps are a chain (both ingests, then greeks, then features), and
the heavy ones already use both cores inside (the ingest decodes, parses and writes on
separate threads), so on a 2-core host running them in one process costs a big day
little and saves seconds on every run. The same executor's ``multiprocess`` mode is one
run-config line away for a bigger host (docs/operations.md):

    execution: {config: {multiprocess: {max_concurrent: 4}}}
"""

import dagster as dg

_BOTH = dg.multi_or_in_process_executor

STEP_EXECUTOR = dg.ExecutorDefinition(
    name="in_process_or_multiprocess",
    # Dagster's own config (in_process | multiprocess), defaulting to in_process.
    config_schema=dg.Field(_BOTH.config_schema.config_type, default_value={"in_process": {}}),
    executor_creation_fn=_BOTH.executor_creation_fn,
    requirements=_BOTH.get_requirements,
    description="In-process by default; `multiprocess` in the run config: a process per step.",
)
