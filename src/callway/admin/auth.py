"""The admin API's bearer token: where it comes from and how requests prove it.

A token set in ``callway.toml`` (``[admin] token``) is used as is.  Without
one, a random token is made at every start and written to
``STATE_DIR/admin.token`` (mode 0600, readable by the operator who runs the
node), so scripts read it from there: ``curl -H "Authorization: Bearer
$(cat STATE_DIR/admin.token)" ...``.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

log = logging.getLogger("callway.admin")

TOKEN_FILE = "admin.token"
#: Routes anyone may read: liveness, the API description and the (data-free) page.
PUBLIC_PATHS = frozenset({"/", "/api/v1/health", "/openapi.json"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ensure_token(configured: str, state_dir: Path) -> str:
    """The configured token, or a fresh one written to ``state_dir/admin.token``."""
    if configured:
        return configured
    token = secrets.token_urlsafe(32)
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file may have been created with wider rights
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    log.info("admin token written to %s", path)
    return token


def presented_token(request: web.Request) -> str | None:
    """``Authorization: Bearer T``, or ``?token=T`` (browsers cannot set WebSocket headers)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("token") or None


def token_middleware(token: str) -> Middleware:
    """An aiohttp middleware answering 401 to any non-public request without the token."""
    expected = token.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS:
            given = presented_token(request)
            if given is None or not hmac.compare_digest(given.encode(), expected):
                return web.json_response(
                    {"error": "unauthorized", "detail": "Authorization: Bearer TOKEN required"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="callway"'},
                )
        return await handler(request)

    return check
