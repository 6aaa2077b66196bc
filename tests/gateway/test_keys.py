"""The key store and `python -m gateway keys`, and a gateway that listens publicly only
with keys."""

import base64
import hashlib

import pytest

from gateway import keys
from gateway.__main__ import main


def credentials(key):
    assert key.startswith("gw_") and "=" not in key
    return base64.b64decode(key[3:]).decode().split(":", 1)


def test_a_key_names_its_client_and_its_hash_checks_out(tmp_path):
    path = tmp_path / "api-keys"
    key = keys.add_key(path, "alice")
    name, secret = credentials(key)

    [stored] = keys.read_store(path)
    assert (stored.name, stored.client, stored.admin) == (name, "alice", False)
    assert len(secret) >= 43  # 256 bits of token_urlsafe
    # The {SSHA} line is what Nginx's auth_basic checks: sha1(secret + salt) + salt.
    line = next(line for line in path.read_text().splitlines() if line.startswith(name))
    raw = base64.b64decode(line.split(":")[1].removeprefix("{SSHA}"))
    assert hashlib.sha1(secret.encode() + raw[20:]).digest() == raw[:20]
    assert secret not in path.read_text()


def test_admin_keys_say_so_in_their_name(tmp_path):
    name, _ = credentials(keys.add_key(tmp_path / "api-keys", "ops", admin=True))

    assert name.startswith("ops.") and name.endswith(".admin")
    assert keys.read_store(tmp_path / "api-keys")[0].admin


def test_revoking_a_client_revokes_each_of_its_keys_and_no_other(tmp_path):
    path = tmp_path / "api-keys"
    keys.add_key(path, "alice")
    keys.add_key(path, "alice")  # e.g. while rotating
    bob, _ = credentials(keys.add_key(path, "bob"))

    assert keys.revoke_key(path, "alice") == 2
    assert [stored.name for stored in keys.read_store(path)] == [bob]
    with pytest.raises(keys.KeyStoreError, match="no key named"):
        keys.revoke_key(path, "alice")


@pytest.mark.parametrize("client", ["Alice", "a:b", "", "x" * 49, "../etc"])
def test_a_client_name_is_plain(tmp_path, client):
    with pytest.raises(keys.KeyStoreError, match="client name"):
        keys.add_key(tmp_path / "api-keys", client)


def test_a_file_that_is_not_a_store_is_left_alone(tmp_path):
    path = tmp_path / "api-keys"
    path.write_text("alice:plaintext-password\n")

    with pytest.raises(keys.KeyStoreError, match="not a key line"):
        keys.add_key(path, "bob")
    assert path.read_text() == "alice:plaintext-password\n"


def test_the_command_prints_a_key_once_and_lists_names_only(tmp_path, capsys):
    path = tmp_path / "api-keys"
    assert main(["keys", "--file", str(path), "add", "alice"]) == 0
    key = capsys.readouterr().out.strip()
    assert main(["keys", "--file", str(path), "list"]) == 0
    listing = capsys.readouterr().out

    name, secret = credentials(key)
    assert listing.startswith(f"{name}\t") and listing.rstrip().endswith("client")
    assert secret not in listing and key not in listing


@pytest.mark.parametrize("store", [None, "empty"])
def test_a_public_gateway_refuses_to_start_without_keys(tmp_path, capsys, store):
    arguments = ["up", "--public", "--run-dir", str(tmp_path / "run")]
    if store:
        (tmp_path / "api-keys").write_text(keys.HEADER)
        arguments += ["--api-keys", str(tmp_path / "api-keys")]

    assert main(arguments) == 1
    assert "--public needs API keys" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_run_as_root_the_store_must_be_readable_by_nginxs_workers(tmp_path, capsys,
                                                                  monkeypatch):
    folder = tmp_path / "private"
    keys.add_key(folder / "api-keys", "alice")
    folder.chmod(0o700)
    monkeypatch.setattr("os.geteuid", lambda: 0)  # Nginx's workers then run as nobody

    assert main(["up", "--api-keys", str(folder / "api-keys"),
                 "--run-dir", str(tmp_path / "run")]) == 1
    assert "must be readable by Nginx's workers" in capsys.readouterr().err


def test_with_keys_every_route_but_health_asks_for_one_and_the_public_listener_opens(tmp_path,
                                                                                     capsys):
    path = tmp_path / "api-keys"
    keys.add_key(path, "alice")

    assert main(["config", "--public", "--api-keys", str(path)]) == 0
    config = capsys.readouterr().out
    assert main(["config"]) == 0
    local = capsys.readouterr().out

    # Rendered text only: what each does is shown by tests/integration/test_api_keys.py.
    assert "listen 0.0.0.0:8080 default_server;" in config
    assert "listen 127.0.0.1:8081;" in config
    assert f"auth_basic_user_file {path};" in config
    assert "auth_request /_gateway_auth;" in config and "auth_request off;" not in config
    assert "listen 127.0.0.1:8080 default_server;" in local
    assert "auth_request /_gateway_auth;" not in local
