"""Fake Logging Search: `SearchLogs` over lines a test puts in custom logs.

    fake.service(LoggingSearch).add_lines(log_id, ["torch.cuda.OutOfMemoryError: CUDA out of memory"])

Understands the query the project sends, `search "<compartment>/<log group>/<log>" | sort by datetime desc`
(several sources separated by commas; `desc` or the default ascending order), the time window of the
request and the `limit` query parameter. Records look like custom logs' (`logContent.data.message`).
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tests.fakeoci.core import HttpError, Request, Response, Service, json_response, route

_SOURCE = re.compile(r'"([^"]+)"')


@dataclass(frozen=True)
class LogLine:
    at: float
    message: str


class LoggingSearch(Service):
    name = "loggingsearch"
    prefix = "/20190909"

    def __init__(self, fake: Any) -> None:
        super().__init__(fake)
        self.logs: dict[str, list[LogLine]] = {}
        self.queries: list[str] = []

    def add_lines(self, log_id: str, messages: list[str], *, at: float | None = None) -> None:
        """Lines written now (or at `at`, epoch seconds), a millisecond apart, in this order."""
        start = time.time() if at is None else at
        with self.lock:
            lines = self.logs.setdefault(log_id, [])
            lines += [LogLine(start + i / 1000, message) for i, message in enumerate(messages)]

    @route("POST", "/search", op="SearchLogs")
    def search(self, req: Request) -> Response:
        body = req.json() or {}
        query = body.get("searchQuery")
        if not isinstance(query, str) or not query.startswith("search "):
            raise HttpError(400, "InvalidParameter", 'searchQuery must start with: search "<source>"')
        try:
            start = _epoch(body["timeStart"])
            end = _epoch(body["timeEnd"])
        except (KeyError, ValueError) as exc:
            raise HttpError(
                400, "InvalidParameter", f"timeStart and timeEnd must be RFC 3339: {exc}"
            ) from exc
        self.queries.append(query)
        head = query.split("|", 1)[0]
        log_ids = [source.rsplit("/", 1)[-1] for source in _SOURCE.findall(head)]
        with self.lock:
            found = [
                (log_id, line)
                for log_id in log_ids
                for line in self.logs.get(log_id, [])
                if start <= line.at <= end
            ]
        found.sort(key=lambda item: item[1].at, reverse="sort by datetime desc" in query)
        found = found[: int(req.query.get("limit") or 100)]
        results = [{"data": _record(log_id, line)} for log_id, line in found]
        return json_response(
            200, {"results": results, "summary": {"resultCount": len(results), "fieldCount": 0}}
        )


def _epoch(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _record(log_id: str, line: LogLine) -> dict[str, Any]:
    stamp = dt.datetime.fromtimestamp(line.at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "datetime": int(line.at * 1000),
        "logContent": {
            "id": uuid.uuid4().hex,
            "time": stamp,
            "oracle": {"logid": log_id},
            "source": "model-deployment",
            "type": "com.oraclecloud.datascience.modeldeployment.custom",
            "data": {"message": line.message},
        },
    }
