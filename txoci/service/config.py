"""
``--config txoci.toml``: every ``twistd oci`` option as a key of a TOML file.

:class:`ConfigFileOptions` is a :class:`twisted.python.usage.Options` base class.  It derives the
keys from the options themselves -- ``optParameters``, ``optFlags`` and ``opt_*`` handler methods
-- so an option added to :mod:`txoci.service.plugin` is a config key at once, with no table to
keep in step:

- a parameter (``data-dir``) takes a string, or a number when the option coerces to one;
- a flag (``disable-deletes``) takes ``true`` or ``false``;
- a repeatable handler option (``listen``, whose value starts as a list) takes an array of
  strings, or one string; any other handler option takes one string (a flag-like handler a
  boolean).

Keys are spelt as the long option (``data-dir``, ``metrics-listen``).  Tables other than options
are declared by the subclass in :attr:`ConfigFileOptions.config_tables` (``[auth]``) and checked
by their own loaders.  The command line overrides the file: an option given on the command line
is not taken from the file (a repeatable option given there replaces the file's list).

A file that cannot be read or parsed, an unknown key or a value of the wrong type stops start-up
with a :class:`~twisted.python.usage.UsageError` naming the file, the key and the problem.
Nothing is ever ignored or defaulted silently.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable
from typing import Any, ClassVar

from twisted.python import reflect, usage

__all__ = ["ConfigFileOptions", "config_keys", "load_toml"]

#: Options that are never config keys.
_NOT_KEYS = frozenset({"help", "version", "config"})


def load_toml(path: str) -> dict[str, Any]:
    """Read and parse a TOML file; raise :class:`usage.UsageError` naming the file and problem."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise usage.UsageError(f"config file {path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise usage.UsageError(f"config file {path}: not valid TOML: {exc}") from None


def _class_list(options: usage.Options, name: str) -> list[list[Any]]:
    entries: list[list[Any]] = []
    reflect.accumulateClassList(type(options), name, entries)
    return entries


def _long_names(entries: list[list[Any]]) -> dict[str, list[Any]]:
    return {entry[0]: entry for entry in entries}


def config_keys(options: usage.Options) -> dict[str, str]:
    """``{key: kind}`` for every option of ``options``: kind is ``parameter``, ``flag``,
    ``repeatable`` or ``handler``."""
    parameters = _long_names(_class_list(options, "optParameters"))
    flags = _long_names(_class_list(options, "optFlags"))
    keys: dict[str, str] = {}
    for name in set(options.synonyms.values()):
        if name in _NOT_KEYS:
            continue
        if name in parameters:
            keys[name] = "parameter"
        elif name in flags:
            keys[name] = "flag"
        elif isinstance(options.get(name), list):
            keys[name] = "repeatable"
        else:
            keys[name] = "handler"
    return keys


class ConfigFileOptions(usage.Options):
    """Options that can also come from ``--config FILE`` (see the module docstring).

    Subclasses call :meth:`apply_config_file` first thing in ``postOptions``.
    """

    #: Tables of the file that are not options: name -> a checker taking (value, config directory)
    #: that raises ``ValueError`` with a message starting with the key.
    config_tables: ClassVar[dict[str, Callable[[Any, str], Any]]] = {}

    def __init__(self) -> None:
        super().__init__()
        self["config"] = None
        #: The non-option tables of the file, as their checkers returned them.
        self.tables: dict[str, Any] = {}
        self._given: set[str] = set()
        for name, handler in list(self._dispatch.items()):
            self._dispatch[name] = self._recording(name, handler)

    def _recording(self, name: str, handler: Any) -> Callable[[str, Any], None]:
        def dispatch(option: str, value: Any = None) -> None:
            self._given.add(name)
            if isinstance(handler, usage.CoerceParameter):
                handler.dispatch(option, value)
            else:
                handler(option, value)

        return dispatch

    def opt_config(self, path: str) -> None:
        """Read options (and the [auth] table) from this TOML file; the command line wins."""
        self["config"] = path

    def given_on_command_line(self, name: str) -> bool:
        return name in self._given

    def apply_config_file(self) -> None:
        """Take every option not given on the command line from the ``--config`` file."""
        path = self["config"]
        if path is None:
            return
        document = load_toml(path)
        base_dir = os.path.dirname(os.path.abspath(path))
        keys = config_keys(self)
        for key, value in document.items():
            where = f"config file {path}: {key}"
            if key in self.config_tables:
                try:
                    self.tables[key] = self.config_tables[key](value, base_dir)
                except ValueError as exc:
                    raise usage.UsageError(f"config file {path}: {exc}") from None
                continue
            kind = keys.get(key)
            if kind is None:
                known = sorted([*keys, *self.config_tables])
                close = difflib.get_close_matches(key.replace("_", "-"), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise usage.UsageError(f"{where}: unknown key{hint}; known keys: {', '.join(known)}")
            if self.given_on_command_line(key):
                continue
            try:
                self._apply(key, kind, value)
            except (TypeError, ValueError) as exc:
                raise usage.UsageError(f"{where}: {exc}") from None
            except usage.UsageError as exc:
                raise usage.UsageError(f"{where}: {exc}") from None

    def _apply(self, key: str, kind: str, value: Any) -> None:
        if kind == "flag":
            if not isinstance(value, bool):
                raise TypeError(f"expected true or false, not {type(value).__name__}")
            self[key] = 1 if value else 0
            return
        if kind == "parameter":
            coercer = _coercer(self, key)
            coerce = coercer.coerce if coercer is not None else None
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise TypeError(f"expected a string or number, not {type(value).__name__}")
            if isinstance(value, int | float) and coerce is None:
                raise TypeError(f"expected a string, not {type(value).__name__}")
            self[key] = coerce(str(value)) if coerce is not None else value
            return
        method = getattr(self, "opt_" + key.replace("-", "_"))
        if kind == "repeatable":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise TypeError("expected a string or an array of strings")
            self[key] = []
            for item in items:
                method(item)
            return
        if isinstance(value, bool):
            if value:
                method()
            return
        if not isinstance(value, str):
            raise TypeError(f"expected a string, not {type(value).__name__}")
        method(value)


def _coercer(options: usage.Options, key: str) -> usage.CoerceParameter | None:
    """The ``CoerceParameter`` twisted made for parameter ``key`` (holding its ``coerce``)."""
    for entry in _class_list(options, "optParameters"):
        if entry[0] == key and len(entry) > 4 and entry[4] is not None:
            return usage.CoerceParameter(options, entry[4])
    return None
