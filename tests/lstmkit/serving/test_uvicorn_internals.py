"""lstmkit.serving.uvicorn_internals: the version and member checks in front of the
subclass of uvicorn's h11 protocol, that no other module reaches into uvicorn's
protocols, and that pyproject pins the range it was checked against."""

import ast

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from lstmkit import keras_internals
from lstmkit.errors import UserError
from lstmkit.serving import uvicorn_internals
from tests.conftest import ROOT

tomllib = pytest.importorskip("tomllib")


def _fake_uvicorn(monkeypatch, version):
    real = keras_internals.installed_version
    monkeypatch.setattr(keras_internals, "installed_version",
                        lambda package: version if package == "uvicorn" else real(package))


def test_the_timed_protocol_extends_uvicorns_h11_protocol_on_a_checked_uvicorn():
    from uvicorn.protocols.http.h11_impl import H11Protocol

    assert keras_internals.unchecked_version("uvicorn", uvicorn_internals.UVICORN_CHECKED) is None
    protocol = uvicorn_internals.timed_protocol(5.0)
    assert issubclass(protocol, H11Protocol) and protocol.__name__ == "TimedH11Protocol"


@pytest.mark.parametrize("version", ["0.56.0", "0.29.0", "1.0.0", "0.56.0rc1"])
def test_another_uvicorn_is_refused_in_one_line(monkeypatch, version):
    _fake_uvicorn(monkeypatch, version)
    with pytest.raises(UserError, match=rf"written for uvicorn>=0\.30,<0\.56, but uvicorn {version} is installed; "
                                        r"install 'uvicorn>=0\.30,<0\.56'") as error:
        uvicorn_internals.timed_protocol(5.0)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("owner, member, shown", [
    ("H11Protocol", "on_response_complete", "H11Protocol.on_response_complete"),
    ("H11Protocol", "handle_events", "H11Protocol.handle_events"),
])
def test_a_checked_version_without_a_member_it_relies_on_is_refused(monkeypatch, owner, member, shown):
    from uvicorn.protocols.http import h11_impl

    monkeypatch.delattr(getattr(h11_impl, owner), member)
    with pytest.raises(UserError, match=rf"need {shown} of uvicorn's h11 protocol"):
        uvicorn_internals.timed_protocol(5.0)


def test_an_attribute_no_longer_set_is_refused(monkeypatch):
    from uvicorn.protocols.http import h11_impl

    def init(self, *args, **kwargs):  # sets nothing the protocol reads
        pass

    monkeypatch.setattr(h11_impl.RequestResponseCycle, "__init__", init)
    with pytest.raises(UserError, match=r"need RequestResponseCycle\(\)\.response_complete of"):
        uvicorn_internals.timed_protocol(5.0)


def test_serve_refuses_another_uvicorn_before_it_loads_a_model(monkeypatch, tmp_path):
    from lstmkit import serving

    _fake_uvicorn(monkeypatch, "0.56.0")
    with pytest.raises(UserError, match="uvicorn 0.56.0 is installed"):  # not "no SavedModel to serve"
        serving.serve(serving.ServerOptions(base_path=tmp_path / "absent", port=0), announce=lambda line: None)


def _reaches_in(path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]
        if any(name == "uvicorn.protocols" or name.startswith("uvicorn.protocols.") for name in names):
            found.append(f"{node.lineno}: {names[0]}")
    return found


def test_only_uvicorn_internals_reaches_into_uvicorns_protocols():
    files = sorted((ROOT / "lstmkit").rglob("*.py")) + sorted((ROOT / "tasks").rglob("*.py"))
    internals = ROOT / "lstmkit" / "serving" / "uvicorn_internals.py"
    assert internals in files and _reaches_in(internals)
    offenders = {str(path.relative_to(ROOT)): found for path in files if path != internals
                 for found in [_reaches_in(path)] if found}
    assert offenders == {}


def test_pyproject_pins_the_range_the_protocol_was_checked_against():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {requirement.name: requirement.specifier for requirement in map(Requirement, dependencies)}
    assert pins["uvicorn"] == SpecifierSet(uvicorn_internals.UVICORN_CHECKED)


def test_requests_does_not_import_the_registry():
    """The registry reads requests (ServingError, Spec); requests takes any object with
    a Servable's fields (requests.Signatures), so imports point one way."""
    source = (ROOT / "lstmkit" / "serving" / "requests.py").read_text()
    imported = [node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
                 for alias in node.names]
    assert not [name for name in imported if name and name.startswith("lstmkit.serving.registry")]
    assert "registry import" not in source


def _http_get(port: int, source: str = "127.0.0.1") -> tuple[int, bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(source, 0))
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_protocol_keeps_its_deadline_and_limits_on_the_installed_uvicorn():
    """The header deadline and the per-client limit, on a bare ASGI app (the slow
    tests in test_app.py check the same on a whole server with models)."""
    import socket
    import threading
    import time

    import uvicorn

    from lstmkit.serving.app import ConnectionLimits

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           http=uvicorn_internals.timed_protocol(1.0, ConnectionLimits(4, 2))))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _http_get(port) == (200, b"ok")
        held = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(2)]
        status, body = _http_get(port)
        assert status == 429 and b"holds 2 connections" in body
        assert _http_get(port, source="127.0.0.2") == (200, b"ok")
        for connection in held:  # sent nothing: closed at the header deadline
            started = time.monotonic()
            assert connection.recv(100) == b"" and time.monotonic() - started < 5
            connection.close()
        trickle = socket.create_connection(("127.0.0.1", port), timeout=20)
        started = time.monotonic()
        with pytest.raises(OSError):
            for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"x" * 300:
                trickle.send(bytes([byte]))
                time.sleep(0.02)
        assert time.monotonic() - started < 5
        time.sleep(0.2)
        assert _http_get(port) == (200, b"ok")  # the closed ones were released
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()
