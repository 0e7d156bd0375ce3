"""A local aiohttp server that plays the National Weather Service API.

It serves the project's own small fixtures (tests/fixtures/nws) and, when the
shared folder of real recorded answers exists, those too: read at run time,
never copied. Links inside bodies are rewritten from api.weather.gov to this
server, as the real API links to itself.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

TESTS = Path(__file__).parent.parent
OWN_FIXTURES = TESTS / "fixtures" / "nws"
SHARED_FIXTURES = Path(
    os.environ.get("SKYWARDEN_SHARED_FIXTURES", TESTS.parent.parent / "shared" / "fixtures" / "weather")
)
REAL_BASE = "https://api.weather.gov"
GEO_JSON = "application/geo+json"
PROBLEM = "application/problem+json"


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = GEO_JSON
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer: for timeout tests


def own_routes() -> dict[str, Answer]:
    def load(name: str, status: int = 200, ctype: str = GEO_JSON, cache: str = "public, max-age=300") -> Answer:
        return Answer(status, (OWN_FIXTURES / name).read_bytes(), ctype, {"Cache-Control": cache})

    return {
        "/points/39.7456,-97.0892": load("points_39.7456,-97.0892.json"),
        "/gridpoints/TOP/32,81/forecast": load("forecast_TOP_32_81.json"),
        "/alerts/active/area/KS": load("alerts_active_area_KS.json", cache="public, max-age=30"),
        "/alerts/active/area/VT": load("alerts_active_area_VT.json", cache="no-cache"),
        "/points/51.5074,-0.1278": load("error_points_51.5074,-0.1278.json", 404, PROBLEM, cache="no-store"),
    }


SHARED_FILES = {
    "/points/33.8,-117.882": ("nws_points_33.8,-117.882.json", 200, GEO_JSON),
    "/gridpoints/SGX/38,66/forecast": ("nws_forecast_SGX_38_66.json", 200, GEO_JSON),
    "/alerts/active/area/TX": ("nws_alerts_active_area_TX.json", 200, GEO_JSON),
    "/alerts/active/area/MD": ("nws_alerts_active_area_MD_keepalive_test.json", 200, GEO_JSON),
    "/alerts/active/area/TN": ("nws_alerts_active_point_empty_36.1806849,-87.798023.json", 200, GEO_JSON),
    "/points/25.048,-77.3554": ("nws_error_points_outside_us_25.048,-77.3554.json", 404, PROBLEM),
}


def shared_available() -> bool:
    return SHARED_FIXTURES.is_dir()


def shared_routes() -> dict[str, Answer]:
    if not shared_available():
        return {}
    return {
        path: Answer(status, (SHARED_FIXTURES / name).read_bytes(), ctype)
        for path, (name, status, ctype) in SHARED_FILES.items()
    }


class FakeNWS:
    def __init__(self) -> None:
        self.routes: dict[str, Answer] = {**own_routes(), **shared_routes()}
        self.requests: list[web.Request] = []
        self.url = ""
        self.hook = None  # optional coroutine function awaited before answering
        self._never = asyncio.Event()

    def set(self, path: str, answer: Answer) -> None:
        self.routes[path] = answer

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        if self.hook is not None:
            await self.hook(request)
        answer = self.routes.get(request.path)
        if answer is None:
            body = (
                b'{"title":"Not Found","type":"https://api.weather.gov/problems/NotFound","status":404,'
                b'"detail":"no fixture for this path"}'
            )
            return web.Response(status=404, body=body, content_type=PROBLEM)
        if answer.hang:
            await self._never.wait()
        body = answer.body.replace(REAL_BASE.encode(), self.url.encode())
        return web.Response(status=answer.status, body=body, content_type=answer.content_type, headers=answer.headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        return app
