"""Outgoing requests to client-given URLs (job callbacks) without server-side request forgery.

A client names the callback URL, so without a check the server would POST to whatever it can
reach and the client cannot: loopback services, the cloud metadata address (169.254.169.254),
hosts on the private network. So a callback goes only to public addresses unless the operator
allows more (``jobs.callback_allow_hosts`` / ``jobs.callback_allow_networks``):

- the URL is checked when the job is submitted (a 400 naming ``callback_url``) and again when it
  is delivered, both times after DNS resolution: every address the name resolves to must pass;
- numeric hosts are read as the C resolver reads them (``2130706433``, ``0x7f.1``, ``0177.0.0.1``
  are all 127.0.0.1), IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are unwrapped;
- delivery connects to the address that was checked (the Host header and TLS name stay those of
  the URL), so a DNS answer that changes between the check and the connection (rebinding) is not
  followed; redirects are not followed, proxies from the environment are not used.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx

from .exceptions import InvalidParameterError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
SCHEMES = ("http", "https")
PARAM = "callback_url"


class CallbackRefusedError(InvalidParameterError):
    """A callback URL that the server will not call (scheme, host or address not allowed)."""

    def __init__(self, message: str):
        super().__init__(message, param=PARAM)


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped (``::ffff:a.b.c.d``) or NAT64 IPv6 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_public(ip: IPAddress) -> bool:
    """True for a globally routable unicast address; False for loopback, link-local, private,
    shared (100.64/10), reserved, multicast, unspecified and documentation addresses."""
    ip = _unwrap(ip)
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def numeric_host(host: str) -> IPAddress | None:
    """The address a numeric host stands for, as the C resolver reads it (dotted, decimal,
    octal or hex IPv4: ``2130706433``, ``0x7f.1``; IPv6 with or without brackets); None for a
    name."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    if bare and all(c in "0123456789abcdefxABCDEFX." for c in bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (getaddrinfo, TCP)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Destination:
    """A checked callback URL and the address to connect to."""

    url: httpx.URL  # the URL with the checked address as its host
    host: str  # the URL's own host name (Host header, TLS name)
    host_header: str


class CallbackGuard:
    """Checks callback URLs against the public-address rule and the operator's allow-lists."""

    def __init__(
        self,
        allow_hosts: Iterable[str] = (),
        allow_networks: Iterable[IPNetwork] = (),
        resolver: Resolver = system_resolver,
    ):
        self.allow_hosts = frozenset(h.lower().rstrip(".") for h in allow_hosts)
        self.allow_networks: tuple[IPNetwork, ...] = tuple(allow_networks)
        self.resolver = resolver

    def allowed(self, ip: IPAddress) -> bool:
        """Whether the server may connect to ``ip``."""
        if any(ip in net or _unwrap(ip) in net for net in self.allow_networks):
            return True
        return is_public(ip)

    @staticmethod
    def _split(url: str) -> tuple[SplitResult, str, int]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise CallbackRefusedError("callback_url: not a valid URL") from None
        if parts.scheme.lower() not in SCHEMES:
            raise CallbackRefusedError("callback_url: must be an http:// or https:// URL")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise CallbackRefusedError("callback_url: the URL has no host")
        return parts, host, port or (443 if parts.scheme.lower() == "https" else 80)

    def addresses(self, url: str) -> tuple[str, list[IPAddress]]:
        """The URL's host and the addresses it stands for, all allowed; raises
        CallbackRefusedError otherwise (messages name the host, never the whole URL)."""
        _, host, port = self._split(url)
        numeric = numeric_host(host)
        found = [numeric] if numeric is not None else self._resolve(host, port)
        if host.lower() in self.allow_hosts:
            return host, found
        refused = [ip for ip in found if not self.allowed(ip)]
        if refused:
            raise CallbackRefusedError(
                f"callback_url: host {host!r} is not a public address ({refused[0]}); "
                "callbacks to internal addresses need jobs.callback_allow_hosts or "
                "jobs.callback_allow_networks"
            )
        return host, found

    def _resolve(self, host: str, port: int) -> list[IPAddress]:
        unresolved = CallbackRefusedError(f"callback_url: host {host!r} does not resolve")
        try:
            found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in self.resolver(host, port)]
        except (OSError, UnicodeError, ValueError):
            raise unresolved from None
        if not found:
            raise unresolved
        return found

    def check(self, url: str | None) -> None:
        """Submit-time check (blocking: it may resolve a name)."""
        if url is not None:
            self.addresses(url)

    def destination(self, url: str) -> Destination:
        """Delivery-time check: the URL rewritten to connect to the first checked address."""
        parts, host, _ = self._split(url)
        _, found = self.addresses(url)
        target = httpx.URL(url).copy_with(host=str(found[0]))
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return Destination(target, host, netloc)

    def post_json(self, url: str, body: Any, *, timeout: float, headers: dict[str, str]) -> int:
        """POST ``body`` as JSON to the checked address of ``url``; the response status.

        Raises CallbackRefusedError (not allowed) or httpx.HTTPError (transport, timeout).
        """
        dest = self.destination(url)
        with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout) as client:
            response = client.post(
                dest.url,
                json=body,
                headers={**headers, "Host": dest.host_header},
                extensions={"sni_hostname": dest.host},
            )
        return response.status_code
