"""Prometheus metrics of the clinic API: requests and latency by route template, audit rows.

A registry per app (created in ``create_app``), so tests and several apps in one process
never share counters and nothing is registered at import time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "egenmon_clinic_requests_total",
            "HTTP requests by route template and status class",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "egenmon_clinic_request_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            t0 = time.perf_counter()
            response = await call_next(request)
            # The route template, never the concrete path: ids must not become label values.
            # The router records its match and path parameters on the shared scope; put the
            # parameter names back in place of their values to get the template.
            if request.scope.get("route") is None:
                route = "unmatched"
            else:
                route = request.url.path
                for name, value in (request.scope.get("path_params") or {}).items():
                    route = route.replace(f"/{value}", f"/{{{name}}}", 1)
            self.requests.labels(request.method, route, f"{response.status_code // 100}xx").inc()
            self.latency.labels(request.method, route).observe(time.perf_counter() - t0)
            return response

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
