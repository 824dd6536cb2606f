"""URL shape and the SSRF rules, given resolved addresses."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, strategies as st

from controlplane.webhooks.targets import (AllowList, TargetError, check_addresses, forbidden_reason,
                                           parse_url)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/x", "https://example.com:8443/a?b=c", "https://93.184.216.34/",
    "https://[2606:2800:220:1::1]/hook", "https://hooks.zapier.com/hooks/catch/12345/abcdef",
])
def test_https_urls_pass_in_both_modes(url: str) -> None:
    for production in (False, True):
        assert parse_url(url, production=production).scheme == "https"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x"])
def test_http_only_to_loopback_in_development(url: str) -> None:
    assert parse_url(url, production=False).scheme == "http"
    with pytest.raises(TargetError, match="https"):
        parse_url(url, production=True)


@pytest.mark.parametrize("url, reason", [
    ("http://example.com/x", "https"),
    ("http://10.0.0.1/x", "https"),
    ("ftp://example.com/x", "https"),
    ("example.com/x", "https"),
    ("https://user:pw@example.com/", "credentials"),
    ("https://example.com/#frag", "fragment"),
    ("https:///path", "host"),
    ("https://exa mple.com/", "whitespace"),
    ("https://example.com:99999/", "valid URL"),
    ("https://2130706433/", "dotted-quad"),
    ("https://127.1/", "dotted-quad"),
    ("https://0x7f.0.0.1/", "dotted-quad"),
    ("https://bad_host!.com/", "host name"),
    ("https://" + "a" * 2050 + ".com/", "2048"),
])
def test_bad_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(TargetError, match=reason):
        parse_url(url, production=False)


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd12::1", "private"),
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"), ("100.100.100.200", "metadata"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"), ("100.64.0.1", "carrier-grade"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"), ("192.0.2.1", "private"),  # TEST-NET-1 is "private" to Python
    ("2002:7f00:1::", "loopback"), ("64:ff9b::a00:1", "private"), ("::ffff:169.254.169.254", "metadata"),
])
def test_forbidden_addresses(address: str, reason: str) -> None:
    found = forbidden_reason(ip(address))
    assert found is not None and reason in found


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1::1", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ip(address)) is None


def test_every_resolved_address_must_pass() -> None:
    check_addresses("ok.example", [ip("93.184.216.34")], AllowList())
    with pytest.raises(TargetError, match="10.0.0.5, which is private"):
        check_addresses("mixed.example", [ip("93.184.216.34"), ip("10.0.0.5")], AllowList())
    with pytest.raises(TargetError, match="does not resolve"):
        check_addresses("none.example", [], AllowList())


def test_allow_list_by_host_or_cidr() -> None:
    allow = AllowList.parse(["relay.internal", "10.20.0.0/16", "127.0.0.1"])
    check_addresses("relay.internal", [ip("10.99.0.1")], allow)
    check_addresses("other.internal", [ip("10.20.3.4")], allow)
    check_addresses("localhost", [ip("127.0.0.1")], allow)
    with pytest.raises(TargetError):
        check_addresses("other.internal", [ip("10.21.0.1")], allow)


@given(st.ip_addresses())
def test_classification_is_total_and_consistent(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    reason = forbidden_reason(address)
    if reason is None:
        assert address.is_global
    if address.is_loopback or address.is_private or address.is_link_local:
        assert reason is not None
