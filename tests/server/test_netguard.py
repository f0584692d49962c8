"""The callback address guard (server-side request forgery): which addresses a job's callback may
reach, numeric host spellings, DNS answers checked in full, delivery to the checked address."""

from __future__ import annotations

import http.server
import ipaddress
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from malsori.server.netguard import CallbackGuard, CallbackRefusedError, is_public, numeric_host

INTERNAL = [
    "127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::",
    "10.0.0.1", "10.255.1.2", "172.16.0.1", "172.31.255.254", "192.168.1.1",
    "169.254.169.254", "fe80::1", "100.64.0.1", "100.127.255.254", "fc00::1", "fd12:3456::1",
    "224.0.0.1", "ff02::1", "240.0.0.1", "255.255.255.255", "192.0.2.1", "2001:db8::1",
    "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("host", "address"),
    [("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
     ("0177.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"), ("017700000001", "127.0.0.1"),
     ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"), ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
     ("example.com", None), ("deadbeef.example", None)],
)  # fmt: skip
def test_numeric_hosts_are_read_as_the_resolver_reads_them(host: str, address: str | None) -> None:
    expected = None if address is None else ipaddress.ip_address(address)
    assert numeric_host(host) == expected


def _no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"a numeric host must not be resolved: {host}")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/", "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/",
     "http://10.0.0.5/", "http://172.16.3.4/", "http://192.168.0.10/",
     "http://169.254.169.254/latest/meta-data/", "http://2130706433/", "http://0x7f.1/",
     "http://0177.0.0.1:9000/", "http://100.64.1.1/", "http://[fc00::1]/",
     "http://user:pw@127.0.0.1/"],
)  # fmt: skip
def test_internal_callback_urls_are_refused(url: str) -> None:
    with pytest.raises(CallbackRefusedError) as refused:
        CallbackGuard(resolver=_no_dns).check(url)
    assert refused.value.param == "callback_url"
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/", "file:///etc/passwd", "gopher://8.8.8.8/"])
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(CallbackRefusedError, match="http:// or https://"):
        CallbackGuard(resolver=_no_dns).check(url)


def test_a_public_address_is_allowed() -> None:
    guard = CallbackGuard(resolver=_no_dns)
    guard.check("https://8.8.8.8/hook")
    assert guard.addresses("http://[2606:4700:4700::1111]:8443/x")[1] == [
        ipaddress.ip_address("2606:4700:4700::1111")
    ]


def test_every_resolved_address_must_be_public() -> None:
    answers = {"mixed.example": ["93.184.216.34", "10.0.0.1"], "ok.example": ["93.184.216.34"]}
    guard = CallbackGuard(resolver=lambda host, port: answers[host])
    guard.check("https://ok.example/hook")
    with pytest.raises(CallbackRefusedError, match="not a public address"):
        guard.check("https://mixed.example/hook")


def test_an_unresolvable_host_is_refused() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(CallbackRefusedError, match="does not resolve"):
        CallbackGuard(resolver=fail).check("https://nowhere.invalid/hook")


def test_the_allow_lists() -> None:
    resolver = {"hooks.internal": ["10.1.2.3"], "other.internal": ["10.9.9.9"]}
    guard = CallbackGuard(
        allow_hosts=["Hooks.Internal"],
        allow_networks=[ipaddress.ip_network("192.168.7.0/24")],
        resolver=lambda host, port: resolver[host],
    )
    guard.check("http://hooks.internal:9000/done")
    guard.check("http://192.168.7.20/done")
    with pytest.raises(CallbackRefusedError):
        guard.check("http://other.internal/done")
    with pytest.raises(CallbackRefusedError):
        guard.check("http://192.168.8.1/done")


def test_dns_rebinding_after_the_check_is_refused_at_delivery() -> None:
    """The name is public when the job is submitted and internal when the callback is sent."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    guard = CallbackGuard(resolver=lambda host, port: next(answers))
    guard.check("http://rebind.example/hook")
    with pytest.raises(CallbackRefusedError, match=r"127\.0\.0\.1"):
        guard.post_json("http://rebind.example/hook", {}, timeout=2, headers={})


@pytest.fixture
def receiver() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    calls: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            self.send_response(302)  # a redirect that must not be followed
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], calls
    server.shutdown()


def test_delivery_connects_to_the_checked_address(
    receiver: tuple[int, list[dict[str, Any]]],
) -> None:
    """``hooks.internal`` exists only in the guard's resolver: the request reaches the receiver
    only because it connects to the address that was checked, with the URL's Host."""
    port, calls = receiver
    guard = CallbackGuard(allow_hosts=["hooks.internal"], resolver=lambda host, port: ["127.0.0.1"])
    status = guard.post_json(
        f"http://hooks.internal:{port}/done?x=1", {"id": 1}, timeout=5, headers={}
    )
    assert status == 302  # answered, not followed
    assert len(calls) == 1
    assert calls[0]["path"] == "/done?x=1" and calls[0]["host"] == f"hooks.internal:{port}"
    with pytest.raises(CallbackRefusedError):
        CallbackGuard().post_json(f"http://127.0.0.1:{port}/done", {}, timeout=5, headers={})
    assert len(calls) == 1


def test_environment_proxies_are_not_used(
    receiver: tuple[int, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, calls = receiver
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:1")
    guard = CallbackGuard(allow_networks=[ipaddress.ip_network("127.0.0.0/8")])
    assert guard.post_json(f"http://127.0.0.1:{port}/", {}, timeout=5, headers={}) == 302
    assert len(calls) == 1
    with pytest.raises(httpx.ConnectError):
        guard.post_json("http://127.0.0.1:1/", {}, timeout=5, headers={})
