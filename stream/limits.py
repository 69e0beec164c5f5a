"""Per-client rate limits and the cross-origin rule, as one aiohttp middleware (`guard_middleware`).

The pure parts (`origin_allowed`, and `RateLimiter` in stream.rates) take the time and the request's facts as
arguments, so they are tested without a server.

* Rate limits: a token bucket per client address and per limited route (`POST /api/offer`, `POST /api/references`).
  A request over the limit gets 429 with `Retry-After` before its body is read. Every attempt counts, refused or
  not, so a client cannot probe the validation for free. The client is the connection's peer address: behind a
  reverse proxy every user shares the proxy's address (raise the limits there, or rate-limit in the proxy).
* Origins: a request whose `Origin` header is neither the server's own (same host and port as the `Host` header)
  nor in the configured list is refused with 403 when it would change something (POST and other non-GET
  methods, and CORS preflights). Requests without `Origin` (the Python client, curl) are not browsers on someone
  else's page and pass. An allowed other origin gets CORS headers, so a page hosted there can call the API.
* Host names: with a list of allowed host names, a request whose `Host` names another (403) is refused, whatever
  its method. This stops DNS rebinding: a page on evil.example whose name is made to resolve to 127.0.0.1 is
  same-origin with the server by the Origin/Host rule above, but its requests carry `Host: evil.example`.
  server.py sets the list for a server on a loopback address (`LOOPBACK_HOSTS`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from stream.rates import Rate, RateLimiter

SAFE_METHODS = frozenset({"GET", "HEAD"})
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"
CORS_MAX_AGE_S = 600
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def origin_allowed(origin: str, host: str, allowed: Collection[str]) -> bool:
    """True when `origin` (an Origin header) is the server's own (its host:port equals `host`, the Host header)
    or one of `allowed` (normalised origins, see `normalise_origin`). "null" and malformed origins are not."""
    try:
        parts = urlsplit(origin)
        netloc = parts.netloc.lower()
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not netloc or parts.path or parts.query or parts.fragment:
        return False
    return netloc == host.lower() or normalise_origin(origin) in allowed


def host_name(host: str) -> str:
    """The name of a Host header without its port, lower-case ("[::1]:8080" → "::1")."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def normalise_origin(origin: str) -> str:
    """scheme://host[:port], lower-case, no trailing slash: the form browsers send (ValueError otherwise)."""
    parts = urlsplit(origin.strip().rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise ValueError(f"an origin is scheme://host[:port], got {origin!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _refusal(cls: type[web.HTTPException], message: str, **kwargs: Any) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json", **kwargs)


def guard_middleware(
    rates: Mapping[str, Rate],
    allowed_origins: Collection[str],
    clock: Callable[[], float],
    allowed_hosts: Collection[str] | None = None,
) -> Middleware:
    """The middleware: `rates` maps "METHOD /path" of a route (its canonical path) to its per-client rate;
    `allowed_origins` are origins besides the server's own; `clock` gives seconds (monotonic); `allowed_hosts`
    the host names the server answers to (None: any)."""
    limiters = {route: RateLimiter(rate) for route, rate in rates.items()}
    allowed = frozenset(normalise_origin(o) for o in allowed_origins)
    hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if hosts is not None and host_name(request.host) not in hosts:
            raise _refusal(web.HTTPForbidden, f"this server does not answer to the host name {request.host[:100]!r}")
        origin = request.headers.get("Origin")
        cross = origin is not None and not origin_allowed(origin, request.host, ())
        if origin is not None and cross and not origin_allowed(origin, request.host, allowed):
            if request.method not in SAFE_METHODS:
                raise _refusal(web.HTTPForbidden, f"requests from {origin[:100]} are not allowed (cross-origin)")
            return await handler(request)  # no CORS headers: the browser keeps the response from that page
        if origin is not None and cross and request.method == "OPTIONS":
            return web.Response(status=204, headers=_cors_headers(origin, preflight=True))
        limiter = limiters.get(f"{request.method} {_canonical(request)}")
        if limiter is not None:
            wait = limiter.take(request.remote or "unknown", clock())
            if wait > 0:
                seconds = math.ceil(wait)
                raise _refusal(
                    web.HTTPTooManyRequests,
                    f"too many requests from your address; try again in {seconds} s",
                    headers={"Retry-After": str(seconds)},
                )
        response = await handler(request)
        if origin is not None and cross:
            response.headers.update(_cors_headers(origin, preflight=False))
        return response

    return guard


def _canonical(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def _cors_headers(origin: str, preflight: bool) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    if preflight:
        headers |= {
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
        }
    return headers


async def read_body(request: web.Request, limit: int, what: str = "the request body") -> bytes:
    """The whole body, refusing with 413 as soon as it passes `limit` bytes (whatever Content-Length says)."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(what, limit, request.content_length)
    data = bytearray()
    while chunk := await request.content.read(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise _too_large(what, limit, len(data))
    return bytes(data)


def _too_large(what: str, limit: int, size: int) -> web.HTTPException:
    message = f"{what} is larger than the {limit / 1024:g} KiB limit"
    return _refusal(web.HTTPRequestEntityTooLarge, message, max_size=limit, actual_size=size)
