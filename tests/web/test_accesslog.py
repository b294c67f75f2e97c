"""Structured access logs: one ``txoci.access`` event per request, never a credential."""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

import attrs
from twisted.application.service import Application
from twisted.logger import ILogObserver, LogEvent, Logger, formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import TestCase

from tests.support import RegistryTestCase, sha256
from txoci.service import plugin
from txoci.service.embed import Settings
from txoci.service.logs import twistd_json_observer
from txoci.web.accesslog import event_as_json_line

SECRET = "c2VjcmV0LXBhc3N3b3Jk"


class AccessLogTests(RegistryTestCase):
    def setUp(self) -> Any:
        self.events: list[LogEvent] = []

        def observe(event: LogEvent) -> None:
            if event.get("log_namespace") == "txoci.access":
                self.events.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return super().setUp()

    def last(self, method: str, route: str) -> LogEvent:
        matches = [e for e in self.events if e["method"] == method and e["route"] == route]
        self.assertTrue(matches, f"no {method} {route} event in {self.events}")
        return matches[-1]

    async def test_chunked_upload_events_carry_every_field(self) -> None:
        data = b"x" * 1000
        response, _ = await self.request("POST", "/v2/logs/repo/blobs/uploads/")
        location = response.headers.getRawHeaders("Location")[0]
        upload_id = location.rsplit("/", 1)[1]
        post = self.last("POST", "/v2/{name}/blobs/uploads/")
        self.assertEqual(post["upload_id"], upload_id)
        self.assertEqual(post["status"], 202)
        response, _ = await self.request(
            "PATCH", location, data=data,
            headers={"Content-Type": "application/octet-stream", "Authorization": f"Basic {SECRET}"},
        )
        self.assertEqual(response.code, 202)
        patch = self.last("PATCH", "/v2/{name}/blobs/uploads/{uuid}")
        self.assertEqual(patch["repository"], "logs/repo")
        self.assertEqual(patch["upload_id"], upload_id)
        self.assertIsNone(patch["reference"])
        self.assertEqual(patch["bytes_in"], len(data))
        self.assertEqual(patch["client"], "127.0.0.1")
        self.assertIsNone(patch["user"])
        self.assertGreaterEqual(patch["duration"], 0.0)
        self.assertEqual(patch["path"], location)

    async def test_pull_records_reference_and_bytes_out(self) -> None:
        digest, manifest = await self.push_image("logs/pull", "v1", [b"layer"])
        await self.request("GET", "/v2/logs/pull/manifests/v1")
        event = self.last("GET", "/v2/{name}/manifests/{reference}")
        self.assertEqual((event["repository"], event["reference"]), ("logs/pull", "v1"))
        self.assertEqual((event["status"], event["bytes_out"]), (200, len(manifest)))
        layer = sha256(b"layer")
        await self.request("GET", f"/v2/logs/pull/blobs/{layer}?n=1")
        event = self.last("GET", "/v2/{name}/blobs/{digest}")
        self.assertEqual(event["reference"], layer)
        self.assertEqual(event["bytes_out"], 5)
        self.assertEqual(event["path"], f"/v2/logs/pull/blobs/{layer}?n=1")

    async def test_secret_query_values_are_redacted(self) -> None:
        await self.request("GET", f"/v2/_catalog?n=5&access_token={SECRET}&Password={SECRET}")
        self.assertEqual(self.events[-1]["path"], "/v2/_catalog?n=5&access_token=***&Password=***")

    async def test_unmatched_path_has_no_route(self) -> None:
        await self.request("GET", "/nowhere")
        event = self.events[-1]
        self.assertEqual((event["route"], event["status"], event["path"]), (None, 404, "/nowhere"))

    async def test_credentials_never_appear(self) -> None:
        await self.request("GET", "/v2/", headers={"Authorization": f"Bearer {SECRET}",
                                                  "Cookie": f"session={SECRET}"})
        await self.request("GET", f"/v2/_catalog?token={SECRET}")
        self.assertEqual(len(self.events), 2)
        for event in self.events:
            self.assertNotIn(SECRET, formatEvent(event))
            self.assertNotIn(SECRET, event_as_json_line(event))
            self.assertNotIn(SECRET, repr(event))

    async def test_text_form_is_one_readable_line(self) -> None:
        await self.request("GET", "/v2/")
        text = formatEvent(self.events[-1])
        self.assertIn('"GET /v2/" 200', text)
        self.assertIn("route=/v2/", text)
        self.assertNotIn("\n", text)


