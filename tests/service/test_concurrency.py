"""Many clients at once: a short, bounded load with no errors and consistent answers."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.service.conftest import LiveServer
from tests.service.model_factory import sample_requests

CLIENTS = 32
REQUESTS_PER_CLIENT = 25


def test_concurrent_clients_get_correct_answers(server: LiveServer) -> None:
    # given the answers each body gets on its own
    bodies = sample_requests(50, seed=31)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        expected = [client.post("/predict", json=b).json()["probability"] for b in bodies]

    async def one_client(http: httpx.AsyncClient, offset: int) -> list[tuple[int, float, int]]:
        seen = []
        for i in range(REQUESTS_PER_CLIENT):
            index = (offset + i) % len(bodies)
            if i % 10 == 9:  # a small batch now and then, and the health checks
                response = await http.post("/predict/batch", json={"rows": bodies[:20]})
                assert response.status_code == 200, response.text
                await http.get("/readyz")
                continue
            response = await http.post("/predict", json=bodies[index])
            seen.append((response.status_code, response.json()["probability"], index))
        return seen

    async def load() -> list[tuple[int, float, int]]:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10, limits=limits) as http:
            results = await asyncio.gather(*(one_client(http, k) for k in range(CLIENTS)))
        return [item for result in results for item in result]

    # when 32 clients send 800 requests at once
    started = time.monotonic()
    seen = asyncio.run(asyncio.wait_for(load(), timeout=60))
    elapsed = time.monotonic() - started
    # then every request succeeded with the answer its body gets alone
    assert all(status == 200 for status, _, _ in seen), {s for s, _, _ in seen}
    wrong = [(i, p) for _, p, i in seen if abs(p - expected[i]) > 1e-12]
    assert not wrong, f"{len(wrong)} answers differ from the sequential ones"
    assert elapsed < 60, f"load took {elapsed:.1f} s"


def test_a_big_batch_does_not_stall_other_requests(server: LiveServer) -> None:
    # given a maximum-size batch in flight
    rows = sample_requests(10_000, seed=32)

    async def run() -> tuple[int, list[int]]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            batch = asyncio.create_task(http.post("/predict/batch", json={"rows": rows}))
            # when health checks arrive meanwhile
            checks = [(await http.get("/healthz")).status_code for _ in range(20)]
            return (await batch).status_code, checks

    batch_status, checks = asyncio.run(asyncio.wait_for(run(), timeout=60))
    # then both are answered
    assert batch_status == 200
    assert checks == [200] * 20
