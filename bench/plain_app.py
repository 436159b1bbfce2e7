"""The baseline of ``bench.bench_api``: a plain FastAPI app answering a small JSON.

Served the same way as HealthOS (one uvicorn worker, same uvicorn options), so the
ratio of a HealthOS route's throughput to ``GET /plain``'s measures what HealthOS
adds on top of FastAPI itself. Run with::

    uvicorn bench.plain_app:app --port 8001
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel


class Answer(BaseModel):
    """The plain endpoint's answer (the size of ``/health``'s)."""

    status: str
    version: str


app = FastAPI(title="plain")


@app.get("/plain", response_model=Answer)
async def plain() -> Answer:
    """Return a small constant JSON document (``async``: no threadpool hop, FastAPI's best case)."""
    return Answer(status="ok", version="0.1.0")
