"""Where the operator finds the API server and its credentials, without the kubernetes package.

What matters to a user: an operator in a pod authenticates with its service account and keeps working when the
projected token rotates; one run from a laptop uses the kubeconfig's current context as kubectl would (merged
files, relative paths, tokens, client certificates, basic auth), and an exec-plugin kubeconfig still works
(through the kubernetes package). The e2e suites run the operator with the local plane's kubeconfig (a token
and a CA file).
"""

from __future__ import annotations

import base64
import http.server
import json
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dagwright.k8s import connection, leader
from dagwright.k8s.connection import ApiError, ConfigError, Connection, Credentials


def _service_account(root: Path, token: str = "first") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "token").write_text(token + "\n")
    (root / "ca.crt").write_text("not read here")
    return root


SERVICE_ENV = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_in_a_pod_it_dials_the_service_address_with_the_service_accounts_token_and_ca(tmp_path: Path) -> None:
    root = _service_account(tmp_path / "sa")
    found = connection.in_cluster_credentials(root, SERVICE_ENV)
    assert found is not None
    assert found.server == "https://10.0.0.1:443"
    assert found.ca_file == str(root / "ca.crt")
    assert found.headers() == {"Authorization": "Bearer first"}


def test_a_rotated_service_account_token_is_used_once_the_cached_headers_expire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _service_account(tmp_path / "sa")
    found = connection.in_cluster_credentials(root, SERVICE_ENV)
    assert found is not None
    clock = [1000.0]
    monkeypatch.setattr(connection.time, "monotonic", lambda: clock[0])
    connected = Connection(found)
    assert connected.headers() == {"Authorization": "Bearer first"}
    (root / "token").write_text("second")  # the kubelet rotates the projected token
    clock[0] += 10
    assert connected.headers() == {"Authorization": "Bearer first"}  # read at most every 30 s
    clock[0] += 30
    assert connected.headers() == {"Authorization": "Bearer second"}


def test_outside_a_pod_there_are_no_in_cluster_credentials(tmp_path: Path) -> None:
    assert connection.in_cluster_credentials(tmp_path / "absent", SERVICE_ENV) is None
    assert connection.in_cluster_credentials(_service_account(tmp_path / "sa"), {}) is None


