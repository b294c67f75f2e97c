"""
An Apache-compatible htpasswd file holding bcrypt entries only.

Format (Apache ``htpasswd -B``): one ``user:hash`` entry per line.  Blank lines and lines whose
first non-blank character is ``#`` are ignored, as Distribution's htpasswd parser does.  Only
bcrypt hashes (``$2y$``, ``$2b$``, ``$2a$``) are accepted; Distribution's ``htpasswd`` access
controller refuses everything else too.  Any other hash type (MD5 ``$apr1$``, SHA1 ``{SHA}``,
crypt, plain text) makes the whole file invalid, with a message naming the line and the user --
never the hash.

:class:`HtpasswdFile` re-reads the file when it changes: every lookup ``stat``\\ s it and reloads
when the inode, device, size or modification time differ from the version in memory, so
``txoci user add`` (or ``htpasswd -B``) takes effect without a restart.  A file that has become
missing or invalid fails *closed*: every verification fails (and an error is logged) until it is
fixed, so a broken edit can never keep a removed user's access alive.

Verification is constant-time in the sense that matters: an unknown user is checked against a
dummy bcrypt hash of the same cost as the file's entries, so the time a failed login takes does
not reveal whether the user exists.  bcrypt is slow by design; call :meth:`HtpasswdFile.verify`
from a thread (``txoci.auth.cred`` does so via ``deferToThread``).

bcrypt only uses the first 72 bytes of a password.  Apache truncates silently and so does
:meth:`HtpasswdFile.verify` (for compatibility with files Apache wrote); :func:`add_user` refuses
longer passwords instead, so txoci never creates an entry whose tail is ignored.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import bcrypt
from twisted.logger import Logger

__all__ = [
    "BCRYPT_MAX_PASSWORD_BYTES",
    "DEFAULT_ROUNDS",
    "HtpasswdError",
    "HtpasswdFile",
    "add_user",
    "hash_password",
    "parse_htpasswd",
    "remove_user",
    "validate_username",
]

log = Logger()

#: bcrypt ignores everything after this many bytes of password.
BCRYPT_MAX_PASSWORD_BYTES = 72
#: The bcrypt cost ``add_user`` uses unless told otherwise (Apache's ``htpasswd -B`` default is 5;
#: 12 is today's usual recommendation).
DEFAULT_ROUNDS = 12
_MIN_ROUNDS = 4
_MAX_ROUNDS = 31

#: ``$2a$``/``$2b$``/``$2y$``, a two-digit cost, then 53 characters of bcrypt base64 (salt + hash).
_BCRYPT = re.compile(r"^\$2[aby]\$(?P<cost>[0-9]{2})\$[./A-Za-z0-9]{53}$")
_USERNAME_FORBIDDEN = re.compile(r"[:\s\x00-\x1f\x7f]")
_MAX_USERNAME = 255


class HtpasswdError(Exception):
    """The htpasswd file is unreadable or invalid, or a user-management request is invalid."""


def validate_username(name: str) -> str:
    """Return ``name`` if it can be stored in an htpasswd file, else raise :class:`HtpasswdError`.

    A name must be 1--255 characters without ``:``, whitespace or control characters (the colon
    separates name from hash; the rest would make lines ambiguous or invisible) and must not start
    with ``#`` (that line would be a comment).
    """
    if not name or len(name) > _MAX_USERNAME:
        raise HtpasswdError("a user name must be 1 to 255 characters")
    if _USERNAME_FORBIDDEN.search(name):
        raise HtpasswdError(f"user name {name!r} contains ':', whitespace or a control character")
    if name.startswith("#"):
        raise HtpasswdError(f"user name {name!r} must not start with '#'")
    return name


def _hash_kind(hashed: str) -> str:
    """A human name for a non-bcrypt hash, for error messages (never echoes the hash itself)."""
    if hashed.startswith("$apr1$"):
        return "Apache MD5 ($apr1$)"
    if hashed.startswith("{SHA}"):
        return "SHA-1 ({SHA})"
    if hashed.startswith(("$5$", "$6$")):
        return "SHA-crypt"
    if hashed.startswith("$1$"):
        return "MD5-crypt ($1$)"
    if hashed.startswith("$2"):
        return "malformed bcrypt"
    if hashed == "":
        return "empty"
    return "crypt or plain text"


def parse_htpasswd(text: str, source: str = "htpasswd") -> dict[str, bytes]:
    """Parse htpasswd ``text`` into ``{user: bcrypt hash}``.

    Raises :class:`HtpasswdError` naming ``source`` and the line number for a malformed line, a
    duplicate user or a non-bcrypt hash.
    """
    entries: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        where = f"{source}, line {number}"
        if not sep or not user:
            raise HtpasswdError(f"{where}: expected 'user:hash'")
        if _USERNAME_FORBIDDEN.search(user):
            raise HtpasswdError(f"{where}: invalid user name {user!r}")
        if not _BCRYPT.fullmatch(hashed):
            raise HtpasswdError(
                f"{where}: user {user!r} has an unsupported {_hash_kind(hashed)} hash; "
                "only bcrypt ($2y$, $2b$, $2a$) is accepted (create entries with 'htpasswd -B' "
                "or 'txoci user add')"
            )
        if user in entries:
            raise HtpasswdError(f"{where}: user {user!r} appears more than once")
        entries[user] = hashed.encode("ascii")
    return entries


def _bcrypt_cost(hashed: bytes) -> int:
    return int(hashed[4:6])


def _truncate(password: str | bytes) -> bytes:
    raw = password.encode("utf-8") if isinstance(password, str) else password
    return raw[:BCRYPT_MAX_PASSWORD_BYTES]


def hash_password(password: str | bytes, rounds: int = DEFAULT_ROUNDS) -> bytes:
    """A ``$2y$`` bcrypt hash of ``password`` (Apache's prefix), refusing passwords bcrypt would truncate."""
    raw = password.encode("utf-8") if isinstance(password, str) else password
    if not raw:
        raise HtpasswdError("the password must not be empty")
    if len(raw) > BCRYPT_MAX_PASSWORD_BYTES:
        raise HtpasswdError(
            f"the password is longer than bcrypt's limit of {BCRYPT_MAX_PASSWORD_BYTES} bytes"
        )
    if not _MIN_ROUNDS <= rounds <= _MAX_ROUNDS:
        raise HtpasswdError(f"bcrypt rounds must be between {_MIN_ROUNDS} and {_MAX_ROUNDS}")
    hashed = bcrypt.hashpw(raw, bcrypt.gensalt(rounds=rounds))
    # $2b$ and $2y$ are the same algorithm; Apache writes $2y$, which every reader accepts.
    return b"$2y$" + hashed[4:]


@attrs.frozen
class _Signature:
    """What identifies one version of the file on disk."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Signature:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class HtpasswdFile:
    """A bcrypt htpasswd file, re-read when it changes.

    :param path: the file.  It is read (and validated) once here, so a bad file fails start-up
        with :class:`HtpasswdError`; later changes are picked up on use.
    :param check_changes: ``stat`` the file on every use (the default).  Turn off only in tests.
    """

    def __init__(self, path: str | os.PathLike[str], *, check_changes: bool = True) -> None:
        self.path = Path(path)
        self._check_changes = check_changes
        self._lock = threading.Lock()
        self._entries: Mapping[str, bytes] = {}
        self._signature: _Signature | None = None
        self._error: str | None = None
        self._dummy: bytes | None = None
        self._load(strict=True)

    # -- loading -----------------------------------------------------------------------------

    def _load(self, *, strict: bool) -> None:
        """(Re)read the file; with ``strict`` raise on failure, else fail closed and log."""
        try:
            with open(self.path, "rb") as handle:
                signature = _Signature.of(os.fstat(handle.fileno()))
                data = handle.read()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HtpasswdError(f"{self.path}: not UTF-8 text") from exc
            entries = parse_htpasswd(text, str(self.path))
        except (OSError, HtpasswdError) as exc:
            message = str(exc) if isinstance(exc, HtpasswdError) else f"{self.path}: {exc.strerror}"
            if strict:
                raise HtpasswdError(message) from exc
            if self._error != message:
                log.error("htpasswd file unusable, refusing every login until fixed: {m}", m=message)
            self._entries = {}
            self._error = message
            self._signature = None
            return
        if self._error is not None or self._signature is not None:
            log.info("htpasswd file {path} reloaded ({count} users)", path=str(self.path), count=len(entries))
        self._entries = entries
        self._signature = signature
        self._error = None
        self._dummy = None

    def refresh(self) -> None:
        """Reload the file if it changed on disk since it was last read."""
        try:
            current: _Signature | None = _Signature.of(os.stat(self.path))
        except OSError:
            current = None
        with self._lock:
            if current is None or current != self._signature:
                self._load(strict=False)

    @property
    def error(self) -> str | None:
        """Why the file is currently unusable, or ``None`` when it is fine."""
        return self._error

    def users(self) -> frozenset[str]:
        """The user names in the current version of the file."""
        if self._check_changes:
            self.refresh()
        return frozenset(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self.users()

    def loaded_hash(self, name: str) -> bytes | None:
        """``name``'s hash in the version of the file in memory (no ``stat``, no reload), or
        ``None`` -- to tell whether a cached successful login still stands for the same entry."""
        with self._lock:
            return None if self._error is not None else self._entries.get(name)

    # -- verification ------------------------------------------------------------------------

    def _dummy_hash(self) -> bytes:
        """A bcrypt hash with the file's most common cost, to spend the same time on unknown users."""
        dummy = self._dummy
        if dummy is None:
            costs = [_bcrypt_cost(h) for h in self._entries.values()]
            rounds = max(set(costs), key=costs.count) if costs else DEFAULT_ROUNDS
            dummy = bcrypt.hashpw(os.urandom(16).hex().encode("ascii"), bcrypt.gensalt(rounds=rounds))
            self._dummy = dummy
        return dummy

    def verify(self, username: str, password: str | bytes) -> bool:
        """Whether ``password`` is ``username``'s password.  Blocking and slow: call from a thread.

        Unknown users, an unusable file and empty passwords all cost one bcrypt comparison and
        return ``False``.
        """
        if self._check_changes:
            self.refresh()
        with self._lock:
            hashed = self._entries.get(username)
            usable = hashed is not None and self._error is None
            if hashed is None:
                hashed = self._dummy_hash()
        candidate = _truncate(password)
        try:
            matched = bcrypt.checkpw(candidate, hashed)
        except ValueError:
            matched = False
        return matched and usable and bool(candidate)


# -- management (for ``txoci user add`` / ``txoci user remove``) -------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise writers of ``path`` with an advisory lock on ``path.lock``."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_lines(path: Path) -> tuple[list[str], int | None]:
    try:
        with open(path, encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode & 0o7777
            return handle.read().splitlines(), mode
    except FileNotFoundError:
        return [], None


def _atomic_write(path: Path, lines: list[str], mode: int) -> None:
    """Replace ``path`` with ``lines``: temp file in the same directory, fsync, rename, fsync dir."""
    directory = path.parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(dir_fd)


def _entry_user(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    return stripped.partition(":")[0]


def add_user(
    path: str | os.PathLike[str],
    username: str,
    password: str | bytes,
    *,
    rounds: int = DEFAULT_ROUNDS,
    replace: bool = True,
) -> bool:
    """Add ``username`` (or set its password) in the htpasswd file at ``path``, atomically.

    Creates the file (mode 0600) if it does not exist; keeps comments, other entries and the
    file's mode.  The existing file must be valid.  Returns ``True`` when the user was new.
    With ``replace=False`` an existing user raises :class:`HtpasswdError`.
    """
    validate_username(username)
    target = Path(path)
    entry = f"{username}:{hash_password(password, rounds).decode('ascii')}"
    with _locked(target):
        lines, mode = _read_lines(target)
        parse_htpasswd("\n".join(lines), str(target))
        index = next((i for i, line in enumerate(lines) if _entry_user(line) == username), None)
        if index is None:
            lines.append(entry)
        elif not replace:
            raise HtpasswdError(f"user {username!r} already exists in {target}")
        else:
            lines[index] = entry
        _atomic_write(target, lines, 0o600 if mode is None else mode)
    return index is None


def remove_user(path: str | os.PathLike[str], username: str) -> None:
    """Remove ``username`` from the htpasswd file at ``path``, atomically.

    Raises :class:`HtpasswdError` if the file does not exist, is invalid, or has no such user.
    """
    target = Path(path)
    with _locked(target):
        lines, mode = _read_lines(target)
        if mode is None:
            raise HtpasswdError(f"{target} does not exist")
        parse_htpasswd("\n".join(lines), str(target))
        kept = [line for line in lines if _entry_user(line) != username]
        if len(kept) == len(lines):
            raise HtpasswdError(f"no user {username!r} in {target}")
        _atomic_write(target, kept, mode)
