"""The last lines of custom logs, for diagnostics: why a deployment or a training run failed.

Shared by the readiness check (predict and access logs) and the fine-tuning run (its job run's log). Never
raises for a log it cannot read: it says so in the line instead, so one unreadable log does not hide the
others or the error being explained. `cannot` writes the one line for a call to a service that failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import oci

from oci_runtime.auth import Auth, make_client
from oci_runtime.retry import DEFAULT_BACKOFF, Backoff

# What the SDK raises when it gets no answer at all (after its own retries): its vendored requests
# exceptions, like the standard connection and timeout errors, are OSErrors.
UNREACHABLE = (OSError,)
SERVICE_FAILURES = (oci.exceptions.ServiceError, *UNREACHABLE)
"""What a call to a service raises when it failed: the service refused it, or no answer came at all."""
LOG_LINES = 20


@dataclass(frozen=True, kw_only=True)
class LogSource:
    """One log to read: `label` names it in the output; `source` keeps only one resource's records."""

    label: str
    log_id: str
    source: str | None = None  # e.g. a job run's OCID, when several runs write to the same log


def search_query(compartment_id: str, log_group_id: str, log: LogSource) -> str:
    query = f'search "{compartment_id}/{log_group_id}/{log.log_id}"'
    if log.source:
        # Logging's query language refuses `source = '<ocid>'` but matches `'*<ocid>'`.
        query += f" | where source = '*{log.source}'"
    return query + " | sort by datetime desc"


def log_tails(
    *,
    auth: Auth,
    region: str,
    compartment_id: str,
    log_group_id: str,
    logs: Sequence[LogSource],
    since: dt.datetime,
    endpoints: Mapping[str, str] | None = None,
    backoff: Backoff = DEFAULT_BACKOFF,
    limit: int = LOG_LINES,
) -> list[str]:
    """For each log, `last N lines of the <label> log <id>:` and the lines, oldest first, or why not."""

    search = make_client(
        oci.loggingsearch.LogSearchClient,
        auth,
        region=region,
        endpoint=(endpoints or {}).get("loggingsearch"),
        backoff=backoff,
    )
    lines: list[str] = []
    for log in logs:
        try:
            found = search.search_logs(
                oci.loggingsearch.models.SearchLogsDetails(
                    time_start=since,
                    time_end=dt.datetime.now(dt.UTC),
                    search_query=search_query(compartment_id, log_group_id, log),
                    is_return_field_info=False,
                ),
                limit=limit,
            ).data.results
        except oci.exceptions.ServiceError as exc:
            lines.append(f"{log.label} log {log.log_id}: not readable ({exc.status} {exc.code})")
            continue
        except UNREACHABLE as exc:
            lines.append(f"{log.label} log {log.log_id}: not readable ({reason(exc)})")
            continue
        messages = [message(result.data) for result in reversed(found or [])]
        if not messages:
            lines.append(f"{log.label} log {log.log_id}: no lines since {since:%H:%M:%S} UTC")
            continue
        lines.append(f"last {len(messages)} lines of the {log.label} log {log.log_id}:")
        lines += [f"  {text}" for text in messages]
    return lines


def reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def cannot(doing: str, service: str, exc: BaseException) -> str:
    """One line for a call in SERVICE_FAILURES: `cannot <doing>: <status> <code>: <message>` when the
    service refused it, `cannot reach <service> to <doing>: <reason>` when no answer came."""
    if isinstance(exc, oci.exceptions.ServiceError):
        return f"cannot {doing}: {exc.status} {exc.code}: {exc.message}"
    return f"cannot reach {service} to {doing}: {reason(exc)}"


def message(data: Any) -> str:
    """The text of one log record (custom logs keep it at logContent.data.message)."""
    content = data.get("logContent", {}) if isinstance(data, dict) else {}
    body = content.get("data", {}) if isinstance(content, dict) else {}
    if isinstance(body, dict) and "message" in body:
        return " ".join(str(body["message"]).split())
    return " ".join(str(body or data).split())
