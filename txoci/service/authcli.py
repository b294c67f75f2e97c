"""
The ``txoci user`` and ``txoci access`` commands (part of the ``txoci`` console script).

``txoci user add NAME [--config FILE | --htpasswd FILE] [--password-stdin] [--rounds N]``
    Add a user (or set their password) in the htpasswd file, atomically.  The password is
    prompted for twice, or read as one line from standard input with ``--password-stdin``; it is
    never taken from the command line, where other users could see it.

``txoci user remove NAME [--config FILE | --htpasswd FILE]``
    Remove a user.  A running registry notices both changes without a restart.

``txoci access explain USER REPOSITORY ACTION --config FILE [--group G]...``
    Print whether USER may take ACTION (read, create, update, delete) on REPOSITORY under the
    ``[auth.access]`` policy, and the rule that decided.  ``-`` as USER means anonymous.
    Exit status 0 when allowed, 1 when denied.
"""

from __future__ import annotations

import argparse
import getpass
import os
from typing import IO, Any

from twisted.python import usage

from txoci.auth.htpasswd import DEFAULT_ROUNDS, HtpasswdError, add_user, remove_user
from txoci.auth.policy import Action, Policy, PolicyError, Subject
from txoci.service.config import load_toml

__all__ = ["add_auth_commands", "run_auth_command"]

AUTH_COMMANDS = frozenset({"user", "access"})


class _CommandError(Exception):
    pass


def add_auth_commands(commands: Any) -> None:
    """Add ``user`` and ``access`` to the ``txoci`` sub-command parsers."""
    user = commands.add_parser("user", help="manage the htpasswd file's users",
                               description="Add or remove users of the htpasswd file named by "
                               "[auth] htpasswd in the config file, or by --htpasswd.")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    def htpasswd_source(parser: argparse.ArgumentParser) -> None:
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--config", "-c", help="txoci.toml whose [auth] htpasswd names the file")
        where.add_argument("--htpasswd", help="the htpasswd file itself")

    adding = user_commands.add_parser("add", help="add a user or set their password")
    adding.add_argument("name")
    htpasswd_source(adding)
    adding.add_argument("--password-stdin", action="store_true",
                        help="read the password as one line from standard input")
    adding.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help="bcrypt cost (default %(default)s)")
    removing = user_commands.add_parser("remove", help="remove a user")
    removing.add_argument("name")
    htpasswd_source(removing)

    access = commands.add_parser("access", help="explain access decisions")
    access_commands = access.add_subparsers(dest="access_command", required=True, metavar="ACTION")
    explain = access_commands.add_parser(
        "explain", help="whether USER may take ACTION on REPOSITORY, and the rule that decided",
    )
    explain.add_argument("user", metavar="USER", help="a user name, or - for anonymous")
    explain.add_argument("repository", metavar="REPOSITORY")
    explain.add_argument("action", metavar="ACTION", choices=[a.value for a in Action])
    explain.add_argument("--config", "-c", required=True, help="txoci.toml with the [auth.access] policy")
    explain.add_argument("--group", "-g", action="append", default=[],
                         help="a group the user belongs to besides the policy's own (repeatable)")


def _auth_table(config: str) -> tuple[dict[str, Any], str]:
    try:
        document = load_toml(config)
    except usage.UsageError as exc:
        raise _CommandError(str(exc)) from None
    auth = document.get("auth")
    if not isinstance(auth, dict):
        raise _CommandError(f"config file {config}: no [auth] table")
    return auth, os.path.dirname(os.path.abspath(config))


def _htpasswd_path(options: argparse.Namespace) -> str:
    if options.htpasswd:
        return str(options.htpasswd)
    auth, base_dir = _auth_table(options.config)
    path = auth.get("htpasswd")
    if not isinstance(path, str) or not path:
        raise _CommandError(f"config file {options.config}: auth.htpasswd is not set")
    return path if os.path.isabs(path) else os.path.join(base_dir, path)


def _read_password(options: argparse.Namespace, stdin: IO[str]) -> str:
    if options.password_stdin:
        line = stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        return password[:-1] if password.endswith("\r") else password
    first = getpass.getpass(f"Password for {options.name}: ")
    if getpass.getpass("Again: ") != first:
        raise _CommandError("the passwords differ")
    return first


def _explain(options: argparse.Namespace, out: IO[str]) -> int:
    auth, _ = _auth_table(options.config)
    try:
        policy = Policy.from_dict(auth.get("access", {}))
    except PolicyError as exc:
        raise _CommandError(f"config file {options.config}: auth.access: {exc}") from None
    anonymous = options.user == "-"
    subject = Subject(anonymous=True) if anonymous else Subject(options.user, frozenset(options.group))
    decision = policy.decide(subject, options.repository, options.action)
    print(f"{'allowed' if decision.allowed else 'denied'}: {decision.reason}", file=out)
    print(f"rule: {decision.rule if decision.rule is not None else '(none)'}", file=out)
    return 0 if decision.allowed else 1


def run_auth_command(
    options: argparse.Namespace, out: IO[str], err: IO[str], stdin: IO[str]
) -> int | None:
    """Run ``user``/``access`` and return the exit status; None for any other command."""
    if options.command not in AUTH_COMMANDS:
        return None
    try:
        if options.command == "access":
            return _explain(options, out)
        path = _htpasswd_path(options)
        if options.user_command == "add":
            created = add_user(path, options.name, _read_password(options, stdin), rounds=options.rounds)
            print(f"{'added' if created else 'updated'} user {options.name} in {path}", file=out)
        else:
            remove_user(path, options.name)
            print(f"removed user {options.name} from {path}", file=out)
        return 0
    except (_CommandError, HtpasswdError) as exc:
        print(f"txoci {options.command}: {exc}", file=err)
        return 2
    except OSError as exc:
        print(f"txoci {options.command}: {exc.filename or ''}: {exc.strerror}", file=err)
        return 2