def test_an_ipv6_service_address_is_bracketed(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    found = connection.in_cluster_credentials(_service_account(tmp_path / "sa"), env)
    assert found is not None and found.server == "https://[fd00::1]:6443"


def _kubeconfig(path: Path, current: str | None, clusters: dict[str, Any], users: dict[str, Any]) -> Path:
    contexts = [{"name": name, "context": {"cluster": name, "user": name}} for name in clusters]
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster} for name, cluster in clusters.items()],
        "users": [{"name": name, "user": user} for name, user in users.items()],
        "contexts": contexts,
    }
    if current:
        config["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_kubeconfigs_current_context_with_a_token_and_a_ca_relative_to_its_file(tmp_path: Path) -> None:
    config = _kubeconfig(
        tmp_path / "kube" / "config",
        "dev",
        {"dev": {"server": "https://dev:6443", "certificate-authority": "ca.crt"}, "prod": {"server": "https://p"}},
        {"dev": {"token": "abc"}, "prod": {"token": "nope"}},
    )
    found = connection.kubeconfig_credentials({"KUBECONFIG": str(config)})
    assert found.server == "https://dev:6443"
    assert found.ca_file == str(tmp_path / "kube" / "ca.crt")
    assert found.headers() == {"Authorization": "Bearer abc"}


def test_several_kubeconfigs_merge_the_first_definition_and_current_context_winning(tmp_path: Path) -> None:
    first = _kubeconfig(tmp_path / "a", "dev", {"dev": {"server": "https://first"}}, {"dev": {"token": "one"}})
    second = _kubeconfig(tmp_path / "b", "other", {"dev": {"server": "https://second"}}, {"dev": {"token": "two"}})
    found = connection.kubeconfig_credentials({"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{second}"})
    assert (found.server, found.headers()) == ("https://first", {"Authorization": "Bearer one"})


def test_a_token_file_is_read_at_each_use(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t1\n")
    config = _kubeconfig(tmp_path / "config", "c", {"c": {"server": "https://c"}}, {"c": {"tokenFile": "token"}})
    found = connection.kubeconfig_credentials({"KUBECONFIG": str(config)})
    assert found.headers() == {"Authorization": "Bearer t1"}
    (tmp_path / "token").write_text("t2")
    assert found.headers() == {"Authorization": "Bearer t2"}


def test_inline_client_certificates_go_to_files_only_the_operator_can_read(tmp_path: Path) -> None:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    user = {"client-certificate-data": b64("CERT PEM"), "client-key-data": b64("KEY PEM")}
    cluster = {"server": "https://c", "certificate-authority-data": b64("CA PEM")}
    config = _kubeconfig(tmp_path / "config", "c", {"c": cluster}, {"c": user})
    found = connection.kubeconfig_credentials({"KUBECONFIG": str(config)})
    assert found.ca_data == "CA PEM" and found.headers() == {}
    assert found.cert_file is not None and found.key_file is not None
    assert Path(found.cert_file).read_text() == "CERT PEM" and Path(found.key_file).read_text() == "KEY PEM"
    assert stat.S_IMODE(Path(found.key_file).stat().st_mode) == 0o600
    pool = Connection(found).pool
    assert pool.connection_pool_kw["cert_file"] == found.cert_file
    assert pool.connection_pool_kw["ca_cert_data"] == "CA PEM"
    assert pool.connection_pool_kw["maxsize"] == connection.POOL_SIZE


def test_client_certificate_files_and_basic_auth(tmp_path: Path) -> None:
    user = {"client-certificate": "c.crt", "client-key": "/abs/c.key", "username": "u", "password": "p"}
    config = _kubeconfig(tmp_path / "config", "c", {"c": {"server": "https://c"}}, {"c": user})
    found = connection.kubeconfig_credentials({"KUBECONFIG": str(config)})
    assert (found.cert_file, found.key_file) == (str(tmp_path / "c.crt"), "/abs/c.key")
    assert found.headers() == {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}


def test_a_kubeconfig_without_a_current_context_is_a_clear_error(tmp_path: Path) -> None:
    config = _kubeconfig(tmp_path / "config", None, {"c": {"server": "https://c"}}, {"c": {}})
    with pytest.raises(ConfigError, match="no current context"):
        connection.kubeconfig_credentials({"KUBECONFIG": str(config)})
    with pytest.raises(ConfigError, match="'gone' is not defined"):
        _kubeconfig(tmp_path / "config", "gone", {"c": {"server": "https://c"}}, {"c": {}})
        connection.kubeconfig_credentials({"KUBECONFIG": str(config)})


def test_an_exec_plugin_kubeconfig_gets_its_token_through_the_kubernetes_package(tmp_path: Path) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "from-the-plugin"},
    }
    plugin = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": sys.executable,
        "args": ["-c", f"print({json.dumps(json.dumps(credential))})"],
        "interactiveMode": "Never",
    }
    config = _kubeconfig(tmp_path / "config", "c", {"c": {"server": "https://c"}}, {"c": {"exec": plugin}})
    found = connection.kubeconfig_credentials({"KUBECONFIG": str(config)})
    assert found.server == "https://c"
    assert found.headers() == {"Authorization": "Bearer from-the-plugin"}


class _Server(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None, bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append((self.command, self.path, self.headers.get("Authorization"), self.rfile.read(length)))
        status, body = (
            (404, {"kind": "Status", "message": 'leases "x" not found'})
            if "missing" in self.path
            else (
                200,
                {"ok": True},
            )
        )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *_: Any) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    _Server.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_requests_carry_the_credentials_and_failures_are_api_errors(server: str) -> None:
    connected = Connection(Credentials(server=server + "/", token="tok"))
    assert connected.request("POST", "/apis/x", query={"a": "b c"}, body={"n": 1}) == {"ok": True}
    assert _Server.seen[-1] == ("POST", "/apis/x?a=b+c", "Bearer tok", b'{"n":1}')
    with pytest.raises(ApiError) as raised:
        connected.request("GET", "/apis/missing")
    assert raised.value.status == 404
    assert str(raised.value) == '(404) Not Found: leases "x" not found'
    assert raised.value.headers["Content-Type"] == "application/json"


def test_kopf_logs_in_with_the_same_server_and_credentials() -> None:
    info = connection.login_info(Connection(Credentials(server="https://c", ca_file="/ca", token="tok")))
    assert (info.server, info.ca_path, info.scheme, info.token) == ("https://c", "/ca", "Bearer", "tok")


def test_lease_times_round_trip_as_the_api_server_writes_them() -> None:
    moment = leader._time("2026-11-30T04:12:30.123456Z")
    assert moment is not None and leader._micro_time(moment) == "2026-11-30T04:12:30.123456Z"
    assert leader._time("2026-11-30T04:12:30Z") is not None
    assert leader._time(None) is None
