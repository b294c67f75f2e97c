"""The bcrypt-only htpasswd file: parsing, refusal of other hashes, reloading, management."""

from __future__ import annotations

import os
import stat

import bcrypt
from twisted.trial.unittest import SynchronousTestCase

from txoci.auth import htpasswd as htpasswd_module
from txoci.auth.htpasswd import (
    HtpasswdError,
    HtpasswdFile,
    add_user,
    hash_password,
    parse_htpasswd,
    remove_user,
    validate_username,
)

#: Cheap bcrypt for tests; production uses DEFAULT_ROUNDS.
FAST = 4


def entry(user: str, password: str, prefix: bytes = b"$2y$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=FAST))
    return f"{user}:{(prefix + hashed[4:]).decode()}"


class ParseTests(SynchronousTestCase):
    def test_accepts_every_bcrypt_prefix(self) -> None:
        text = "\n".join([entry("a", "x", b"$2y$"), entry("b", "x", b"$2b$"), entry("c", "x", b"$2a$")])
        self.assertEqual(sorted(parse_htpasswd(text)), ["a", "b", "c"])

    def test_skips_blank_lines_and_comments(self) -> None:
        text = f"# users\n\n  \n{entry('alice', 'pw')}\n   # indented comment\n"
        self.assertEqual(list(parse_htpasswd(text)), ["alice"])

    def test_refuses_other_hash_types_naming_the_line(self) -> None:
        cases = {
            "md5": "$apr1$abcdefgh$0123456789abcdefghijkl",
            "sha": "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
            "crypt": "rOkx3.T2aOv9Q",
            "plain": "secret",
            "sha512": "$6$salt$" + "x" * 86,
        }
        for user, hashed in cases.items():
            text = f"{entry('ok', 'pw')}\n{user}:{hashed}\n"
            with self.assertRaises(HtpasswdError) as caught:
                parse_htpasswd(text, "users.htpasswd")
            message = str(caught.exception)
            self.assertIn("users.htpasswd, line 2", message)
            self.assertIn(repr(user), message)
            self.assertIn("only bcrypt", message)
            self.assertNotIn(hashed, message, "the hash itself must never be echoed")

    def test_refuses_malformed_bcrypt(self) -> None:
        with self.assertRaises(HtpasswdError) as caught:
            parse_htpasswd("bob:$2y$10$tooshort")
        self.assertIn("malformed bcrypt", str(caught.exception))

    def test_refuses_lines_without_colon_and_duplicates(self) -> None:
        self.assertRaises(HtpasswdError, parse_htpasswd, "no-colon-here")
        self.assertRaises(HtpasswdError, parse_htpasswd, ":$2y$04$" + "a" * 53)
        twice = f"{entry('bob', 'a')}\n{entry('bob', 'b')}"
        with self.assertRaises(HtpasswdError) as caught:
            parse_htpasswd(twice)
        self.assertIn("line 2", str(caught.exception))

    def test_username_validation(self) -> None:
        for bad in ["", "a:b", "a b", "a\nb", "#x", "x" * 256, "tab\t"]:
            self.assertRaises(HtpasswdError, validate_username, bad)
        self.assertEqual(validate_username("ci-bot@example.com"), "ci-bot@example.com")

    def test_hash_password(self) -> None:
        hashed = hash_password("pw", rounds=FAST)
        self.assertTrue(hashed.startswith(b"$2y$04$"))
        self.assertTrue(bcrypt.checkpw(b"pw", hashed))
        self.assertRaises(HtpasswdError, hash_password, "")
        self.assertRaises(HtpasswdError, hash_password, "x" * 73)
        self.assertRaises(HtpasswdError, hash_password, "pw", rounds=3)


class FileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        with open(self.path, "w") as handle:
            handle.write(entry("alice", "wonderland") + "\n" + entry("bob", "builder", b"$2b$") + "\n")
        self.file = HtpasswdFile(self.path)

    def test_verify(self) -> None:
        self.assertTrue(self.file.verify("alice", "wonderland"))
        self.assertTrue(self.file.verify("alice", b"wonderland"))
        self.assertTrue(self.file.verify("bob", "builder"))
        self.assertFalse(self.file.verify("alice", "builder"))
        self.assertFalse(self.file.verify("alice", ""))
        self.assertFalse(self.file.verify("carol", "wonderland"))
        self.assertEqual(self.file.users(), {"alice", "bob"})
        self.assertIn("alice", self.file)

    def test_unknown_user_costs_a_bcrypt_check(self) -> None:
        """Constant-time behaviour: unknown users are checked against a dummy hash of the same cost."""
        calls: list[bytes] = []
        real = bcrypt.checkpw

        def counting(password: bytes, hashed: bytes) -> bool:
            calls.append(hashed)
            return real(password, hashed)

        self.patch(htpasswd_module.bcrypt, "checkpw", counting)
        self.assertFalse(self.file.verify("nobody", "wonderland"))
        self.assertFalse(self.file.verify("alice", "wrong"))
        self.assertEqual(len(calls), 2)
        self.assertEqual(calls[0][4:6], b"04", "the dummy hash has the file's cost")

    def test_long_passwords_truncate_like_apache(self) -> None:
        long = "p" * 72
        add_user(self.path, "carol", long, rounds=FAST)
        self.assertTrue(self.file.verify("carol", long + "ignored-by-bcrypt"))

    def test_bad_file_fails_start_up(self) -> None:
        path = self.mktemp()
        with open(path, "w") as handle:
            handle.write("eve:$apr1$abcdefgh$0123456789abcdefghijkl\n")
        self.assertRaises(HtpasswdError, HtpasswdFile, path)
        self.assertRaises(HtpasswdError, HtpasswdFile, self.mktemp())

    def test_reloads_after_atomic_rewrite(self) -> None:
        self.assertFalse(self.file.verify("carol", "pw"))
        self.assertTrue(add_user(self.path, "carol", "pw", rounds=FAST))
        self.assertTrue(self.file.verify("carol", "pw"))
        remove_user(self.path, "alice")
        self.assertFalse(self.file.verify("alice", "wonderland"))
        self.assertTrue(self.file.verify("bob", "builder"))

    def test_reloads_after_in_place_edit(self) -> None:
        with open(self.path, "w") as handle:
            handle.write(entry("dave", "new") + "\n")
        self.assertTrue(self.file.verify("dave", "new"))
        self.assertFalse(self.file.verify("alice", "wonderland"))

    def test_invalid_edit_fails_closed_until_fixed(self) -> None:
        with open(self.path, "a") as handle:
            handle.write("mallory:plaintext\n")
        self.assertFalse(self.file.verify("alice", "wonderland"), "a broken file must not keep old users")
        self.assertIn("line 3", self.file.error or "")
        self.assertEqual(len(self.flushLoggedErrors()), 0)
        with open(self.path, "w") as handle:
            handle.write(entry("alice", "wonderland") + "\n")
        self.assertTrue(self.file.verify("alice", "wonderland"))
        self.assertIsNone(self.file.error)

    def test_deleted_file_fails_closed(self) -> None:
        os.unlink(self.path)
        self.assertFalse(self.file.verify("alice", "wonderland"))
        self.assertIsNotNone(self.file.error)


class ManagementTests(SynchronousTestCase):
    def test_add_creates_a_private_file(self) -> None:
        path = self.mktemp()
        self.assertTrue(add_user(path, "alice", "pw", rounds=FAST))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertTrue(HtpasswdFile(path).verify("alice", "pw"))

    def test_add_replaces_and_keeps_comments_order_and_mode(self) -> None:
        path = self.mktemp()
        with open(path, "w") as handle:
            handle.write("# managed by hand\n" + entry("alice", "old") + "\n" + entry("bob", "b") + "\n")
        os.chmod(path, 0o640)
        self.assertFalse(add_user(path, "alice", "new", rounds=FAST))
        with open(path) as handle:
            lines = handle.read().splitlines()
        self.assertEqual(lines[0], "# managed by hand")
        self.assertEqual([line.split(":")[0] for line in lines[1:]], ["alice", "bob"])
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)
        self.assertTrue(HtpasswdFile(path).verify("alice", "new"))
        self.assertRaises(HtpasswdError, add_user, path, "alice", "x", rounds=FAST, replace=False)

    def test_add_refuses_bad_input_and_invalid_files(self) -> None:
        path = self.mktemp()
        self.assertRaises(HtpasswdError, add_user, path, "a:b", "pw", rounds=FAST)
        self.assertRaises(HtpasswdError, add_user, path, "alice", "x" * 100, rounds=FAST)
        with open(path, "w") as handle:
            handle.write("eve:{SHA}abc\n")
        self.assertRaises(HtpasswdError, add_user, path, "alice", "pw", rounds=FAST)
        with open(path) as handle:
            self.assertEqual(handle.read(), "eve:{SHA}abc\n", "an invalid file is left alone")

    def test_remove(self) -> None:
        path = self.mktemp()
        self.assertRaises(HtpasswdError, remove_user, path, "alice")
        add_user(path, "alice", "pw", rounds=FAST)
        add_user(path, "bob", "pw", rounds=FAST)
        remove_user(path, "alice")
        self.assertEqual(HtpasswdFile(path).users(), {"bob"})
        self.assertRaises(HtpasswdError, remove_user, path, "alice")

    def test_no_temp_files_left_behind(self) -> None:
        path = self.mktemp()
        add_user(path, "alice", "pw", rounds=FAST)
        remove_user(path, "alice")
        leftovers = [n for n in os.listdir(os.path.dirname(os.path.abspath(path))) if n.endswith(".tmp")]
        self.assertEqual(leftovers, [])
