"""The only module that touches uvicorn's private code, and why.

uvicorn has no public setting for what ``timed_protocol`` adds (checked on 0.55.0):
``timeout_keep_alive`` bounds only the idle gap after an answer, so a connection that
never sends a request, or trickles its headers a byte at a time, is held open for ever;
and ``limit_concurrency`` answers a 503 only after a connection has been taken on, with
no limit per client address. So the server runs a subclass of uvicorn's h11 protocol
(``uvicorn.protocols.http.h11_impl.H11Protocol``, handed to ``uvicorn.Config(http=...)``)
that relies on these members of it, none of them public API:

- the ``asyncio.Protocol`` methods it extends (``connection_made``, ``data_received``,
  ``eof_received``, ``pause_writing``, ``resume_writing``, ``connection_lost``) and
  ``handle_events`` and ``on_response_complete``, which it calls after uvicorn's own;
- the attributes ``loop``, ``transport`` and ``cycle`` (the request being answered), and
  the cycle's ``response_complete``.

``h11_protocol_class`` checks the installed uvicorn against ``UVICORN_CHECKED`` and those
members before the subclass is made, and refuses with one line otherwise: without them
the server would lose its header deadline and connection limits silently (or fail on
its first connection). ``pyproject.toml`` pins the same range; widen both only after
reading the new release's ``h11_impl.py``. Nothing here imports uvicorn until called.
"""

from __future__ import annotations

import json

from lstmkit import keras_internals
from lstmkit.errors import UserError

# The members listed above are the same in uvicorn 0.30.0 and 0.55.0 (h11_impl.py compared);
# the server was run on 0.55.0.
UVICORN_CHECKED = ">=0.30,<0.56"
PROTOCOL_METHODS = ("connection_made", "data_received", "eof_received", "pause_writing", "resume_writing",
                    "connection_lost", "handle_events", "on_response_complete")
# Set on the instance, so looked for among the names the methods that set them use.
PROTOCOL_ATTRIBUTES = {"__init__": ("loop", "cycle"), "connection_made": ("transport",)}
CYCLE_ATTRIBUTES = {"__init__": ("response_complete",)}


def _missing(cls, methods: tuple, attributes: dict) -> list[str]:
    missing = [f"{cls.__name__}.{name}" for name in methods if not callable(getattr(cls, name, None))]
    for method, names in attributes.items():
        code = getattr(getattr(cls, method, None), "__code__", None)
        missing += [f"{cls.__name__}().{name}" for name in names if code is None or name not in code.co_names]
    return missing


def h11_protocol_class():
    """uvicorn's ``H11Protocol``, once the installed uvicorn is one ``timed_protocol`` was
    written for; a ``UserError`` naming what differs otherwise."""
    fix = f"install 'uvicorn{UVICORN_CHECKED}'"
    version = keras_internals.unchecked_version("uvicorn", UVICORN_CHECKED)
    if version is not None:
        raise UserError(f"serve's header deadline and connection limits extend uvicorn's h11 protocol, written "
                        f"for uvicorn{UVICORN_CHECKED}, but uvicorn {version} is installed; {fix}")
    try:
        from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
    except ImportError as error:  # h11 missing, or the module moved
        raise UserError(f"serve needs uvicorn's h11 protocol, which does not import ({error}); {fix} "
                        "with h11") from None
    missing = (_missing(H11Protocol, PROTOCOL_METHODS, PROTOCOL_ATTRIBUTES)
               + _missing(RequestResponseCycle, (), CYCLE_ATTRIBUTES))
    if missing:
        raise UserError(f"serve's header deadline and connection limits need {', '.join(missing)} of uvicorn's "
                        f"h11 protocol, which the installed uvicorn lacks; {fix}")
    return H11Protocol


def refusal(status: int, message: str) -> bytes:
    """A whole HTTP answer that closes its connection."""
    body = json.dumps({"error": message}).encode()
    reason = {429: b"Too Many Requests", 503: b"Service Unavailable"}[status]
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (status, reason, len(body)) + body)


def timed_protocol(request_timeout_s: float, limits=None):
    """uvicorn's h11 protocol with a deadline for each request's headers, and the
    connection ``limits`` (a ``lstmkit.serving.app.ConnectionLimits``).

    uvicorn times out only the idle gap after an answer (``timeout_keep_alive``): a
    connection that never sends a request, or trickles its headers a byte at a time,
    would be held open for ever (200 such connections held a server). Here the clock
    starts when the connection opens and again after each answer, and the connection
    is closed if a request's headers are not all in by ``request_timeout_s``."""
    H11Protocol = h11_protocol_class()

    class TimedH11Protocol(H11Protocol):
        header_deadline = None
        refused = False
        held = False
        refusal = None
        client_host = None

        def _arm(self) -> None:
            self._disarm()
            self.header_deadline = self.loop.call_later(request_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self.header_deadline is not None:
                self.header_deadline.cancel()
                self.header_deadline = None

        def _headers_too_slow(self) -> None:
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self.transport.close()

        def connection_made(self, transport) -> None:
            if limits is not None:
                peer = transport.get_extra_info("peername")
                host = str(peer[0]) if peer else ""
                refused = limits.admit(host)
                if refused is not None:
                    self._refuse(transport, *refused)
                    return
                self.client_host = host
            super().connection_made(transport)
            self._arm()

        def _refuse(self, transport, status: int, message: str) -> None:
            # Not handed to uvicorn at all: it is not among its connections.
            self.refused, self.transport, self.refusal = True, transport, refusal(status, message)
            if limits.held < limits.MOST_HELD:
                limits.held += 1
                self.held = True
                self.header_deadline = self.loop.call_later(request_timeout_s, self._answer_refusal)
            else:
                self._answer_refusal()

        def _answer_refusal(self) -> None:
            if self.refusal is None or self.transport.is_closing():
                return
            self.transport.write(self.refusal)
            self.refusal = None
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(limits.LINGER_SECONDS, self.transport.close)

        def data_received(self, data: bytes) -> None:
            if self.refused:
                self._answer_refusal()
            else:
                super().data_received(data)

        def eof_received(self):
            if not self.refused:
                return super().eof_received()
            self._answer_refusal()
            return True  # closed by the linger timer, after the answer

        def pause_writing(self) -> None:
            if not self.refused:
                super().pause_writing()

        def resume_writing(self) -> None:
            if not self.refused:
                super().resume_writing()

        def connection_lost(self, exc) -> None:
            if self.refused:
                self._disarm()
                if self.held:
                    limits.held -= 1
                return
            if self.client_host is not None:
                limits.release(self.client_host)
                self.client_host = None
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # the headers are in; the body has its own deadline

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._arm()

    return TimedH11Protocol
