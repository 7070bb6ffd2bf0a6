"""A worker process runs several jobs at once on its event loop
(worker.runner): at most WORKER_JOBS_PER_PROCESS, a claim waits for a free
place, a claim that finds nothing frees its place at once, the caller's
context (log fields, the message's trace span) reaches the job, and a
shutdown lets running jobs end. In a process of its own, as a Celery child."""

from __future__ import annotations

import json

from tests.integration.conftest import python_output

SCENARIO = """
import asyncio, json
from core import logging as log_context
from worker.runner import run, start_in_background, stop

events = []

def take(n):
    async def claim():
        events.append(f"claim {n} {log_context.request_id.get()}")
        return None if n == 0 else n

    async def work(m):
        await asyncio.sleep(0.3)
        events.append(f"end {m}")

    async def go(maker):
        return await start_in_background(claim, work)

    log_context.request_id.set(f"r{n}")
    return run(go)

results = [take(n) for n in (1, 0, 2, 3)]
stop()
print(json.dumps({"results": results, "events": events}))
"""


async def test_a_process_runs_its_jobs_at_once_up_to_its_places_and_drains_them() -> None:
    out = json.loads(await python_output(SCENARIO, WORKER_JOBS_PER_PROCESS="2"))
    events: list[str] = out["events"]
    # The claim that found nothing returned None, and freed its place: job
    # 2 was claimed beside job 1 without waiting for it.
    assert out["results"] == [1, None, 2, 3]
    assert events[:3] == ["claim 1 r1", "claim 0 r0", "claim 2 r2"]
    # Two places: job 3's claim waited for job 1 or 2 to end.
    ended = min(events.index("end 1"), events.index("end 2"))
    assert events.index("claim 3 r3") > ended
    # The shutdown waited for job 3, still running when it began.
    assert events[-1] == "end 3"
