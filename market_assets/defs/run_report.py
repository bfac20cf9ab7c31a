# Copyright (c) James Kassemi, SC, US. All rights reserved.
"""What a run did, for a terminal: live per-step progress and the causes of failures.

``RunProgress.logger_def()`` is a Dagster logger that prints one line when a step starts,
one when it finishes (with its elapsed time, the rows written or the check's verdict), and
the steps' own INFO+ messages. ``run_failures`` turns a finished run's failure events into
short messages carrying the root cause instead of Dagster's wrappers ("Error occurred while
handling output ...").
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import dagster as dg
from dagster._core.events import DagsterEvent
from dagster._utils.error import SerializableErrorInfo

# Error classes that only wrap the user's exception (its cause) with Dagster's context.
_WRAPPER = re.compile(r"^Dagster\w*Error$")
# Errors that mean a flat file is missing (not yet published, or not in the mirror).
NOT_PUBLISHED_ERRORS = frozenset({"FileNotPublished"})
_MAX_LINES = 12
# Dagster's message for a step left out because an upstream step failed.
_NOT_EXECUTED = re.compile(r"^Dependencies for step \S+ (failed|were not executed)")


def _body(err: SerializableErrorInfo) -> str:
    """The error's message without the ``module.Class: `` prefix Python's traceback adds."""
    text = (err.message or "").strip()
    cls = err.cls_name or ""
    m = re.match(rf"^(?:[\w.]+\.)?{re.escape(cls)}: ?", text) if cls else None
    return text[m.end() :] if m else text


def _describe(err: SerializableErrorInfo) -> str:
    """``Class: message`` (just the description for a dg.Failure)."""
    body, cls = _body(err), err.cls_name or ""
    if cls == "Failure" or not cls:
        return body or cls
    return f"{cls}: {body}" if body else cls


def _chain(
    err: SerializableErrorInfo | None, how: str = ""
) -> Iterator[tuple[str, SerializableErrorInfo]]:
    """``err`` then its causes and the errors it was raised while handling, depth first."""
    if err is None:
        return
    yield how, err
    yield from _chain(err.cause, "caused by")
    yield from _chain(err.context, "while handling")


def error_lines(err: SerializableErrorInfo) -> list[str]:
    """The user's error and its causes, one entry each, Dagster's wrappers left out.

    The first entry is the outermost error raised by project code (the one written for
    users); the others are its causes down to the root, each prefixed ``caused by`` or
    ``while handling``, duplicates dropped.
    """
    links = [(how, e) for how, e in _chain(err) if not _is_wrapper(e)]
    if not links:  # nothing but wrappers: say what Dagster said
        links = [("", err)]
    out: list[str] = []
    for i, (how, e) in enumerate(links):
        body = _body(e)
        if out and body and any(body in prev for prev in out):
            continue
        text = _describe(e)
        out.append(text if i == 0 or not how else f"{how} {text}")
    return out


def _is_wrapper(err: SerializableErrorInfo) -> bool:
    return bool(_WRAPPER.match(err.cls_name or "")) and (err.cause or err.context) is not None


def chain_classes(err: SerializableErrorInfo | None) -> set[str]:
    """Class names of every error in ``err``'s chain."""
    return {e.cls_name or "" for _, e in _chain(err)}


@dataclass
class StepFailure:
    """A failed step (or the run itself when ``step`` is None) and why."""

    step: str | None
    lines: list[str]
    error: SerializableErrorInfo | None = None

    @property
    def not_published(self) -> bool:
        """The step failed because a source flat file does not exist."""
        return bool(chain_classes(self.error) & NOT_PUBLISHED_ERRORS)

    @property
    def interrupted(self) -> bool:
        """The step was stopped by Ctrl-C / SIGINT rather than failing."""
        return "DagsterExecutionInterruptedError" in chain_classes(self.error)

    def text(self, traceback: bool = False) -> str:
        """A headline plus indented cause lines (the full traceback when asked)."""
        head = f"{self.step} failed: " if self.step else "run failed: "
        lines = [head + self.lines[0]] + [f"  {ln}" for ln in self.lines[1:]]
        body = "\n".join(lines)
        extra = body.count("\n") + 1 - _MAX_LINES
        if extra > 0 and not traceback:
            body = "\n".join(body.splitlines()[:_MAX_LINES]) + f"\n  ... {extra} more lines"
        if traceback and self.error is not None:
            body += "\n" + self.error.to_string().rstrip()
        return body


def _failed_checks(events: Iterable[DagsterEvent], step: str) -> list[str]:
    out = []
    for ev in events:
        if ev.step_key == step and ev.event_type_value == "ASSET_CHECK_EVALUATION":
            e = ev.event_specific_data
            if not e.passed and getattr(e, "blocking", True) is not False:
                out.append(f"blocking check {_check_name(e)}: {_check_reason(e)}")
    return out


