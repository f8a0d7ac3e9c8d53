"""Keys at the edge: the key settings, `autodeploy keys`, the directory a verifier reloads, `up`'s local keys, and
the webhook server signing what it publishes."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from streams import catalog
from streams.cli import main
from streams.commands.up_cmds import SIGNING_PROCESSES, signing_environments
from streams.config import REPO_ROOT, ConfigError, KeySettings
from streams.events.ce_wire import from_structured
from streams.events.decoding import RawRecord
from streams.events.key_files import KeyFileError, load_signing_key
from streams.events.signing import DirectoryVerifier, signed_record
from streams.events.verification_errors import CoreDigestMismatch, SignatureRequired, UnknownKey
from streams.webhooks.server import WebhookServer
from tests.support.fixtures import FIXTURES
from tests.support.signing import FORGER, TEST_KEY, directory_entry, write_directory
from tests.support.webhooks import AppClient, MemoryPublisher, github_delivery
from tests.unit.test_webhook_server import settings

CAT = catalog.load(REPO_ROOT / "topics" / "catalog.yaml")
NOW = datetime.now(UTC)


def _raw(value: bytes) -> RawRecord:
    return RawRecord("github.events", 0, 0, None, value, (("content-type", b"application/cloudevents+json"),))


# -- settings -------------------------------------------------------------------------------------------------------


def test_key_settings_from_the_environment() -> None:
    keys = KeySettings.from_env({"AUTODEPLOY_SIGNING_KEY": "/keys/webhooks-2027.pem", "AUTODEPLOY_KEY_DIRECTORY": "/d"})
    assert keys.signing_key == Path("/keys/webhooks-2027.pem")
    assert keys.signing_key_id == "webhooks-2027"  # the file's stem unless AUTODEPLOY_SIGNING_KEY_ID says otherwise
    assert keys.directory == Path("/d")
    assert (
        KeySettings.from_env({"AUTODEPLOY_SIGNING_KEY": "/k.pem", "AUTODEPLOY_SIGNING_KEY_ID": "x"}).signing_key_id
        == "x"
    )


def test_without_keys_a_process_refuses_to_start_unless_told_to_run_unsigned() -> None:
    with pytest.raises(ConfigError, match="AUTODEPLOY_SIGNING_KEY"):
        KeySettings.from_env({}).check(signs=True, verifies=False)
    with pytest.raises(ConfigError, match="AUTODEPLOY_KEY_DIRECTORY"):
        KeySettings.from_env({"AUTODEPLOY_SIGNING_KEY": "/k.pem"}).check(signs=True, verifies=True)
    KeySettings.from_env({"AUTODEPLOY_INSECURE_NO_SIGNATURES": "1"}).check(signs=True, verifies=True)


def test_the_key_is_never_in_a_repr(tmp_path: Path) -> None:
    main(["keys", "generate", "k1", "--out", str(tmp_path / "k1.pem")])
    key = load_signing_key(tmp_path / "k1.pem", "k1")
    assert "PRIVATE" not in repr(key) and "k1" in repr(key)


# -- autodeploy keys -----------------------------------------------------------------------------------------------


def test_keys_generate_writes_a_private_file_and_adds_its_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "directory.yaml"
    argv = ["keys", "generate", "webhooks-1", "--out", str(tmp_path / "w.pem"), "--directory", str(directory)]
    assert main([*argv, "--source", "github.com/*", "--type", "com.github.*"]) == 0
    mode = stat.S_IMODE(os.stat(tmp_path / "w.pem").st_mode)
    assert mode == 0o600
    printed = yaml.safe_load(capsys.readouterr().out)
    entry = printed["keys"][0]
    assert entry["id"] == "webhooks-1" and "BEGIN PUBLIC KEY" in entry["public_key"]
    assert "PRIVATE" not in json.dumps(printed)
    assert yaml.safe_load(directory.read_text())["keys"] == [entry]
    assert main(argv) == 1, "an existing key file is never overwritten"


def test_keys_list_revoke_and_expire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "d.yaml"
    for key_id in ("old", "new"):
        main(["keys", "generate", key_id, "--out", str(tmp_path / f"{key_id}.pem"), "--directory", str(directory)])
    main(["keys", "expire", "old", "--at", "2027-01-01T00:00:00Z", "--directory", str(directory)])
    main(["keys", "revoke", "new", "--at", "2020-01-01T00:00:00Z", "--directory", str(directory)])
    capsys.readouterr()
    assert main(["keys", "list", "--directory", str(directory)]) == 0
    lines = capsys.readouterr().out.splitlines()
    old = next(line for line in lines if line.startswith("old"))
    new = next(line for line in lines if line.startswith("new"))
    assert "2027-01-01" in old and new.endswith("revoked")
    assert "every event" in lines[-1]


def test_keys_rotate_adds_the_new_key_ends_the_old_one_after_the_grace_and_says_what_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "d.yaml"
    old = ["keys", "generate", "worker-1", "--out", str(tmp_path / "w1.pem"), "--directory", str(directory)]
    main([*old, "--source", "/autodeploy/readiness", "--type", "dev.cdeventsx.autodeploy-readiness.*"])
    capsys.readouterr()
    argv = ["keys", "rotate", "worker-1", "worker-2", "--out", str(tmp_path / "w2.pem"), "--directory", str(directory)]
    assert main([*argv, "--at", "2027-01-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert stat.S_IMODE(os.stat(tmp_path / "w2.pem").st_mode) == 0o600
    entries = {k["id"]: k for k in yaml.safe_load(directory.read_text())["keys"]}
    new, previous = entries["worker-2"], entries["worker-1"]
    assert (new["sources"], new["types"]) == (previous["sources"], previous["types"]), "the old key's rights"
    assert str(new["not_before"]).startswith("2027-01-01") and "BEGIN PUBLIC KEY" in new["public_key"]
    assert str(previous["not_after"]).startswith("2027-01-02"), "the default grace: a day"
    assert "left to do:" in out and "autodeploy-signing-<process>" in out and "key-id = worker-2" in out
    assert "PRIVATE" not in out

    load_signing_key(tmp_path / "w2.pem", "worker-2")
    DirectoryVerifier(directory)  # the directory still loads
    with pytest.raises(SystemExit, match=r"is in .* already"):
        main(argv)
    missing = ["keys", "rotate", "nope", "x", "--out", str(tmp_path / "x.pem"), "--directory", str(directory)]
    with pytest.raises(SystemExit, match="no key 'nope'"):
        main(missing)
    assert not (tmp_path / "x.pem").exists(), "nothing written when the old key is unknown"


def rotate(directory: Path, old: str, new: str, *extra: str) -> int:
    out = directory.parent / f"{new}.pem"
    at = ["--at", "2027-01-01T00:00:00Z"]
    return main(["keys", "rotate", old, new, "--directory", str(directory), "--out", str(out), *at, *extra])


def test_keys_rotate_never_lengthens_the_old_keys_life_and_takes_a_grace(tmp_path: Path) -> None:
    directory = tmp_path / "d.yaml"
    main(["keys", "generate", "a", "--out", str(tmp_path / "a.pem"), "--directory", str(directory)])
    main(["keys", "expire", "a", "--at", "2027-01-01T01:00:00Z", "--directory", str(directory)])
    assert rotate(directory, "a", "b", "--grace", "2h") == 0
    assert rotate(directory, "b", "c", "--grace", "30m") == 0
    entries = {k["id"]: k for k in yaml.safe_load(directory.read_text())["keys"]}
    assert "T01:00:00" in str(entries["a"]["not_after"]), "ended earlier already: kept"
    assert "T00:30:00" in str(entries["b"]["not_after"])
    with pytest.raises(SystemExit, match="--grace"):
        rotate(directory, "c", "d", "--grace", "soon")


# -- the directory a verifier reloads ------------------------------------------------------------------------------


def test_a_verifier_reloads_the_directory_when_its_file_changes(tmp_path: Path) -> None:
    path = write_directory(tmp_path / "d.yaml")
    clock = [0.0]
    verifier = DirectoryVerifier(path, reload_interval_s=1.0, clock=lambda: clock[0])
    event = github_event()
    forged = signed_record(event, "github.events", FORGER).value
    with pytest.raises(UnknownKey):
        verifier.verify_record(_raw(forged), NOW)
    write_directory(path, directory_entry(TEST_KEY), directory_entry(FORGER))
    os.utime(path, ns=(1, 10**18))  # a later mtime, even on a coarse clock
    with pytest.raises(UnknownKey):
        verifier.verify_record(_raw(forged), NOW)  # not looked at again yet
    clock[0] = 2.0
    assert verifier.verify_record(_raw(forged), NOW) is not None  # no restart
    path.write_text("keys: [oops")  # half-written: the last good directory stays
    os.utime(path, ns=(1, 2 * 10**18))
    clock[0] = 4.0
    assert verifier.verify_record(_raw(forged), NOW) is not None


def test_without_rules_every_event_must_be_signed(tmp_path: Path) -> None:
    verifier = DirectoryVerifier(write_directory(tmp_path / "d.yaml"))
    unsigned = signed_record(github_event(), "github.events", None).value
    with pytest.raises(SignatureRequired):
        verifier.verify_record(_raw(unsigned), NOW)


# -- autodeploy up ---------------------------------------------------------------------------------------------------


def test_up_generates_a_key_per_signing_process_and_a_directory(tmp_path: Path) -> None:
    envs = signing_environments({}, tmp_path / "keys")
    directory = Path(envs[""]["AUTODEPLOY_KEY_DIRECTORY"])
    ids = [k["id"] for k in yaml.safe_load(directory.read_text())["keys"]]
    assert ids == [f"local-{p}" for p in SIGNING_PROCESSES]
    for process in SIGNING_PROCESSES:
        key_file = Path(envs[process]["AUTODEPLOY_SIGNING_KEY"])
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        load_signing_key(key_file, envs[process]["AUTODEPLOY_SIGNING_KEY_ID"])
    again = signing_environments({}, tmp_path / "keys")  # the next `up` keeps the keys
    assert again["webhooks"] == envs["webhooks"]
    assert signing_environments({"AUTODEPLOY_KEY_DIRECTORY": "/mine.yaml"}, tmp_path / "other") == {}


def test_a_bad_key_file_names_the_file_not_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_text("not a key")
    with pytest.raises(KeyFileError, match=r"k\.pem") as caught:
        load_signing_key(path, "k")
    assert "not a key" not in str(caught.value)


# -- the webhook server signs ---------------------------------------------------------------------------------------

PUSH = json.loads((FIXTURES / "github" / "push.with-new-branch.payload.json").read_text())


def github_event() -> object:
    from streams.domain.webhook_mapping import github_attributes  # noqa: PLC0415
    from streams.webhooks.provider_events import provider_event  # noqa: PLC0415

    body = json.dumps(PUSH, indent=1).encode()
    return provider_event(github_attributes("push", PUSH), "d-1", body, NOW)


def _signing_client(publisher: MemoryPublisher) -> AppClient:
    return AppClient(WebhookServer(settings(), CAT, publisher, signer=TEST_KEY).app())


def test_the_webhook_server_signs_without_changing_the_payload_bytes(tmp_path: Path) -> None:
    publisher = MemoryPublisher()
    client = _signing_client(publisher)
    delivery = github_delivery("push", PUSH, delivery="d-7")
    status, body, _ = client.post(delivery)
    client.close()
    assert status == 200, body
    value = publisher.records[0].value
    assert from_structured(value).data == delivery.body  # the provider's bytes, exactly as received
    verifier = DirectoryVerifier(write_directory(tmp_path / "d.yaml"))
    verified = verifier.verify_record(_raw(value), NOW)
    assert verified is not None and verified.key_id == TEST_KEY.key_id
    tampered = value.replace(b'"ref"', b'"ref" ', 1)
    with pytest.raises(CoreDigestMismatch):
        verifier.verify_record(_raw(tampered), NOW)


def _cdevent() -> dict[str, object]:
    data = json.loads((FIXTURES / "cdevents" / "spec-v0.5.1" / "conformance" / "pipelinerun_finished.json").read_text())
    data["customData"] = {"repository": "github.com/acme/shop", "commit": "a" * 40}
    return data


AUTH = {"Authorization": "Bearer events-test-token"}
BASE = {"specversion": "1.0", "type": "dev.cdevents.pipelinerun.finished.0.3.0", "source": "https://ci.example/x"}


def test_events_the_server_signs_those_posted_unsigned_and_keeps_a_producers_signature(tmp_path: Path) -> None:
    from streams.events.ce_wire import with_material_structured  # noqa: PLC0415
    from streams.events.verifiability import sign  # noqa: PLC0415

    publisher = MemoryPublisher()
    client = _signing_client(publisher)
    structured = json.dumps({**BASE, "id": "s-1", "datacontenttype": "application/json", "data": _cdevent()}).encode()
    assert (
        client.request("POST", "/events", structured, {**AUTH, "Content-Type": "application/cloudevents+json"})[0]
        == 200
    )
    # A producer with its own key signs its event (data spaced its way): the server passes it on as it was signed.
    own = json.dumps({**BASE, "id": "s-2", "datacontenttype": "application/json", "data": _cdevent()}, indent=2)
    own_signed = with_material_structured(own.encode(), sign(from_structured(own.encode()), FORGER))
    status, answer, _ = client.request(
        "POST", "/events", own_signed, {**AUTH, "Content-Type": "application/cloudevents+json"}
    )
    assert status == 200, answer
    batch = json.dumps([json.loads(own_signed)]).encode()
    status, answer, _ = client.request(
        "POST", "/events", batch, {**AUTH, "Content-Type": "application/cloudevents-batch+json"}
    )
    assert status == 400 and "one per request" in answer["error"]
    client.close()
    verifier = DirectoryVerifier(
        write_directory(tmp_path / "d.yaml", directory_entry(TEST_KEY), directory_entry(FORGER))
    )
    ours, theirs = (verifier.verify_record(_raw(r.value), NOW) for r in publisher.records)
    assert ours is not None and ours.key_id == TEST_KEY.key_id
    assert theirs is not None and theirs.key_id == FORGER.key_id  # not re-signed over
