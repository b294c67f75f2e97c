"""
The acceptance policy of issue 5 and helpers to serve a registry with it.

- ``admin`` is in ``adminPolicy`` (everything, everywhere);
- ``reader`` may read every repository except under ``team/`` (a longer rule replaces ``**``);
- ``ci`` may read and create everywhere but not update (move tags) or delete;
- the ``team`` group (``carol``, ``dave``) may do everything under ``team/**``;
- anyone, even without credentials, may read ``public/**``.

Users' passwords are ``NAME-password``; bcrypt at the lowest cost keeps the tests fast.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from txoci.auth.config import AuthSettings
from txoci.auth.htpasswd import add_user
from txoci.auth.tokens import SigningKey

USERS = ("admin", "reader", "ci", "carol", "dave", "mallory")
SERVICE = "txoci-test"
ISSUER = "txoci-test-issuer"

ACCESS: dict[str, Any] = {
    "groups": {"team": {"users": ["carol", "dave"]}},
    "adminPolicy": {"users": ["admin"]},
    "repositories": {
        "**": {
            "policies": [
                {"users": ["reader"], "actions": ["read"]},
                {"users": ["ci"], "actions": ["read", "create"]},
            ],
        },
        "team/**": {"policies": [{"groups": ["team"], "actions": ["read", "create", "update", "delete"]}]},
        "public/**": {"anonymousPolicy": ["read"], "defaultPolicy": ["read"]},
    },
}


def password(user: str) -> str:
    return f"{user}-password"


def basic(user: str, secret: str | None = None) -> dict[str, list[str]]:
    """The Authorization header for Basic credentials."""
    pair = f"{user}:{password(user) if secret is None else secret}".encode()
    return {"Authorization": ["Basic " + base64.b64encode(pair).decode("ascii")]}


def bearer(token: str) -> dict[str, list[str]]:
    return {"Authorization": [f"Bearer {token}"]}


def write_htpasswd(directory: str) -> str:
    path = os.path.join(directory, "users.htpasswd")
    for user in USERS:
        add_user(path, user, password(user), rounds=4)
    return path


def write_signing_key(directory: str, algorithm: str = "ES256") -> tuple[str, SigningKey]:
    key = SigningKey.generate(algorithm)
    path = os.path.join(directory, "token.pem")
    with open(path, "wb") as handle:
        handle.write(key.private_pem())
    return path, key


def auth_table(directory: str, mode: str, **token: Any) -> dict[str, Any]:
    """An ``[auth]`` table (as a dict) with the acceptance policy, files written in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    table: dict[str, Any] = {
        "mode": mode,
        "realm": "txoci-test",
        "htpasswd": write_htpasswd(directory),
        "access": ACCESS,
    }
    if mode == "token":
        key_path, _ = write_signing_key(directory)
        table["token"] = {"service": SERVICE, "issuer": ISSUER, "key": key_path, **token}
    return table


def auth_settings(directory: str, mode: str, **token: Any) -> AuthSettings:
    return AuthSettings.from_dict(auth_table(directory, mode, **token), directory)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # JSON escapes control characters as TOML does; TOML also wants DEL escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + "}"
    raise TypeError(type(value))


def write_config(directory: str, mode: str, **top: Any) -> str:
    """A ``txoci.toml`` with ``[auth]`` (inline tables) and the top-level option keys ``top``."""
    table = auth_table(directory, mode)
    lines = [f'"{key}" = {toml_value(value)}' for key, value in top.items()]
    lines.append("[auth]")
    lines.extend(f'"{key}" = {toml_value(value)}' for key, value in table.items())
    path = os.path.join(directory, "txoci.toml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path
