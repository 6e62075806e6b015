"""A benchmark-only token source that speaks the worker's streaming API.

It streams synthetic tokens at a fixed interval and loads no model, so the relay can be
measured without llama.cpp using the CPU. rbee never starts it; only the benchmarks do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def build_app(interval_seconds: float) -> Starlette:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ready", "in_flight": 0})

    async def completions(request: Request) -> Response:
        body = await request.json()
        count = int(body.get("max_tokens", 16))
        return StreamingResponse(stream(count, body.get("model", "synthetic")),
                                 media_type="text/event-stream")

    async def stream(count: int, model: str) -> AsyncIterator[str]:
        base = {"id": "cmpl-synthetic", "object": "text_completion", "created": int(time.time()),
                "model": model}
        for index in range(count):
            chunk = {**base, "choices": [{"text": f" t{index}", "index": 0, "logprobs": None,
                                          "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
            if interval_seconds:
                await asyncio.sleep(interval_seconds)
        final = {**base, "choices": [{"text": "", "index": 0, "logprobs": None,
                                      "finish_reason": "length"}]}
        usage = {**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": count,
                                                  "total_tokens": count + 1}}
        yield f"data: {json.dumps(final)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n"

    return Starlette(routes=[Route("/health", health), Route("/v1/completions", completions,
                                                              methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark-only synthetic token source.")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1.")
    parser.add_argument("--interval-ms", type=float, default=10.0,
                        help="Milliseconds between tokens of one stream (0: no pause).")
    args = parser.parse_args()
    app = build_app(args.interval_ms / 1000)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