class DisabledAccessLogTests(RegistryTestCase):
    def registry_settings(self) -> Settings:
        return attrs.evolve(super().registry_settings(), access_log=False)

    async def test_no_access_event_but_the_request_is_still_counted(self) -> None:
        events: list[LogEvent] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        response, _ = await self.request("GET", "/v2/")
        self.assertEqual(response.code, 200)
        self.assertEqual([e for e in events if e.get("log_namespace") == "txoci.access"], [])
        _, text = await self.request("GET", "/metrics")
        self.assertIn(b'route="/v2/"', text)


class JsonLogTests(TestCase):
    def test_an_access_event_is_one_flat_json_line(self) -> None:
        events: list[LogEvent] = []
        log = Logger(namespace="txoci.access", observer=events.append)
        log.info("{method} {status}", method="GET", status=200, route="/v2/", repository=None)
        line = event_as_json_line(events[0])
        self.assertTrue(line.endswith("\n"))
        self.assertEqual(line.count("\n"), 1)
        record = json.loads(line)
        self.assertEqual(record["message"], "GET 200")
        self.assertEqual(record["level"], "info")
        self.assertEqual(record["namespace"], "txoci.access")
        self.assertEqual((record["method"], record["status"], record["route"]), ("GET", 200, "/v2/"))
        self.assertIsNone(record["repository"])
        self.assertIsInstance(record["time"], float)

    def test_failures_carry_their_traceback_and_odd_values_become_strings(self) -> None:
        events: list[LogEvent] = []
        log = Logger(observer=events.append)
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            log.failure("boom {thing}", thing=object())
        record = json.loads(event_as_json_line(events[0]))
        self.assertIn("ZeroDivisionError", record["traceback"])
        self.assertIsInstance(record["thing"], str)

    def test_the_observer_follows_twistds_choice_of_file(self) -> None:
        self.assertIs(twistd_json_observer({"nodaemon": True, "logfile": None})._outFile, sys.stdout)
        path = os.path.abspath(self.mktemp())
        observer = twistd_json_observer({"nodaemon": False, "logfile": path})
        self.assertEqual(observer._outFile.path, path)  # type: ignore[attr-defined]
        observer._outFile.close()  # type: ignore[attr-defined]
        self.assertRaises(usage.UsageError, twistd_json_observer, {"syslog": True})
        self.assertRaises(usage.UsageError, twistd_json_observer, {"logfile": "-", "nodaemon": False})

    def test_log_format_json_installs_the_observer_on_the_application(self) -> None:
        parent: dict[str, Any] = {"nodaemon": True, "logfile": None, "syslog": False}
        options = plugin.Options()
        options.parseOptions(["--log-format", "json", "--data-dir", self.mktemp()])
        options.parent = parent  # type: ignore[attr-defined]
        application = Application("oci")
        plugin.makeService(options).setServiceParent(application)
        observer = application.getComponent(ILogObserver)
        self.assertIsNotNone(observer)
        out = io.StringIO()
        observer._outFile = out
        Logger(observer=observer).info("hello {who}", who="world")
        self.assertEqual(json.loads(out.getvalue())["message"], "hello world")

    def test_text_is_the_default_and_other_formats_are_refused(self) -> None:
        options = plugin.Options()
        options.parseOptions([])
        self.assertEqual(options["log-format"], "text")
        self.assertIsNone(plugin._log_observer(options))
        self.assertRaises(usage.UsageError, plugin.Options().parseOptions, ["--log-format", "xml"])
