"""What our code costs a stream on each image's serving path: the engine direct vs as OCI reaches it.

A loopback fake engine (its own process, async, on uvicorn as vLLM's server is) streams OpenAI chunks at a
GPU's pace (default 50 tokens/s per stream, 256-token replies). Two images, as the launcher runs them:
- `vllm/...`: the same fake engine with `serving.vllm_routes` as its middleware, in its own process (vLLM's
  `--middleware`): nothing in between;
- `tgi/...`: the adapter in its own process in front of the fake engine (TGI's Rust router takes no
  middleware), as in the TGI container.
Requests on each:
- `openai`: `POST /v1/chat/completions` (what OCI's OpenAI routing sends): vLLM's own route; the adapter
  passes it through;
- `route`: `POST /predict` with `route: /v1/chat/completions` (langchain-oci, ADS);
- `legacy`: `POST /predict` with `{"inputs", "parameters", "stream": true}`, translated to the engine's
  `/v1/completions` (vLLM, in-process) or `/generate_stream` (TGI) and back into TGI-style events.
Each runs at 1, 16 and 64 concurrent streams, paced, then unpaced (the most a path relays here), right
after a run of the same streams on the engine direct, its baseline.
The last line is one JSON object for the worst path at the highest concurrency, paced:
`{"direct_tokens_s", "ours_tokens_s", "ratio", "added_ttft_ms_p50", "concurrency", "path"}`.

    make bench-serving                      # ARGS="--tokens 256 --rate 50 --concurrency 1,16,64"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

IMAGES = ("vllm", "tgi")
REQUESTS = ("openai", "route", "legacy")
PATHS = tuple(f"{image}/{kind}" for image in IMAGES for kind in REQUESTS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the fake engine ----------------------------------------------------------------------------------


def engine_app(tokens: int, rate: float) -> Any:
    """A raw ASGI app: `/health`, and streamed `/v1/chat/completions`, `/v1/completions` and TGI's
    `/generate_stream` of `tokens` tokens, one every 1/rate s per stream (rate 0: as fast as it can)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        path = scope["path"]
        if path == "/health":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        chat = path == "/v1/chat/completions"
        tgi = path == "/generate_stream"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        started = time.monotonic()
        for index in range(tokens):
            if rate:
                delay = started + (index + 1) / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if tgi:
                last = index == tokens - 1
                event: dict[str, Any] = {
                    "index": index,
                    "token": {"id": index, "text": " tok", "logprob": 0.0, "special": False},
                    "generated_text": " tok" * tokens if last else None,
                    "details": None,
                }
            else:
                choice = {"index": 0, "delta": {"content": " tok"}} if chat else {"index": 0, "text": " tok"}
                event = {"id": "b", "object": "chunk", "created": 0, "model": "m", "choices": [choice]}
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {json.dumps(event)}\n\n".encode(),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"" if tgi else b"data: [DONE]\n\n"})

    return app


def serve_engine(port: int, tokens: int, rate: float, middleware: bool = False) -> None:
    """The fake engine on uvicorn; `middleware`: with OCI's routes in its process, as vLLM runs them."""
    import uvicorn

    from serving.vllm_routes import OciRoutes

    app = engine_app(tokens, rate)
    if middleware:
        app = OciRoutes(app, served_model="m", log=lambda line: None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def serve_adapter(port: int, engine_port: int) -> None:
    from serving.adapter import Adapter, AdapterConfig

    adapter = Adapter(
        AdapterConfig(engine="tgi", engine_url=f"http://127.0.0.1:{engine_port}", served_model="m"),
        log=lambda line: None,
    )
    server = adapter.bind("127.0.0.1", port).start()
    try:
        while True:
            time.sleep(3600)
    finally:
        server.stop()


# -- the client ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    tokens_s: float
    ttft_ms_p50: float


def request_for(path: str, port: int, tokens: int) -> tuple[str, dict[str, str], dict[str, Any]]:
    base = f"http://127.0.0.1:{port}"
    chat = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": tokens,
        "stream": True,
    }
    kind = path.split("/")[-1]
    if kind in ("direct", "openai"):
        return f"{base}/v1/chat/completions", {}, chat
    if kind == "route":
        return f"{base}/predict", {"route": "/v1/chat/completions", "enable-streaming": "true"}, chat
    legacy = {"inputs": "hi", "parameters": {"max_new_tokens": tokens}, "stream": True}
    return f"{base}/predict", {}, legacy


async def one_stream(
    client: Any, url: str, headers: dict[str, str], body: dict[str, Any], mark: bytes
) -> tuple[int, float]:
    """(tokens received, seconds to the first one). Counting bytes, not parsing lines: the client must not
    be what limits the run."""
    started = time.monotonic()
    first = 0.0
    count = 0
    async with client.stream("POST", url, headers=headers, json=body) as response:
        response.raise_for_status()
        tail = b""
        async for chunk in response.aiter_raw():
            window = tail + chunk  # a mark may straddle two chunks
            found = window.count(mark)
            if found and not count:
                first = time.monotonic() - started
            count += found
            tail = window[-(len(mark) - 1) :] if not window.endswith(mark) else b""
    return count, first


