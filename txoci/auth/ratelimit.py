"""
Failed-login rate limiting per client address and per user name (issue 5).

Each key has a token bucket on the reactor's clock: ``burst`` failures are free, after which one
more is allowed every ``interval`` seconds.  The web layer calls, for every request carrying
credentials (Basic, or the token endpoint's password grant)::

    verdict = limiter.check(client_address, username)
    if not verdict.allowed:
        # answer 429 TOOMANYREQUESTS with Retry-After: verdict.retry_after, without checking
        # the password at all (so a limited caller learns nothing, and costs no bcrypt time)
    ...
    if login failed:
        limiter.record_failure(client_address, username)

Both keys are checked: the address limit stops one client guessing many accounts, the user limit
stops many clients guessing one account.  Successful logins do not reset anything -- otherwise
an attacker with one valid account could reset their address's bucket between guesses.  Failures
for unknown users count like any other, so the limiter reveals nothing about which names exist.
IPv6 clients are limited per /64, since one host usually holds a whole /64.

Memory is bounded: buckets that have refilled completely are forgotten (they are
indistinguishable from new ones), and beyond ``max_keys`` the least recently used is dropped.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict

import attrs
from twisted.internet.interfaces import IReactorTime

__all__ = ["BucketPolicy", "FailedLoginLimiter", "RateLimitVerdict", "address_key"]


@attrs.frozen
class BucketPolicy:
    """``burst`` failures at once, then one per ``interval`` seconds."""

    burst: int = 10
    interval: float = 30.0

    def __attrs_post_init__(self) -> None:
        if self.burst < 1 or not self.interval > 0:
            raise ValueError("a rate limit needs burst >= 1 and interval > 0")


@attrs.frozen
class RateLimitVerdict:
    """Whether a login attempt may proceed; if not, how many seconds until it may (``Retry-After``)."""

    allowed: bool
    retry_after: int = 0
    limited_by: str | None = None


@attrs.define
class _Bucket:
    tokens: float
    updated: float


class _Buckets:
    def __init__(self, policy: BucketPolicy, max_keys: int) -> None:
        self.policy = policy
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _current(self, key: str, now: float) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        refill = (now - bucket.updated) / self.policy.interval
        bucket.tokens = min(float(self.policy.burst), bucket.tokens + max(refill, 0.0))
        bucket.updated = now
        if bucket.tokens >= self.policy.burst:
            del self._buckets[key]
            return None
        return bucket

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may fail again (0 when it may now)."""
        bucket = self._current(key, now)
        if bucket is None or bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) * self.policy.interval

    def consume(self, key: str, now: float) -> None:
        bucket = self._current(key, now)
        if bucket is None:
            bucket = _Bucket(float(self.policy.burst), now)
            self._buckets[key] = bucket
        bucket.tokens = max(0.0, bucket.tokens - 1)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


def address_key(address: str) -> str:
    """The rate-limit key for a client address: IPv4 as is, IPv6 by its /64, anything else verbatim."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailedLoginLimiter:
    """Failed-login limits per client address and per user name, on ``clock``."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        per_address: BucketPolicy = BucketPolicy(burst=20, interval=15.0),
        per_user: BucketPolicy = BucketPolicy(burst=10, interval=30.0),
        max_keys: int = 100_000,
    ) -> None:
        self.clock = clock
        self._addresses = _Buckets(per_address, max_keys)
        self._users = _Buckets(per_user, max_keys)

    def check(self, address: str, username: str | None) -> RateLimitVerdict:
        """Whether a login from ``address`` as ``username`` may be attempted now."""
        now = self.clock.seconds()
        waits = [(self._addresses.wait(address_key(address), now), "address")]
        if username:
            waits.append((self._users.wait(username, now), "user"))
        wait, limited_by = max(waits)
        if wait <= 0:
            return RateLimitVerdict(True)
        return RateLimitVerdict(False, max(1, math.ceil(round(wait, 6))), limited_by)

    def record_failure(self, address: str, username: str | None) -> None:
        """Count one failed login against ``address`` and (if given) ``username``."""
        now = self.clock.seconds()
        self._addresses.consume(address_key(address), now)
        if username:
            self._users.consume(username, now)

    @property
    def tracked(self) -> int:
        """How many keys currently have a partly used bucket (for metrics and tests)."""
        return len(self._addresses) + len(self._users)
