"""The middleware every request passes: the token, JSON errors, headers that keep the page
to itself, and no location of the store in what the page shows."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from oiradar.errors import NoDataError, OiradarError
from oiradar.web.params import BadRequest

log = logging.getLogger("oiradar.web.app")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TOKEN_COOKIE = "oiradar_token"


def _authorized(request: web.Request, token: str) -> bool:
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    given = given or request.cookies.get(TOKEN_COOKIE, "") or request.query.get("token", "")
    return hmac.compare_digest(given.encode(), token.encode())


def public(message: str, hidden: Sequence[str]) -> str:
    """An error as the page may show it: the store's location reads "the store" (serve.md
    promises no paths; the CLI's messages name the file, which helps on a terminal)."""
    for text in sorted(set(hidden), key=len, reverse=True):
        message = message.replace(text, "the store")
    return message


def make_guard(token: str | None, hidden: Sequence[str]) -> Middleware:
    """The middleware for a dashboard with this token (None: open) whose error messages must
    not show the strings `hidden` (the store's spellings)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None and not _authorized(request, token):
            return web.json_response(
                {"error": "a token is required: ?token=... or Authorization: Bearer ..."},
                status=401,
            )
        if token is not None and "token" in request.query and request.path == "/":
            # Keep the token in a cookie and out of the address bar and the history.
            redirect = web.Response(status=302, headers={"Location": "/"})
            redirect.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
            return redirect
        try:
            resp = await handler(request)
        except BadRequest as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except NoDataError as exc:
            return web.json_response({"error": public(str(exc), hidden)}, status=404)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return web.json_response({"error": exc.reason}, status=exc.status)
            raise
        except OiradarError as exc:
            return web.json_response({"error": public(str(exc), hidden)}, status=400)
        except Exception:
            log.exception("event=request_failed path=%s", request.path)
            return web.json_response({"error": "internal error (see the server log)"}, status=500)
        return resp

    return guard


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
        "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
    ),
}


async def security_headers(request: web.Request, resp: web.StreamResponse) -> None:
    """On every reply as it is prepared (`on_response_prepare`): errors, the 401 and the
    event stream too, which a middleware never sees again once it has started sending."""
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
