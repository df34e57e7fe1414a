"""`dagwright operator`'s Redis flags: a mistake is one line and exit code 2 at start-up, not a failure later in
every node pod or a traceback in the progress feed."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagwright.cli import main
from dagwright.cli.operator import redis_settings
from dagwright.k8s import admission


@pytest.fixture(autouse=True)
def _no_redis_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DAGWRIGHT_REDIS_URL", "DAGWRIGHT_REDIS_CA"):
        monkeypatch.delenv(name, raising=False)


def _refusal(capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    assert main(["operator", "--no-leader-election", *flags]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    return stderr


def test_a_ca_with_a_plaintext_url_is_refused_naming_the_flag_and_never_printing_the_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "redis://:hunter2@redis.infra:6379/0"
    stderr = _refusal(capsys, "--redis-url", url, "--redis-ca-configmap", "redis-ca")
    assert "--redis-ca-configmap is for TLS" in stderr and "rediss://" in stderr
    assert "hunter2" not in stderr


def test_a_ca_without_a_redis_url_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--redis-ca-configmap needs --redis-url" in _refusal(capsys, "--redis-ca-configmap", "redis-ca")


def test_an_invalid_configmap_name_is_refused_before_any_job_is(capsys: pytest.CaptureFixture[str]) -> None:
    stderr = _refusal(capsys, "--redis-url", "rediss://r:6380/0", "--redis-ca-configmap", "Redis_CA")
    assert "'Redis_CA': not a valid ConfigMap name" in stderr


def test_a_missing_or_non_pem_ca_file_is_refused_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.crt"
    stderr = _refusal(capsys, "--redis-url", "rediss://r:6380/0", "--redis-ca-file", str(missing))
    assert f"{missing}: No such file or directory" in stderr

    garbage = tmp_path / "ca.crt"
    garbage.write_text("not a certificate\n")
    monkeypatch.setenv("DAGWRIGHT_REDIS_CA", str(garbage))  # as the chart sets it
    assert f"{garbage}: no PEM certificate in it" in _refusal(capsys, "--redis-url", "rediss://r:6380/0")


def test_valid_tls_settings_hand_node_pods_the_configmap(tmp_path: Path) -> None:
    certificate, _ = admission.self_signed(["127.0.0.1"])
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(certificate)
    settings = redis_settings("rediss://r:6380/0", "redis-auth", "redis-ca", str(ca_file))
    assert settings is not None
    assert (settings.ca_configmap, settings.password_secret) == ("redis-ca", "redis-auth")
    assert redis_settings(None, "redis-auth", None, None) is None  # no URL: no Redis, as before
