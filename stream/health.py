"""One server's readiness and load for a load balancer (`GET /api/health`), and its drain on SIGTERM.

`GET /api/health` answers 200 when the server takes a new session: its models are loaded and warm, its database
answers, it is not draining and it has room (`SessionService.load`); otherwise 503. The body always says which:
`{"ready", "models", "database", "draining", "accepting", "live", "capacity", "load", "instance"}`. With
`?check=ready` the status is 200 whenever the server is ready, full or draining: what a balancer checks before
sending it the API calls that are not offers (downloads, the library, jobs), which any ready server answers.

Draining (`drain`): from SIGTERM on the server refuses offers (503 with Retry-After, so the balancer tries
another server) and reports 503 on its health; its live sessions go on until they end or the grace period runs
out (then they are ended by the server); every ended session is stored; then the process exits.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from stream.archive import SessionArchive
from stream.live import SessionRegistry
from stream.service import SessionService
from stream.store import Store

log = logging.getLogger(__name__)

DATABASE_TIMEOUT_S = 2.0  # a database slower than this to answer `SELECT 1` counts as unreachable
DRAIN_POLL_S = 0.2


@dataclass
class ServerState:
    """`ready`: models loaded and warm, the store migrated (set at the end of start-up); `draining`: since SIGTERM."""

    ready: bool = False
    draining: bool = False


class HealthApi:
    """`GET /api/health` (see the module docstring); `instance` names this process in the body."""

    def __init__(self, service: SessionService, store: Store, state: ServerState, instance: str) -> None:
        self.service = service
        self.store = store
        self.state = state
        self.instance = instance

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/health", self.health)]

    async def health(self, request: web.Request) -> web.Response:
        report = await self.report()
        ok = report["ready"] if request.query.get("check") == "ready" else report["accepting"]
        return web.json_response(report, status=200 if ok else 503, headers={"Cache-Control": "no-store"})

    async def report(self) -> dict[str, Any]:
        load = self.service.load()
        database = await self._database()
        ready = self.state.ready and database
        return {
            "ready": ready,
            "models": self.state.ready,
            "database": database,
            "draining": self.state.draining,
            "accepting": ready and not self.state.draining and load["admitting"],
            "live": load["sessions"],
            "capacity": load["capacity"],
            "load": round(load["load"], 3),
            "admission": load,
            "instance": self.instance,
        }

    async def _database(self) -> bool:
        try:
            return await asyncio.wait_for(self.store.run(self.store.ping), DATABASE_TIMEOUT_S)
        except Exception as exc:
            log.warning("health: the database does not answer: %r", exc)
            return False


async def drain(state: ServerState, registry: SessionRegistry, archive: SessionArchive, grace_s: float) -> int:
    """Stop taking sessions, let the live ones end within `grace_s` (then end them), and wait until every ended
    session is stored; how many sessions the grace period cut short."""
    state.draining = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    log.info("draining: no new sessions; %d live ones have %g s to end", len(registry.live()), grace_s)
    while (registry.live() or registry.reserved) and loop.time() < deadline:
        await asyncio.sleep(DRAIN_POLL_S)
    cut = len(registry.live())
    await registry.close_all()
    await archive.close()
    log.info("drained: %d sessions ended by the grace period, every ended session stored", cut)
    return cut