async def run_streams(path: str, port: int, tokens: int, concurrency: int) -> Result:
    import httpx

    url, headers, body = request_for(path, port, tokens)
    # one mark per token event: OpenAI's delta, or the legacy event's token (its last event holds the
    # whole text under another key)
    mark = b'"text": " tok"' if path.endswith("legacy") else b'"content": " tok"'
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        # Warm every connection the run will use, the client's and the adapter's to the engine alike, as
        # they are in a deployment that has been serving: the run measures streams, not TCP handshakes.
        await asyncio.gather(*(one_stream(client, url, headers, body, mark) for _ in range(concurrency)))
        started = time.monotonic()
        done = await asyncio.gather(
            *(one_stream(client, url, headers, body, mark) for _ in range(concurrency))
        )
        wall = time.monotonic() - started
    total = sum(count for count, _ in done)
    if total != tokens * concurrency:
        raise RuntimeError(f"{path}: {total} tokens arrived of {tokens * concurrency}")
    return Result(total / wall, statistics.median(ttft for _, ttft in done) * 1000)


def measure(
    tokens: int, rate: float, concurrencies: list[int]
) -> dict[tuple[str, int], tuple[Result, Result]]:
    """(direct, ours) for each path and concurrency; the direct run goes just before its path's, so that
    both see the same background load on a shared machine."""
    context = multiprocessing.get_context("spawn")
    engine_port, vllm_port, adapter_port = free_port(), free_port(), free_port()
    processes = [
        context.Process(target=serve_engine, args=(engine_port, tokens, rate), daemon=True),
        context.Process(target=serve_engine, args=(vllm_port, tokens, rate, True), daemon=True),
        context.Process(target=serve_adapter, args=(adapter_port, engine_port), daemon=True),
    ]
    ports = {"vllm": vllm_port, "tgi": adapter_port}
    for process in processes:
        process.start()
    try:
        for port in (engine_port, vllm_port, adapter_port):
            wait_for(port)
        results: dict[tuple[str, int], tuple[Result, Result]] = {}
        for concurrency in concurrencies:
            for path in PATHS:
                port = ports[path.split("/")[0]]
                direct = asyncio.run(run_streams("direct", engine_port, tokens, concurrency))
                results[path, concurrency] = (
                    direct,
                    asyncio.run(run_streams(path, port, tokens, concurrency)),
                )
        return results
    finally:
        for process in reversed(processes):
            process.terminate()
            process.join(5)


def wait_for(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout_s:g} s")


def report(
    title: str, results: dict[tuple[str, int], tuple[Result, Result]], concurrencies: list[int]
) -> None:
    print(title)
    print(
        f"  {'path':<13}{'streams':>8}{'direct tok/s':>14}{'ours tok/s':>12}{'ratio':>8}"
        f"{'added TTFT p50':>16}"
    )
    for concurrency in concurrencies:
        for path in PATHS:
            direct, ours = results[path, concurrency]
            print(
                f"  {path:<13}{concurrency:>8}{direct.tokens_s:>14.0f}{ours.tokens_s:>12.0f}"
                f"{ours.tokens_s / direct.tokens_s:>8.2f}{ours.ttft_ms_p50 - direct.ttft_ms_p50:>13.1f} ms"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=256, help="tokens per reply (256)")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per stream, paced (50)")
    parser.add_argument("--concurrency", default="1,16,64", help="concurrent streams, comma-separated")
    parser.add_argument("--unpaced-tokens", type=int, default=512, help="tokens per unpaced reply (512)")
    args = parser.parse_args(argv)
    concurrencies = [int(part) for part in args.concurrency.split(",")]
    # Four processes (client, engine, engine with the middleware, adapter) share this machine's CPUs, one
    # busy at a time: other load skews every figure.
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the start")

    unpaced = measure(args.unpaced_tokens, 0.0, concurrencies)
    report(
        f"unpaced ({args.unpaced_tokens} tokens a stream, as fast as the path relays):",
        unpaced,
        concurrencies,
    )
    paced = measure(args.tokens, args.rate, concurrencies)
    report(f"paced ({args.tokens} tokens at {args.rate:g} tokens/s a stream):", paced, concurrencies)

    top = max(concurrencies)
    worst = min(PATHS, key=lambda path: paced[path, top][1].tokens_s / paced[path, top][0].tokens_s)
    direct, ours = paced[worst, top]
    print(
        json.dumps(
            {
                "direct_tokens_s": round(direct.tokens_s, 1),
                "ours_tokens_s": round(ours.tokens_s, 1),
                "ratio": round(ours.tokens_s / direct.tokens_s, 3),
                "added_ttft_ms_p50": round(ours.ttft_ms_p50 - direct.ttft_ms_p50, 2),
                "concurrency": top,
                "path": worst,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
