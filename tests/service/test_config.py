"""
``--config txoci.toml``: every option as a key, the command line winning, bad files failing
start-up with the key and the problem, and a real ``twistd -n oci --config`` serving with auth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, ClassVar

import treq
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.auth.fixtures import basic, toml_value, write_config
from tests.support import TWISTD, TwistdServer
from txoci.auth.policy import Subject
from txoci.service.config import ConfigFileOptions, config_keys
from txoci.service.plugin import Options, makeService


def write(directory: str, text: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "txoci.toml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


class ConfigOptionsTests(SynchronousTestCase):
    def parse(self, text: str, *argv: str) -> Options:
        options = Options()
        options.parseOptions(["--config", write(self.mktemp(), text), *argv])
        return options

    def refused(self, text: str) -> str:
        error = self.assertRaises(usage.UsageError, self.parse, text)
        return str(error)

    def test_every_option_is_a_key(self) -> None:
        self.assertEqual(
            config_keys(Options()),
            {"data-dir": "parameter", "log-format": "parameter", "shutdown-timeout": "parameter",
             "workers": "parameter", "gc-interval": "parameter", "gc-grace": "parameter",
             "manifest-retention": "parameter", "upload-max-age": "parameter",
             "disable-deletes": "flag", "disable-access-log": "flag", "read-only": "flag",
             "listen": "repeatable", "metrics-listen": "repeatable"},
        )

    def test_keys_set_options(self) -> None:
        options = self.parse(
            'data-dir = "/srv/txoci"\nlisten = ["tcp:6000", "tcp:6001"]\nmetrics-listen = "tcp:9100"\n'
            'disable-deletes = true\nshutdown-timeout = 5\nlog-format = "text"\n'
        )
        self.assertEqual(
            (options["data-dir"], options["listen"], options["metrics-listen"], options["disable-deletes"],
             options["shutdown-timeout"]),
            ("/srv/txoci", ["tcp:6000", "tcp:6001"], ["tcp:9100"], 1, 5.0),
        )

    def test_command_line_overrides_the_file(self) -> None:
        options = self.parse('data-dir = "/srv/txoci"\nlisten = ["tcp:6000"]\n',
                             "--data-dir", "/elsewhere", "--listen", "tcp:7000")
        self.assertEqual((options["data-dir"], options["listen"]), ("/elsewhere", ["tcp:7000"]))

    def test_false_flag_leaves_the_default(self) -> None:
        self.assertEqual(self.parse("disable-deletes = false\n")["disable-deletes"], 0)

    def test_unknown_key_is_named_with_a_suggestion(self) -> None:
        message = self.refused('data_dir = "/srv"\n')
        self.assertIn("data_dir: unknown key (did you mean 'data-dir'?)", message)

    def test_wrong_types_are_named(self) -> None:
        self.assertIn("disable-deletes: expected true or false", self.refused('disable-deletes = "yes"\n'))
        self.assertIn("listen: expected a string or an array of strings", self.refused("listen = 5\n"))
        self.assertIn("shutdown-timeout:", self.refused('shutdown-timeout = "soon"\n'))
        self.assertIn("data-dir: expected a string", self.refused("data-dir = 5\n"))

    def test_validation_still_applies_to_values_from_the_file(self) -> None:
        self.assertIn("--log-format must be one of", self.refused('log-format = "xml"\n'))

    def test_unreadable_or_invalid_toml(self) -> None:
        self.assertIn("not valid TOML", self.refused("data-dir = \n"))
        options = Options()
        error = self.assertRaises(usage.UsageError, options.parseOptions, ["--config", "/nonexistent.toml"])
        self.assertIn("cannot read it", str(error))

    def test_bad_auth_table_names_the_key(self) -> None:
        self.assertIn("auth.mode: expected one of basic, token", self.refused('[auth]\nmode = "open"\n'))
        self.assertIn("auth.htpasswd: required", self.refused('[auth]\nmode = "basic"\n'))
        directory = self.mktemp()
        path = write_config(directory, "basic")
        with open(path, "a") as handle:
            handle.write('"surprise" = 1\n')
        error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--config", path])
        self.assertIn("auth.surprise: unknown key", str(error))

    def test_bad_policy_names_the_key(self) -> None:
        directory = os.path.abspath(self.mktemp())
        path = write_config(directory, "basic")
        with open(path) as handle:
            text = handle.read().replace('"read", "create"', '"read", "push"')
        with open(path, "w") as handle:
            handle.write(text)
        error = self.assertRaises(usage.UsageError, Options().parseOptions, ["--config", path])
        self.assertIn("auth.access.repositories.'**'.policies[1].actions: unknown action 'push'", str(error))

    def test_auth_reaches_the_service_settings(self) -> None:
        path = write_config(os.path.abspath(self.mktemp()), "basic", **{"data-dir": "/srv/x"})
        options = Options()
        options.parseOptions(["--config", path])
        service: Any = makeService(options)
        self.assertEqual(service.settings.auth.mode, "basic")
        self.assertEqual(service.settings.data_dir, "/srv/x")

    def test_without_a_config_file_there_is_no_auth(self) -> None:
        options = Options()
        options.parseOptions([])
        service: Any = makeService(options)
        self.assertIsNone(service.settings.auth)

    def test_options_added_later_are_keys_automatically(self) -> None:
        class Extended(ConfigFileOptions):
            optParameters: ClassVar[list[list[Any]]] = [["gc-interval", None, 3600, "GC period.", int]]
            optFlags: ClassVar[list[list[Any]]] = [["read-only", None, "Refuse writes."]]

            def postOptions(self) -> None:
                self.apply_config_file()

        options = Extended()
        options.parseOptions(["--config", write(self.mktemp(), "gc-interval = 60\nread-only = true\n")])
        self.assertEqual((options["gc-interval"], options["read-only"]), (60, 1))


class TwistdConfigTests(TestCase):
    def test_bad_config_fails_start_up_naming_the_key(self) -> None:
        path = write(self.mktemp(), '[auth]\nmode = "basic"\nhtpasswd = "missing.htpasswd"\n')
        result = subprocess.run(
            [sys.executable, "-c", TWISTD, "--nodaemon", "--pidfile=", "oci", "--config", path,
             "--data-dir", os.path.abspath(self.mktemp())],
            capture_output=True, text=True, timeout=60,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("auth.htpasswd:", result.stdout + result.stderr)

    async def test_twistd_serves_with_the_config_files_auth(self) -> None:
        path = write_config(os.path.abspath(self.mktemp()), "basic")
        server = TwistdServer(os.path.abspath(self.mktemp()), "--config", path)
        self.addCleanup(server.stop)
        response = await treq.get(f"http://{server.address}/v2/", persistent=False)
        await treq.content(response)
        self.assertEqual(response.code, 401)
        response = await treq.get(f"http://{server.address}/v2/", headers=basic("admin"), persistent=False)
        await treq.content(response)
        self.assertEqual(response.code, 200)


DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "configuration.md")


class ConfigurationDocsTests(SynchronousTestCase):
    def read_docs(self) -> str:
        with open(DOCS, encoding="utf-8") as handle:
            return handle.read()

    def test_every_option_key_is_documented(self) -> None:
        text = self.read_docs()
        for key in config_keys(Options()):
            self.assertIn(f"| `{key}` |", text, f"docs/configuration.md does not document {key!r}")

    def test_the_complete_example_loads(self) -> None:
        text = self.read_docs()
        example = text.split("## A complete example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
        self.assertIn("[auth.token]", example)
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        from tests.auth.fixtures import write_htpasswd, write_signing_key
        from txoci.auth.tokens import SigningKey

        write_htpasswd(directory)
        os.rename(write_signing_key(directory)[0], os.path.join(directory, "token-signing.pem"))
        with open(os.path.join(directory, "auth-example.jwks"), "w") as handle:
            json.dump(SigningKey.generate("RS256").jwks(), handle)
        path = os.path.join(directory, "txoci.toml")
        with open(path, "w") as handle:
            handle.write(example)
        options = Options()
        options.parseOptions(["--config", path])
        settings = options.tables["auth"]
        self.assertEqual((options["data-dir"], settings.mode, settings.token.service),
                         ("/srv/txoci", "token", "registry.example.com"))
        self.assertFalse(settings.policy.decide(Subject("ci"), "app", "update").allowed)
        self.assertTrue(settings.policy.decide(Subject("carol"), "team/app", "update").allowed)


class ConfigPropertyTests(SynchronousTestCase):
    """Whatever value a key gets, start-up either takes it or refuses it naming the key."""

    @settings(max_examples=150, deadline=None)
    @given(
        st.sampled_from(sorted(config_keys(Options()))),
        st.one_of(
            st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=20), st.lists(st.text(max_size=10), max_size=3),
            st.lists(st.integers(), min_size=1, max_size=2),
        ),
    )
    def test_a_value_is_applied_or_refused_naming_its_key(self, key: str, value: Any) -> None:
        directory = self.mktemp()
        path = write(directory, f'"{key}" = {toml_value(value)}\n')
        options = Options()
        try:
            options.parseOptions(["--config", path])
        except usage.UsageError as error:
            self.assertIn(key, str(error))
