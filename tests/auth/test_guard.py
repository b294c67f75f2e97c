"""The route table of the guard: every API route has an access rule."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txoci.auth.policy import Action
from txoci.web.app import RegistryApp
from txoci.web.guard import ROUTE_ACTIONS, basic_credentials


class RouteTableTests(SynchronousTestCase):
    def test_every_route_has_an_access_rule(self) -> None:
        endpoints = {rule.endpoint for rule in RegistryApp.app.url_map.iter_rules()}
        self.assertEqual(endpoints - set(ROUTE_ACTIONS), set())
        self.assertEqual(set(ROUTE_ACTIONS) - endpoints, set())

    def test_writes_need_create_and_deletes_need_delete(self) -> None:
        rules = {rule.endpoint: rule.methods or set() for rule in RegistryApp.app.url_map.iter_rules()}
        for endpoint, methods in rules.items():
            action = ROUTE_ACTIONS[endpoint]
            if "DELETE" in methods and endpoint != "cancel_upload":  # cancelling an upload is part of pushing
                self.assertEqual(action, Action.DELETE, endpoint)
            elif methods & {"PUT", "PATCH", "POST"}:
                self.assertEqual(action, Action.CREATE, endpoint)


class BasicCredentialsTests(SynchronousTestCase):
    def test_parsing(self) -> None:
        self.assertEqual(basic_credentials("Y2Fyb2w6cHc="), ("carol", b"pw"))
        self.assertEqual(basic_credentials("Y2Fyb2w6cDpx"), ("carol", b"p:q"))
        self.assertEqual(basic_credentials("Og=="), ("", b""))
        self.assertIsNone(basic_credentials("OnB3"))  # ":pw": a password without a user
        self.assertIsNone(basic_credentials("bm9jb2xvbg=="))  # "nocolon"
        self.assertIsNone(basic_credentials("%%%"))
        self.assertIsNone(basic_credentials("/w=="))  # not UTF-8, no colon
