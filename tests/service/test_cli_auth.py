"""``txoci user add/remove`` and ``txoci access explain``."""

from __future__ import annotations

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from tests.auth.fixtures import write_config
from txoci.auth.htpasswd import HtpasswdFile
from txoci.service import cli


class AuthCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        self.config = write_config(self.directory, "basic")
        self.htpasswd = os.path.join(self.directory, "users.htpasswd")

    def txoci(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(list(args), out, err, io.StringIO(stdin))
        return code, out.getvalue(), err.getvalue()

    def test_user_add_with_password_stdin_via_the_config_file(self) -> None:
        code, out, err = self.txoci("user", "add", "erin", "--config", self.config, "--rounds", "4",
                                    "--password-stdin", stdin="s3cret pass\n")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("added user erin", out)
        self.assertNotIn("s3cret", out)
        users = HtpasswdFile(self.htpasswd, check_changes=False)
        self.assertTrue(users.verify("erin", "s3cret pass"))
        self.assertFalse(users.verify("erin", "s3cret pass\n"))

    def test_user_add_again_updates_the_password(self) -> None:
        code, out, _ = self.txoci("user", "add", "carol", "--htpasswd", self.htpasswd, "--rounds", "4",
                                  "--password-stdin", stdin="new-one\n")
        self.assertEqual(code, 0)
        self.assertIn("updated user carol", out)
        self.assertTrue(HtpasswdFile(self.htpasswd).verify("carol", "new-one"))

    def test_user_remove(self) -> None:
        code, out, _ = self.txoci("user", "remove", "carol", "--config", self.config)
        self.assertEqual(code, 0)
        self.assertNotIn("carol", HtpasswdFile(self.htpasswd).users())
        code, _, err = self.txoci("user", "remove", "carol", "--config", self.config)
        self.assertEqual(code, 2)
        self.assertIn("no user 'carol'", err)

    def test_user_add_refuses_bad_names_and_empty_passwords(self) -> None:
        code, _, err = self.txoci("user", "add", "a:b", "--htpasswd", self.htpasswd, "--password-stdin",
                                  stdin="pw\n")
        self.assertEqual(code, 2)
        self.assertIn("contains ':'", err)
        code, _, err = self.txoci("user", "add", "erin", "--htpasswd", self.htpasswd, "--password-stdin",
                                  stdin="\n")
        self.assertEqual(code, 2)
        self.assertIn("must not be empty", err)

    def test_user_commands_need_a_file(self) -> None:
        code, _, _ = self.txoci("user", "add", "erin")
        self.assertEqual(code, 2)

    def test_access_explain_allowed_names_the_rule(self) -> None:
        code, out, _ = self.txoci("access", "explain", "carol", "team/app", "update", "--config", self.config)
        self.assertEqual(code, 0)
        self.assertEqual(out, "allowed: user 'carol' may update 'team/app': a policy naming group 'team'\n"
                              "rule: team/**\n")

    def test_access_explain_denied(self) -> None:
        code, out, _ = self.txoci("access", "explain", "ci", "app", "update", "--config", self.config)
        self.assertEqual(code, 1)
        self.assertEqual(out, "denied: rule '**' does not let user 'ci' update 'app'\nrule: **\n")

    def test_access_explain_anonymous_and_admin(self) -> None:
        code, out, _ = self.txoci("access", "explain", "-", "public/base", "read", "--config", self.config)
        self.assertEqual(code, 0)
        self.assertIn("anonymousPolicy", out)
        code, out, _ = self.txoci("access", "explain", "admin", "team/x", "delete", "--config", self.config)
        self.assertEqual(code, 0)
        self.assertIn("rule: adminPolicy", out)

    def test_access_explain_with_an_extra_group(self) -> None:
        code, out, _ = self.txoci("access", "explain", "erin", "team/app", "create", "--config", self.config,
                                  "--group", "team")
        self.assertEqual(code, 0, out)

    def test_access_explain_invalid_name_is_denied(self) -> None:
        code, out, _ = self.txoci("access", "explain", "admin", "Team/../x", "read", "--config", self.config)
        self.assertEqual(code, 1)
        self.assertIn("not a valid repository name", out)
