"""Every Kafka client's security settings come from one place (streams/config.py's KafkaSecurity)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import build_parser
from streams.config import ConfigError, KafkaSecurity, LocalSettings, Settings
from streams.worker.app import faust_credentials


def test_unset_is_plaintext_as_before() -> None:
    security = KafkaSecurity.from_env({})
    assert security.librdkafka() == {"security.protocol": "PLAINTEXT"}
    assert not Settings.from_env({}).kafka_security_configured
    assert faust_credentials(security) == {}


def test_sasl_with_a_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    env = {
        "KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
        "KAFKA_SASL_USERNAME": "autodeploy-worker",
        "KAFKA_SASL_PASSWORD_FILE": str(secret),
    }
    security = KafkaSecurity.from_env(env)
    assert security.librdkafka() == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "autodeploy-worker",
        "sasl.password": "s3cret",
    }
    assert security.principal == "User:autodeploy-worker"
    assert "s3cret" not in repr(security) and "s3cret" not in repr(Settings.from_env(env))
    credentials = faust_credentials(security)["broker_credentials"]
    assert (credentials.username, credentials.password, credentials.mechanism.value) == (
        "autodeploy-worker",
        "s3cret",
        "SCRAM-SHA-512",
    )
    assert credentials.ssl_context is None and credentials.protocol.value == "SASL_PLAINTEXT"


def test_sasl_ssl_gives_faust_a_tls_context() -> None:
    env = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
    credentials = faust_credentials(KafkaSecurity.from_env(env))["broker_credentials"]
    assert credentials.protocol.value == "SASL_SSL" and credentials.ssl_context is not None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "must be one of"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "needs KAFKA_SASL_USERNAME"),
        ({"KAFKA_SASL_USERNAME": "u"}, "KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_MECHANISM": "GSSAPI"},
            "KAFKA_SASL_MECHANISM",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "p",
                "KAFKA_SASL_PASSWORD_FILE": "/x",
            },
            "not both",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD_FILE": "/nope"},
            "KAFKA_SASL_PASSWORD_FILE /nope",
        ),
    ],
)
def test_mistakes_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KafkaSecurity.from_env(env)


@pytest.mark.parametrize(
    ("value", "secure"),
    [(None, True), ("", True), ("1", True), ("yes", True), ("0", False), ("false", False), (" No ", False)],
)
def test_the_local_broker_is_secured_unless_the_setting_says_no(value: str | None, secure: bool) -> None:
    env = {} if value is None else {"AUTODEPLOY_KAFKA_SECURE": value}
    assert LocalSettings.from_env(env).kafka_secure is secure


@pytest.mark.parametrize("command", [["kafka", "up"], ["up"]])
@pytest.mark.parametrize(("flags", "secure"), [([], None), (["--insecure"], False), (["--secure"], True)])
def test_insecure_is_the_flag_and_secure_the_default(command: list[str], flags: list[str], secure: bool | None) -> None:
    # None: neither flag, so kafka.up() asks AUTODEPLOY_KAFKA_SECURE (secured unless it says no).
    assert build_parser().parse_args([*command, *flags]).secure is secure


def test_insecure_and_secure_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["kafka", "up", "--insecure", "--secure"])
    assert "not allowed with argument" in capsys.readouterr().err
