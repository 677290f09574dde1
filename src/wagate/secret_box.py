"""Secrets at rest (SPEC §10): channel access tokens, app secrets and callback secrets are
sealed with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key kept outside
the database, and opened where they are used.

The key comes from `WAGATE_SECRET_KEY` (one or more Fernet keys, comma-separated: the first
seals, all open, so a rotation can keep the old key working until every value is resealed), or
else from `secret.key` in the data folder, made on first start with mode 0600 (one key a line,
the first seals). A sealed value reads `wgsec1:<fernet token>`; a value without the prefix is
plaintext left from before migration 0007 and is read as it is.

Every read and write of those columns goes through `seal` and `open_secret`. The process has
one keyring: the keys of every configuration it loaded (tests run many data folders in one
process), the last one loaded sealing. Opening is cached by sealed value (bounded), so a
channel read on every webhook or a callback secret on every delivery costs a dictionary lookup,
not a decryption."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from wagate.config import Settings

PREFIX = "wgsec1:"
ENV = "WAGATE_SECRET_KEY"
KEY_FILE = "secret.key"
_OPENED_CACHE = 4096  # sealed value -> plaintext, least recently used dropped first


class SecretKeyError(Exception):
    """The secret key is missing, malformed, or not the one the stored secrets were sealed
    with. The message says what to do; the process should stop rather than send with it."""


def is_sealed(value: str | None) -> bool:
    return value is not None and value.startswith(PREFIX)


def new_key() -> str:
    """A fresh key, as `WAGATE_SECRET_KEY` or `secret.key` holds it."""
    return Fernet.generate_key().decode()


def fingerprint(key: str) -> str:
    """A short name for a key that reveals nothing of it (shown by `wagate secrets status`)."""
    return hashlib.sha256(b"wagate-key-id:" + key.encode()).hexdigest()[:12]


def parse_keys(text: str, *, source: str) -> list[str]:
    keys = [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]
    if not keys:
        raise SecretKeyError(f"{source} holds no key; make one with `wagate secrets new-key`")
    for index, key in enumerate(keys, 1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise SecretKeyError(
                f"{source}: key {index} is not a Fernet key (32 url-safe base64 bytes, 44 "
                "characters); make one with `wagate secrets new-key`"
            ) from None
    return keys


class SecretBox:
    """Seals with the first key; opens with any of them."""

    def __init__(self, keys: Sequence[str], *, source: str) -> None:
        if not keys:
            raise SecretKeyError(f"{source} holds no key")
        self.keys = list(keys)
        self.source = source
        self._fernet = MultiFernet([Fernet(k.encode()) for k in self.keys])
        self._opened: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def primary_fingerprint(self) -> str:
        return fingerprint(self.keys[0])

    def seal(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, stored: str) -> str:
        """The plaintext of a stored value (a value without the prefix is returned as is)."""
        if not stored.startswith(PREFIX):
            return stored
        with self._lock:
            found = self._opened.get(stored)
            if found is not None:
                self._opened.move_to_end(stored)
                return found
        try:
            plaintext = self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret was sealed with another key than "
                f"{self.source} holds; start with the key it was sealed with (restore the "
                f"data folder's {KEY_FILE}, or set {ENV} to it)"
            ) from None
        with self._lock:
            self._opened[stored] = plaintext
            if len(self._opened) > _OPENED_CACHE:
                self._opened.popitem(last=False)
        return plaintext

    def reseal(self, stored: str) -> str:
        """The value sealed with the first key (plaintext is sealed; sealed is re-encrypted)."""
        if not stored.startswith(PREFIX):
            return self.seal(stored)
        try:
            token = self._fernet.rotate(stored[len(PREFIX) :].encode())
        except InvalidToken:
            raise SecretKeyError(
                f"a stored secret cannot be opened with any key of {self.source}; "
                "add the key it was sealed with after the new one"
            ) from None
        return PREFIX + token.decode()

    def with_keys(self, extra: Iterable[str]) -> SecretBox:
        """This box, also able to open values sealed with `extra` keys."""
        keys = self.keys + [k for k in extra if k not in self.keys]
        return SecretBox(keys, source=self.source)


# --------------------------------------------------------------------------- where keys live


def key_file(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Replace the key file atomically, owner-only from the moment it exists."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(keys) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _create_key_file(path: Path) -> None:
    """A new key file, unless another process (an api and a worker starting together) made one
    first: written under a name of its own, then linked into place, which fails if taken."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".secret-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(new_key() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def load(settings: Settings, *, create: bool = True) -> SecretBox:
    """The box for this configuration: `WAGATE_SECRET_KEY`, else the data folder's key file
    (made now when `create` and it does not exist)."""
    from_env = os.environ.get(ENV, "").strip()
    if from_env:
        return SecretBox(parse_keys(from_env, source=ENV), source=ENV)
    path = key_file(settings.data_dir)
    if not path.exists():
        if not create:
            raise SecretKeyError(f"no secret key: {ENV} is not set and {path} does not exist")
        _create_key_file(path)
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return SecretBox(parse_keys(path.read_text(), source=str(path)), source=str(path))


# --------------------------------------------------------------------------- the process's keyring

_active: SecretBox | None = None
_known: list[str] = []
_keyring_lock = threading.Lock()


def install(box: SecretBox) -> SecretBox:
    """Make `box` the process's sealing box; keys loaded before stay able to open."""
    global _active
    with _keyring_lock:
        for key in box.keys:
            if key not in _known:
                _known.append(key)
        if (
            _active is not None
            and _active.keys[0] == box.keys[0]
            and set(_known) <= set(_active.keys)
        ):
            return _active  # keep its cache
        _active = box.with_keys(_known)
        return _active


def configure(settings: Settings) -> SecretBox:
    """Load this configuration's key and make it the process's (every entry point calls it)."""
    return install(load(settings))


def active() -> SecretBox:
    """The process's box; a process that configured none uses `Settings()`'s."""
    if _active is None:
        from wagate.config import Settings

        return configure(Settings())
    return _active


def seal(plaintext: str) -> str:
    return active().seal(plaintext)


def seal_optional(plaintext: str | None) -> str | None:
    return None if plaintext is None else seal(plaintext)


def open_secret(stored: str) -> str:
    return active().open(stored) if stored.startswith(PREFIX) else stored


def open_optional(stored: str | None) -> str | None:
    return None if stored is None else open_secret(stored)
