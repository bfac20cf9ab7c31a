# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""Run reports on real (tiny) Dagster runs: causes instead of Dagster's wrappers, and a
start and finish line per step."""

import io
import re

import dagster as dg

from market_assets.defs.run_report import RunProgress, run_failures


class _FailingWrites(dg.IOManager):
    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        try:
            raise OSError("disk full at /data/part-0.parquet")
        except OSError as e:
            raise RuntimeError("could not write the partition") from e

    def load_input(self, context: dg.InputContext) -> object:
        return None


@dg.resource
def _broken_resource(_init_context: dg.InitResourceContext) -> None:
    raise ValueError("warehouse root s3://nowhere is unreachable")


def _run(*assets, resources=None, checks=(), progress: RunProgress | None = None):
    defs = dg.Definitions(assets=list(assets), asset_checks=list(checks), resources=resources)
    job = defs.resolve_implicit_global_asset_job_def()
    run_config = None
    if progress is not None:
        job = job.with_logger_defs({"progress": progress.logger_def()})
        run_config = {"loggers": {"progress": {}}}
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=run_config
    )
    assert not result.success or progress is not None
    return result


def test_an_io_manager_error_reports_the_users_error_and_its_cause():
    @dg.asset(io_manager_key="writes")
    def prices() -> int:
        return 1

    result = _run(prices, resources={"writes": _FailingWrites()})
    [failure] = run_failures(list(result.all_events))
    assert failure.step == "prices"
    assert failure.lines == [
        "RuntimeError: could not write the partition",
        "caused by OSError: disk full at /data/part-0.parquet",
    ]
    assert "Error occurred while handling output" not in failure.text()


def test_a_failure_is_reported_by_its_description():
    @dg.asset
    def trades() -> None:
        raise dg.Failure(description="flat file x.csv.gz does not exist")

    [failure] = run_failures(list(_run(trades).all_events))
    assert failure.text() == "trades failed: flat file x.csv.gz does not exist"


def test_a_blocking_check_is_reported_with_its_description():
    @dg.asset
    def quotes() -> int:
        return 0

    @dg.asset_check(asset=quotes, blocking=True)
    def non_empty() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, description="quotes is empty for 2026-11-19")

    @dg.asset(deps=[quotes])
    def downstream() -> int:
        return 1

    [failure] = run_failures(list(_run(quotes, downstream, checks=[non_empty]).all_events))
    assert failure.lines == ["blocking check quotes:non_empty: quotes is empty for 2026-11-19"]


def test_a_resource_that_cannot_start_is_reported_with_its_message():
    @dg.asset(required_resource_keys={"store"})
    def bars() -> int:
        return 1

    failures = run_failures(list(_run(bars, resources={"store": _broken_resource}).all_events))
    assert failures
    assert any(
        "ValueError: warehouse root s3://nowhere is unreachable" in f.text() for f in failures
    )
    assert all("Error occurred while" not in f.text() for f in failures)


def test_progress_prints_a_start_and_a_timed_finish_line_per_step():
    @dg.asset
    def first(context: dg.AssetExecutionContext) -> dg.Output:
        context.log.info("reading 3 rows")
        return dg.Output(3, metadata={"rows": 3})

    @dg.asset
    def second(first: int) -> int:
        return first

    stream = io.StringIO()
    _run(first, second, progress=RunProgress(stream))
    lines = stream.getvalue().splitlines()
    text = [re.sub(r"^ +\d+\.\ds  ", "", ln) for ln in lines]
    assert text[:3] == ["first: started", "first: reading 3 rows", text[2]]
    assert re.fullmatch(r"first: done in \d+\.\d\d s \(3 rows\)", text[2])
    assert text[3] == "second: started"
    assert re.fullmatch(r"second: done in \d+\.\d\d s", text[4])
    assert all(re.match(r"^ +\d+\.\ds  ", ln) for ln in lines)