def _check_name(e: Any) -> str:
    return f"{e.asset_key.to_user_string()}:{e.check_name}"


def _check_reason(e: Any) -> str:
    if getattr(e, "description", None):
        return e.description
    shown = {k: getattr(v, "value", v) for k, v in (e.metadata or {}).items()}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "no details"


def run_failures(events: list[DagsterEvent]) -> list[StepFailure]:
    """Why a finished run failed, from its events: one entry per failed step, or the run's
    own error when no step failed (e.g. a resource that could not start)."""
    out = []
    for ev in events:
        if ev.event_type_value != "STEP_FAILURE":
            continue
        data = ev.step_failure_data
        err = data.error
        checks = _failed_checks(events, ev.step_key)
        user = data.user_failure_data
        if checks and err is not None and err.cls_name == "DagsterAssetCheckFailedError":
            lines = checks
        elif err is not None:
            lines = error_lines(err)
        else:
            lines = [user.description if user and user.description else "no error recorded"]
        out.append(StepFailure(ev.step_key, lines, err))
    if out:
        return out
    for ev in events:
        data = ev.event_specific_data
        err = getattr(data, "error", None)
        if ev.event_type_value in ("PIPELINE_FAILURE", "ENGINE_EVENT") and err is not None:
            out.append(StepFailure(None, error_lines(err), err))
    return out


@dataclass
class _Step:
    started: float
    rows: int | None = None
    checks: list[str] = field(default_factory=list)


class RunProgress:
    """Prints a run's progress as it happens: ``  12.3s  step: text`` lines on ``stream``
    (default: the current ``sys.stderr``)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._t0 = time.monotonic()
        self._steps: dict[str, _Step] = {}

    def line(self, who: str, text: str) -> None:
        stream = self._stream or sys.stderr
        prefix = f"{time.monotonic() - self._t0:7.1f}s  {who}: "
        text = text.rstrip().replace("\n", "\n" + " " * len(prefix))
        print(prefix + text, file=stream, flush=True)

    def handle(self, record: logging.LogRecord) -> None:
        """One record from Dagster's log manager (a Dagster event or a step's message)."""
        meta = getattr(record, "dagster_meta", None) or {}
        step = meta.get("step_key")
        event: DagsterEvent | None = meta.get("dagster_event")
        if event is None:
            if record.levelno >= logging.INFO:
                text = str(meta.get("orig_message", record.getMessage()))
                if step and _NOT_EXECUTED.match(text):
                    text = "not run: an upstream step failed or was not run"
                self.line(step or "run", text)
            return
        self._event(event, step or event.step_key)

    def _event(self, event: DagsterEvent, step: str | None) -> None:
        kind = event.event_type_value
        now = time.monotonic()
        if step is None:
            return
        if kind == "STEP_START":
            self._steps[step] = _Step(now)
            self.line(step, "started")
            return
        st = self._steps.setdefault(step, _Step(now))
        if kind == "ASSET_MATERIALIZATION":
            rows = event.event_specific_data.materialization.metadata.get("rows")
            if rows is not None:
                st.rows = (st.rows or 0) + int(getattr(rows, "value", rows))
        elif kind == "ASSET_CHECK_EVALUATION":
            e = event.event_specific_data
            if e.passed:
                st.checks.append(f"check {e.check_name} passed")
            else:
                sev = getattr(e.severity, "value", e.severity)
                st.checks.append(f"check {e.check_name} FAILED ({sev})")
                self.line(step, f"check {_check_name(e)} failed ({sev}): {_check_reason(e)}")
        elif kind == "STEP_SUCCESS":
            secs = event.event_specific_data.duration_ms / 1000
            what = ([f"{st.rows:,} rows"] if st.rows is not None else []) + st.checks
            self.line(step, f"done in {secs:.2f} s" + (f" ({', '.join(what)})" if what else ""))
        elif kind == "STEP_FAILURE":
            self.line(step, f"FAILED after {now - st.started:.2f} s (cause below)")
        elif kind == "STEP_UP_FOR_RETRY":
            self.line(step, f"failed after {now - st.started:.2f} s; retrying")
        elif kind == "STEP_SKIPPED":
            self.line(step, "skipped")

    def logger_def(self) -> dg.LoggerDefinition:
        """A Dagster logger feeding this printer (configure it as ``loggers: {name: {}}``)."""
        progress = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                try:
                    progress.handle(record)
                except Exception:  # a display problem must never fail the run
                    self.handleError(record)

        @dg.logger(description="Per-step progress lines for the market-assets CLI.")
        def _progress_logger(_init_context: dg.InitLoggerContext) -> logging.Logger:
            logger = logging.Logger("market_assets.run_progress", logging.DEBUG)
            logger.addHandler(_Handler(logging.DEBUG))
            return logger

        return _progress_logger
