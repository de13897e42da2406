"""Read-only and header policy for ``rayflow serve``, as one small ASGI middleware.

- Only ``GET`` and ``HEAD`` are accepted (405 with ``Allow`` otherwise): the browser
  is a viewer; nothing in the catalog or on disk changes through it.
- Every response carries a strict Content-Security-Policy (``default-src 'self'``,
  no inline script, no plugins, no framing), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer`` and ``X-Frame-Options: DENY``. The page builds its
  DOM with ``textContent`` only; the CSP is the second line of defence should a
  file name or an on-screen caption ever reach HTML by mistake.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
ALLOWED_METHODS = frozenset({"GET", "HEAD"})


class ReadOnlySecurity:
    """Refuses methods other than GET/HEAD and adds :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        if scope["method"] not in ALLOWED_METHODS:
            body = b'{"error": "read-only: only GET and HEAD are served"}'
            await send_with_headers({"type": "http.response.start", "status": 405, "headers": [
                (b"content-type", b"application/json"), (b"allow", b"GET, HEAD"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_headers)
