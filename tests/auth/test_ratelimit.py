"""Failed-login rate limiting per address and per user name, on a fake clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txoci.auth.ratelimit import BucketPolicy, FailedLoginLimiter, address_key


class LimiterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.limiter = FailedLoginLimiter(
            self.clock,
            per_address=BucketPolicy(burst=5, interval=10),
            per_user=BucketPolicy(burst=3, interval=60),
        )

    def fail(self, address: str, user: str | None, times: int = 1) -> None:
        for _ in range(times):
            self.limiter.record_failure(address, user)

    def test_per_user_limit_across_addresses(self) -> None:
        for i in range(3):
            self.assertTrue(self.limiter.check(f"10.0.0.{i}", "alice").allowed)
            self.fail(f"10.0.0.{i}", "alice")
        verdict = self.limiter.check("10.9.9.9", "alice")
        self.assertFalse(verdict.allowed)
        self.assertEqual((verdict.limited_by, verdict.retry_after), ("user", 60))
        self.assertTrue(self.limiter.check("10.9.9.9", "bob").allowed)
        self.clock.advance(59)
        self.assertEqual(self.limiter.check("10.9.9.9", "alice").retry_after, 1)
        self.clock.advance(1)
        self.assertTrue(self.limiter.check("10.9.9.9", "alice").allowed)

    def test_per_address_limit_across_users(self) -> None:
        for i in range(5):
            self.fail("192.0.2.7", f"user{i}")
        verdict = self.limiter.check("192.0.2.7", "somebody-new")
        self.assertFalse(verdict.allowed)
        self.assertEqual(verdict.limited_by, "address")
        self.assertFalse(self.limiter.check("192.0.2.7", None).allowed)
        self.assertTrue(self.limiter.check("192.0.2.8", "somebody-new").allowed)

    def test_refill_is_gradual(self) -> None:
        self.fail("192.0.2.7", None, times=5)
        self.clock.advance(10)
        self.assertTrue(self.limiter.check("192.0.2.7", None).allowed)
        self.fail("192.0.2.7", None)
        self.assertFalse(self.limiter.check("192.0.2.7", None).allowed)

    def test_unknown_users_count_too_and_buckets_are_forgotten_when_full(self) -> None:
        self.fail("192.0.2.7", "no-such-user", times=3)
        self.assertFalse(self.limiter.check("192.0.2.1", "no-such-user").allowed)
        self.assertEqual(self.limiter.tracked, 2)
        self.clock.advance(3600)
        self.limiter.check("192.0.2.7", "no-such-user")
        self.assertEqual(self.limiter.tracked, 0)

    def test_memory_is_bounded(self) -> None:
        limiter = FailedLoginLimiter(self.clock, max_keys=10)
        for i in range(100):
            limiter.record_failure(f"10.0.{i // 256}.{i % 256}", f"user{i}")
        self.assertEqual(limiter.tracked, 20)

    def test_ipv6_is_limited_per_64(self) -> None:
        self.fail("2001:db8:1:2::1", None, times=5)
        self.assertFalse(self.limiter.check("2001:db8:1:2:ffff::9", None).allowed)
        self.assertTrue(self.limiter.check("2001:db8:1:3::1", None).allowed)

    def test_address_keys(self) -> None:
        self.assertEqual(address_key("2001:db8::1"), "2001:db8::/64")
        self.assertEqual(address_key("::ffff:192.0.2.1"), "192.0.2.1")
        self.assertEqual(address_key("fe80::1%eth0"), "fe80::/64")
        self.assertEqual(address_key("unix:/run/sock"), "unix:/run/sock")

    def test_bad_policy(self) -> None:
        self.assertRaises(ValueError, BucketPolicy, burst=0)
        self.assertRaises(ValueError, BucketPolicy, interval=0)
