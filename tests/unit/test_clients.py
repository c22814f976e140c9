"""Who a request is charged to: trusted proxies, X-Forwarded-For, address spellings and client keys."""

from __future__ import annotations

import pytest

from app.admission.clients import TrustedProxies, client_ip, client_key, ip_group
from app.identity.principal import ANONYMOUS, Principal

PROXIES = TrustedProxies.parse("10.0.0.0/8, 192.168.1.7, 2001:db8:ffff::/48")


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_ip("203.0.113.9", "198.51.100.1", PROXIES) == "203.0.113.9"
    assert client_ip("203.0.113.9", None, TrustedProxies()) == "203.0.113.9"


def test_a_trusted_peer_forwards_the_nearest_untrusted_address() -> None:
    assert client_ip("10.1.2.3", "198.51.100.1", PROXIES) == "198.51.100.1"
    # Proxies append what they saw: the rightmost untrusted hop is the client; what lies left is forgeable.
    assert client_ip("10.1.2.3", "6.6.6.6, 198.51.100.1, 192.168.1.7", PROXIES) == "198.51.100.1"
    assert client_ip("192.168.1.7", " 198.51.100.1 ,10.9.9.9", PROXIES) == "198.51.100.1"


def test_a_chain_of_trusted_proxies_gives_its_leftmost() -> None:
    assert client_ip("10.1.2.3", "10.0.0.5, 192.168.1.7", PROXIES) == "10.0.0.5"


def test_a_trusted_peer_without_forwarded_for_is_the_client() -> None:
    assert client_ip("10.1.2.3", None, PROXIES) == "10.1.2.3"
    assert client_ip("10.1.2.3", "", PROXIES) == "10.1.2.3"


@pytest.mark.parametrize(
    "forwarded",
    ["garbage", "1.2.3.4, garbage", ",", "1.2.3.999", "01.2.3.4", "1.2.3.4 5.6.7.8", "\x00", "x" * 10_000],
)
def test_garbage_in_forwarded_for_makes_the_last_trusted_hop_the_client(forwarded: str) -> None:
    assert client_ip("10.1.2.3", forwarded, PROXIES) == "10.1.2.3"


def test_garbage_left_of_an_untrusted_hop_does_not_matter() -> None:
    assert client_ip("10.1.2.3", "garbage, 198.51.100.1", PROXIES) == "198.51.100.1"


def test_a_long_forwarded_for_is_walked_only_so_far() -> None:
    assert client_ip("10.1.2.3", "198.51.100.1, " + "10.0.0.1, " * 100 + "10.0.0.2", PROXIES) == "10.0.0.1"


def test_spellings_of_one_address_are_one_client() -> None:
    spellings = ["::ffff:198.51.100.1", "198.51.100.1:4431", "[::ffff:198.51.100.1]:80"]
    assert {client_ip("10.1.2.3", s, PROXIES) for s in spellings} == {"198.51.100.1"}
    assert client_ip("::ffff:203.0.113.9", None, PROXIES) == "203.0.113.9"
    assert client_ip("::FFFF:10.1.2.3", "198.51.100.1", PROXIES) == "198.51.100.1"  # still trusted
    assert client_ip("2001:DB8:0:0::1", None, PROXIES) == "2001:db8::1"
    assert client_ip("fe80::1%eth0", None, PROXIES) == "fe80::1"


def test_ipv6_proxies_and_clients() -> None:
    assert client_ip("2001:db8:ffff:1::2", "2001:db8:1:2::3", PROXIES) == "2001:db8:1:2::3"
    assert client_ip("2001:db8:fffe::2", "2001:db8:1:2::3", PROXIES) == "2001:db8:fffe::2"


def test_a_peer_without_an_address_is_unknown() -> None:
    assert client_ip(None, "198.51.100.1", PROXIES) == "unknown"
    assert client_ip("testclient", None, PROXIES) == "unknown"
    assert client_ip("", None, PROXIES) == "unknown"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [("10.0.0.0/33", "10.0.0.0/33"), ("10.0.0.1/8", "host bits set"), ("proxy.local", "proxy.local")],
)
def test_a_malformed_trusted_proxy_is_refused_at_startup(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match="BOOKWORM_TRUSTED_PROXIES") as raised:
        TrustedProxies.parse(f"10.0.0.0/8, {entry}")
    assert problem in str(raised.value)


def test_an_empty_trusted_proxy_list_trusts_no_one() -> None:
    nobody = TrustedProxies.parse(" , ")
    assert nobody.networks == ()
    assert client_ip("10.1.2.3", "198.51.100.1", nobody) == "10.1.2.3"


def test_an_ipv4_mapped_trusted_proxy_is_its_ipv4_address() -> None:
    assert client_ip("192.0.2.1", "198.51.100.1", TrustedProxies.parse("::ffff:192.0.2.1")) == "198.51.100.1"


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert ip_group("2001:db8:1:2:aaaa::1") == ip_group("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert ip_group("2001:db8:1:3::1") != ip_group("2001:db8:1:2::1")
    assert ip_group("198.51.100.1") == "198.51.100.1"


def test_signed_in_callers_are_charged_as_users_and_others_by_address() -> None:
    assert client_key(Principal(subject="alice-42"), "198.51.100.1") == "user:alice-42"
    assert client_key(ANONYMOUS, "198.51.100.1") == "ip:198.51.100.1"
    assert client_key(ANONYMOUS, "2001:db8:1:2::3") == "ip:2001:db8:1:2::/64"
    assert client_key(ANONYMOUS, "unknown") == "ip:unknown"


@pytest.mark.parametrize("subject", ["a" * 1000, "a:b", "a b", "*", "\udc80", "é", "{tag}"])
def test_odd_subjects_become_short_safe_keys(subject: str) -> None:
    key = client_key(Principal(subject=subject), "198.51.100.1")
    assert key.startswith("user:sha256:") and len(key) == len("user:sha256:") + 32
    assert key != client_key(Principal(subject=subject + "x"), "198.51.100.1")
