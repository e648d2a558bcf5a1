"""OAuth2 tokens kept per (tenant, connector, version) until shortly before they expire."""

from __future__ import annotations

from flowmesh_executor.nodes.tokens import DEFAULT_LIFETIME, EXPIRY_MARGIN, TokenCache, kept_until


def test_a_token_is_kept_until_the_margin_before_its_expiry() -> None:
    assert kept_until(100.0, 3600) == 100.0 + 3600 - EXPIRY_MARGIN
    assert kept_until(100.0, None) == 100.0 + DEFAULT_LIFETIME - EXPIRY_MARGIN
    assert kept_until(100.0, 10) == 100.0  # shorter than the margin: not kept


def test_the_cache_answers_until_then_and_per_key() -> None:
    cache = TokenCache()
    key = ("acme", "svc", 1, b"d")
    cache.put(key, "t1", until=50.0, now=0.0)
    assert cache.get(key, 49.9) == "t1"
    assert cache.get(("acme", "svc", 2, b"d"), 1.0) is None  # another version
    assert cache.get(("acme", "svc", 1, b"e"), 1.0) is None  # the same name, made again
    assert cache.get(("other", "svc", 1, b"d"), 1.0) is None  # another tenant
    assert cache.get(key, 50.0) is None
    assert len(cache) == 0
    cache.put(key, "t2", until=10.0, now=10.0)  # already expired: not kept
    assert len(cache) == 0


def test_the_cache_is_bounded_dropping_the_oldest() -> None:
    cache = TokenCache(max_tokens=3)
    for n in range(5):
        cache.put(("acme", f"c{n}", 1, b"d"), f"t{n}", until=100.0, now=0.0)
    assert len(cache) == 3
    assert cache.get(("acme", "c0", 1, b"d"), 1.0) is None
    assert cache.get(("acme", "c4", 1, b"d"), 1.0) == "t4"
