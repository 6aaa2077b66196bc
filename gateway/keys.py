"""The gateway's API keys: make one, revoke one, list them (`python -m gateway keys`).

The store is a file in the format of Nginx's auth_basic_user_file, which the gateway
reads on every request: a change is in force for the next request, with no reload.
Each line is `<client>.<key id>[.admin]:{SSHA}<hash>:<created>`; the hash is a salted
SHA-1 of a 256-bit random secret, so the file names clients and never holds a key
(docs/security.md says why a fast hash is enough for such a secret).

A key, as clients send it (`Authorization: Bearer <key>` or `X-API-Key: <key>`), is
`gw_` and the base64 of `<client>.<key id>[.admin]:<secret>`: the gateway hands that
base64 to auth_basic as Basic credentials, so Nginx alone checks every key.
"""

import base64
import datetime
import hashlib
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Where `python -m gateway keys` keeps them unless told (left out of git and images).
DEFAULT_STORE = Path(__file__).resolve().parent.parent / "secrets" / "api-keys"
PREFIX = "gw_"
# The gateway passes the client part on as X-Client-Id, which the logger records.
CLIENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
ADMIN_SUFFIX = ".admin"
HEADER = (
    "# The gateway's API keys (python -m gateway keys): salted hashes, never a key.\n"
    "# <client>.<key id>[.admin]:{SSHA}<hash>:<created>\n"
)


class KeyStoreError(Exception):
    """A key store that cannot be read or changed as asked."""


@dataclass(frozen=True)
class StoredKey:
    name: str  # <client>.<key id>[.admin]
    hashed: str  # {SSHA}...
    created: str

    @property
    def line(self):
        return f"{self.name}:{self.hashed}:{self.created}"

    @property
    def client(self):
        return self.name.split(".", 1)[0]

    @property
    def admin(self):
        return self.name.endswith(ADMIN_SUFFIX)


def hash_secret(secret):
    """The {SSHA} form of a secret that Nginx's auth_basic checks."""
    salt = os.urandom(8)
    digest = hashlib.sha1(secret.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def new_secret(name):
    """A 256-bit secret whose credentials' base64 needs no padding (no '=' in a key)."""
    secret = secrets.token_urlsafe(32)  # 43 characters
    while (len(name) + 1 + len(secret)) % 3:
        secret += secrets.choice("abcdefghijklmnopqrstuvwxyz")
    return secret


def key_for(name, secret):
    return PREFIX + base64.b64encode(f"{name}:{secret}".encode()).decode()


def read_store(path):
    """The keys of a store, oldest first (a missing file holds none)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not parts[1].startswith("{SSHA}"):
            raise KeyStoreError(f"{path}:{number}: not a key line")
        keys.append(StoredKey(*parts))
    return keys


def write_store(path, stored_keys):
    """Replace the store in one rename: Nginx reads either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(HEADER + "".join(stored.line + "\n" for stored in stored_keys))
            file.flush()
            os.fsync(file.fileno())
        # Hashes only: readable by the Nginx workers, which run as another user.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_key(path, client, admin=False):
    """Make a key for client, store its hash, and return the key (shown once, never stored)."""
    if not CLIENT_NAME.fullmatch(client):
        raise KeyStoreError(
            f"client name {client!r}: lowercase letters, digits, '_' and '-', up to 48"
        )
    stored = read_store(path)  # refuses a file that is not a store
    name = f"{client}.{secrets.token_hex(4)}" + (ADMIN_SUFFIX if admin else "")
    secret = new_secret(name)
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    write_store(path, [*stored, StoredKey(name, hash_secret(secret), created)])
    return key_for(name, secret)


def revoke_key(path, name):
    """Remove the key named name (`<client>.<key id>[.admin]`), or every key of a client."""
    stored = read_store(path)
    kept = [key for key in stored if name not in (key.name, key.client)]
    if len(kept) == len(stored):
        raise KeyStoreError(f"no key named {name!r} in {path}")
    write_store(path, kept)
    return len(stored) - len(kept)
