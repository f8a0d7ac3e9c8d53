"""`autodeploy keys`: signing keys and the key directory (docs/security.md#signed-events).

`generate` writes a private key file (0600) and prints its public entry, or adds it to a directory file; `list`
shows the directory; `revoke` and `expire` end a key's validity, for a rotation or a leak; `rotate` is a rotation in
one command (a new key beside the old one, the old one's end after a grace period) and prints the steps left.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from streams.adapters.key_directory_file import load_key_directory, read_key_document, write_key_document
from streams.config import KeySettings
from streams.domain.key_document import KeyDirectoryError
from streams.domain.policy_document import parse_duration
from streams.events.dsse_keys import SigningKey
from streams.events.key_files import generate_key_file, load_signing_key, public_pem
from streams.events.signing import DirectoryVerifier

log = logging.getLogger(__name__)

# How long the old key stays valid after a rotation's new key does: time to publish the directory to every verifier
# (a mounted ConfigMap within about a minute, then one reload interval), to switch the signer's Secret and roll its
# pods, and for records signed just before the switch to be appended; with a day's margin for a rotation done by hand.
ROTATION_GRACE = "1d"

# What each of autodeploy's signing processes publishes: the directory entry `autodeploy up` writes for it.
PROCESS_RIGHTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "webhooks": (("*",), ("*",)),  # provider events of any source (github.com/..., circleci) and /events
    "worker": (("/autodeploy/readiness",), ("dev.cdeventsx.autodeploy-readiness.*",)),
    "deploy-agent": (
        ("/autodeploy/deploy-agent",),
        # Outcomes and gate facts (service.*), and its verifications of an environment (testsuiterun.finished).
        ("dev.cdevents.service.*", "dev.cdeventsx.autodeploy-deployment.*", "dev.cdevents.testsuiterun.finished.*"),
    ),
}


def register(sub: Any) -> None:
    parser = sub.add_parser("keys", help="signing keys and the key directory: generate, list, revoke, expire, rotate")
    keys = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = keys.add_parser("generate", help="write a private key file (0600) and print its directory entry")
    generate.add_argument("key_id", help="the key id its signatures carry, e.g. webhooks-2027-01")
    generate.add_argument("--out", type=Path, help="the private key file (default ./<key_id>.pem); never overwritten")
    generate.add_argument("--algorithm", choices=("ed25519", "p256"), default="ed25519")
    generate.add_argument("--source", action="append", dest="sources", help="source pattern it may sign (repeat)")
    generate.add_argument("--type", action="append", dest="types", help="type pattern it may sign (repeat)")
    generate.add_argument("--not-before", help="RFC 3339 time the key becomes valid (default: at once)")
    generate.add_argument(
        "--directory", type=Path, help="also add the entry to this key directory file (created if missing)"
    )
    generate.set_defaults(handler=run_generate)
    listing = keys.add_parser("list", help="the key directory: ids, what each may sign, validity, revocation")
    listing.add_argument("--directory", type=Path, help="the file (default $AUTODEPLOY_KEY_DIRECTORY)")
    listing.set_defaults(handler=run_list)
    rotate = keys.add_parser(
        "rotate",
        help="add a new key valid from now (or --at) and end the old one after a grace period; prints the steps left",
    )
    rotate.add_argument("old_key_id", help="the key being replaced, e.g. webhooks-2027-01")
    rotate.add_argument("new_key_id", help="the new key's id, e.g. webhooks-2027-07")
    rotate.add_argument("--out", type=Path, help="the new private key file (default ./<new_key_id>.pem)")
    rotate.add_argument("--algorithm", choices=("ed25519", "p256"), default="ed25519")
    rotate.add_argument("--at", help="RFC 3339 time the new key becomes valid (default: now)")
    rotate.add_argument(
        "--grace",
        default=ROTATION_GRACE,
        help=f"the old key stays valid this long after --at (default {ROTATION_GRACE})",
    )
    rotate.add_argument("--directory", type=Path, help="the file (default $AUTODEPLOY_KEY_DIRECTORY)")
    rotate.set_defaults(handler=run_rotate)
    for action, field, text in (
        ("revoke", "revoked_at", "refuse the key's signatures on records from this time on (a leak)"),
        ("expire", "not_after", "end the key's validity (a rotation: old records stay verifiable)"),
    ):
        end = keys.add_parser(action, help=text)
        end.add_argument("key_id")
        end.add_argument("--at", help="RFC 3339 time (default: now)")
        end.add_argument("--directory", type=Path, help="the file (default $AUTODEPLOY_KEY_DIRECTORY)")
        end.set_defaults(handler=run_end, field=field)


def _directory(args: argparse.Namespace) -> Path:
    path: Path | None = args.directory or KeySettings.from_env().directory
    if path is None:
        raise SystemExit("autodeploy keys: give --directory or set AUTODEPLOY_KEY_DIRECTORY")
    return path


def _time(text: str | None) -> str:
    moment = datetime.fromisoformat(text) if text else datetime.now(UTC).replace(microsecond=0)
    if moment.utcoffset() is None:
        raise SystemExit(f"autodeploy keys: {text!r} needs a timezone (e.g. 2027-01-01T00:00:00Z)")
    return moment.isoformat().replace("+00:00", "Z")


def entry(key_id: str, pem: str, sources: list[str], types: list[str], not_before: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": key_id, "public_key": pem, "sources": sources, "types": types}
    if not_before:
        out["not_before"] = not_before
    return out


def add_entry(directory: Path, new: dict[str, Any]) -> None:
    """Add `new` to the directory file (a new file when there is none), checked before it replaces the file."""
    doc: Any = read_key_document(directory) if directory.exists() else {"keys": []}
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeyDirectoryError(str(directory), "keys", "must be a list")
    doc["keys"].append(new)
    write_key_document(directory, doc)


def run_generate(args: argparse.Namespace) -> int:
    out: Path = args.out or Path(f"{args.key_id}.pem")
    not_before = _time(args.not_before) if args.not_before else None
    key = generate_key_file(out, args.key_id, algorithm=args.algorithm)
    new = entry(args.key_id, public_pem(key), args.sources or ["*"], args.types or ["*"], not_before)
    print(f"private key written to {out} (mode 0600): keep it out of the repository", file=sys.stderr)
    if args.directory is not None:
        add_entry(args.directory, new)
        print(f"entry {args.key_id} added to {args.directory}", file=sys.stderr)
    print(yaml.safe_dump({"keys": [new]}, sort_keys=False, width=200), end="")
    return 0


def run_list(args: argparse.Namespace) -> int:
    trust = load_key_directory(_directory(args))
    now = datetime.now(UTC)
    rows: list[tuple[str, ...]] = [("ID", "SOURCES", "TYPES", "NOT_BEFORE", "NOT_AFTER", "REVOKED_AT", "NOW")]
    for key in trust.keys.entries():
        refusal = key.refusal(key.sources[0], key.types[0], now) if key.sources and key.types else None
        state = "valid" if refusal is None or refusal.value.endswith("_not_allowed") else refusal.value
        rows.append(
            (
                key.key_id,
                ",".join(key.sources),
                ",".join(key.types),
                *(m.isoformat() if m else "-" for m in (key.not_before, key.not_after, key.revoked_at)),
                state,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    rules = trust.policy.rules
    required = ", ".join(f"{r.source} / {r.type}" for r in rules) if rules else "every event (no rules given)"
    print(f"must be signed: {required}")
    return 0


def run_end(args: argparse.Namespace) -> int:
    directory = _directory(args)
    doc = read_key_document(directory)
    keys = doc.get("keys") if isinstance(doc, dict) else None
    found = [k for k in keys or [] if isinstance(k, dict) and k.get("id") == args.key_id]
    if not found:
        raise SystemExit(f"autodeploy keys: no key {args.key_id!r} in {directory}")
    found[0][args.field] = _time(args.at)
    write_key_document(directory, doc)
    print(f"{args.key_id}: {args.field} {found[0][args.field]} in {directory}")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    """The new key gets the old one's rights (sources, types) and `not_before` = --at; the old one's `not_after`
    becomes --at + --grace unless it ends earlier already (a rotation never lengthens a key's life)."""
    directory = _directory(args)
    try:
        grace = parse_duration(args.grace)
    except ValueError as e:
        raise SystemExit(f"autodeploy keys: --grace {e}") from e
    start = _time(args.at)
    end = _time((datetime.fromisoformat(start) + grace).isoformat())
    doc = read_key_document(directory)
    keys = doc.get("keys") if isinstance(doc, dict) else None
    entries = [k for k in keys or [] if isinstance(k, dict)]
    old = next((k for k in entries if k.get("id") == args.old_key_id), None)
    if old is None:
        raise SystemExit(f"autodeploy keys: no key {args.old_key_id!r} in {directory}")
    if any(k.get("id") == args.new_key_id for k in entries):
        raise SystemExit(f"autodeploy keys: {args.new_key_id!r} is in {directory} already")
    out: Path = args.out or Path(f"{args.new_key_id}.pem")
    key = generate_key_file(out, args.new_key_id, algorithm=args.algorithm)  # never overwrites: nothing changed yet
    sources, types = list(old.get("sources") or ["*"]), list(old.get("types") or ["*"])
    doc["keys"].append(entry(args.new_key_id, public_pem(key), sources, types, start))
    if not _ends_before(old.get("not_after"), end):
        old["not_after"] = end
    write_key_document(directory, doc)
    print(f"private key written to {out} (mode 0600): keep it out of the repository", file=sys.stderr)
    print(f"{args.new_key_id}: added to {directory}, valid from {start}, may sign what {args.old_key_id} may")
    print(f"{args.old_key_id}: not_after {old['not_after']} (grace {args.grace})")
    print("left to do:")
    for number, step in enumerate(_rotation_steps(args.old_key_id, args.new_key_id, out, directory, old), 1):
        print(f"  {number}. {step}")
    return 0


def _ends_before(not_after: object, end: str) -> bool:
    """The old entry's `not_after` (as the file has it) is earlier than `end` already."""
    if not_after is None:
        return False
    moment = not_after if isinstance(not_after, datetime) else datetime.fromisoformat(str(not_after))
    return moment.replace(tzinfo=moment.tzinfo or UTC) < datetime.fromisoformat(end)


def _rotation_steps(old_id: str, new_id: str, out: Path, directory: Path, old: dict[str, Any]) -> list[str]:
    return [
        f"publish {directory} to every verifier (in Kubernetes: the ConfigMap autodeploy-keys, "
        "k8s/base/config/keys.yaml); they reload it in place, no restart",
        f"before {old['not_after']}: give the signer its new key: the Secret autodeploy-signing-<process> with "
        f"key.pem = {out} and key-id = {new_id} (locally AUTODEPLOY_SIGNING_KEY, AUTODEPLOY_SIGNING_KEY_ID), "
        "then restart it; events it signs with the old key after that time are refused",
        f"delete the old private key wherever it was kept; keep {old_id}'s entry in the directory as long as events "
        "signed with it are kept (they stay verifiable), then remove it",
    ]


def local_keys(directory_of_keys: Path, processes: tuple[str, ...]) -> tuple[Path, dict[str, Path]]:
    """`autodeploy up`'s keys: one private key per signing process in `directory_of_keys` (kept across runs), and a
    key directory file naming each with what it may sign. Returns the directory file and each process's key file."""
    files: dict[str, Path] = {}
    entries = []
    for process in processes:
        key_id = f"local-{process}"
        path = directory_of_keys / f"{key_id}.pem"
        key = load_signing_key(path, key_id) if path.exists() else generate_key_file(path, key_id)
        files[process] = path
        sources, types = PROCESS_RIGHTS[process]
        entries.append(entry(key_id, public_pem(key), list(sources), list(types), None))
    directory = directory_of_keys / "directory.yaml"
    write_key_document(directory, {"keys": entries})
    return directory, files


def signer_of(keys: KeySettings) -> SigningKey | None:
    """The signing key of a process that only publishes (the webhook server; `autodeploy unblock`, with the deploy
    agent's key); ConfigError without one unless AUTODEPLOY_INSECURE_NO_SIGNATURES is set (logged as an error)."""
    keys.check(signs=True, verifies=False)
    return _signer(keys)


def keys_of(keys: KeySettings) -> tuple[SigningKey | None, DirectoryVerifier | None]:
    """The signing key and the verifier of a process that signs and verifies (the worker, the deploy agent);
    ConfigError without them unless AUTODEPLOY_INSECURE_NO_SIGNATURES is set (logged as an error)."""
    keys.check(signs=True, verifies=True)
    signer = _signer(keys)
    if keys.directory is None:
        log.error("ACCEPTING UNVERIFIED EVENTS: AUTODEPLOY_INSECURE_NO_SIGNATURES is set and no key directory")
        return signer, None
    return signer, DirectoryVerifier(keys.directory, reload_interval_s=keys.reload_interval_s)


def verifier_of(keys: KeySettings) -> DirectoryVerifier | None:
    """The verifier of a command that only reads events (`replay`); ConfigError without a key directory unless
    AUTODEPLOY_INSECURE_NO_SIGNATURES is set."""
    keys.check(signs=False, verifies=True)
    if keys.directory is None:
        log.error("ACCEPTING UNVERIFIED EVENTS: AUTODEPLOY_INSECURE_NO_SIGNATURES is set and no key directory")
        return None
    return DirectoryVerifier(keys.directory, reload_interval_s=keys.reload_interval_s)


def _signer(keys: KeySettings) -> SigningKey | None:
    """The configured key, loaded; None (said loudly) when `check` let signatures be off on purpose."""
    if keys.signing_key is None:
        log.error("PUBLISHING UNSIGNED EVENTS: AUTODEPLOY_INSECURE_NO_SIGNATURES is set; verifiers will refuse them")
        return None
    signer = load_signing_key(keys.signing_key, keys.signing_key_id)
    log.info("signing events key_id=%s", signer.key_id)
    return signer
