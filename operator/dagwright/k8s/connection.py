"""Where the API server is and how the operator proves who it is: one urllib3 pool, TLS and credential headers.

The operator process does not import the `kubernetes` package: importing it costs ~32 MiB of the operator's
memory (its configuration module pulls in the generated client and its models) only to read a kubeconfig or
the service account's files, which is all this module does. Credentials come, as with the client, from

- the pod's service account (`/var/run/secrets/kubernetes.io/serviceaccount`, with KUBERNETES_SERVICE_HOST and
  KUBERNETES_SERVICE_PORT): the token file is re-read at most every 30 s, since projected tokens rotate;
- else the kubeconfig (KUBECONFIG, several files merged as kubectl does, or ~/.kube/config), its current
  context: a token or tokenFile, a client certificate and key (files or `-data`), or basic auth; relative paths
  are taken relative to the file that names them.

A kubeconfig user with an `exec` plugin or an `auth-provider` (EKS, GKE from a laptop) falls back to the
kubernetes package, imported only then, whose configuration runs the plugin and refreshes its tokens.

kopf's own `login_with_service_account`/`login_with_kubeconfig` are not used: the first reads the token once and
dials `kubernetes.default.svc` (DNS) where the client used the service environment variables, the second
resolves relative paths against the working directory and ignores tokenFile, exec and auth-providers. kopf's
login handler gets its `ConnectionInfo` from here instead (`login_info`), so both use the same credentials.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import urllib3
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
POOL_SIZE = 32  # connections kept per host: reconcile workers, cron workers and watches share the pool
_CREDENTIALS_SECONDS = 30.0  # how long credential headers are reused before being read again
_TIMEOUT = urllib3.Timeout(connect=10.0, read=30.0)

Body = dict[str, Any]


class ConfigError(Exception):
    """Neither a service account nor a usable kubeconfig."""


class ApiError(Exception):
    """The API server answered a request with a status outside 2xx (or an ERROR watch event)."""

    def __init__(
        self, status: int | None, reason: str | None, body: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = dict(headers or {})
        super().__init__(status, reason)

    def __str__(self) -> str:
        message = ""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            message = orjson.loads(self.body).get("message") or ""
        return f"({self.status}) {self.reason}" + (f": {message}" if message else "")


@dataclass(frozen=True)
class Credentials:
    """What to dial and how to authenticate; `headers` is read at each use (tokens rotate)."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None
    token: str | None = None
    token_file: str | None = None
    username: str | None = None
    password: str | None = None
    plugin_headers: Callable[[], dict[str, str]] | None = None  # the kubernetes package's, for exec/auth-provider

    def headers(self) -> dict[str, str]:
        if self.plugin_headers is not None:
            return self.plugin_headers()
        token = self.token
        if self.token_file:
            token = Path(self.token_file).read_text(encoding="utf-8").strip()
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.username and self.password:
            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
            return {"Authorization": f"Basic {basic}"}
        return {}


def load_credentials() -> Credentials:
    """The service account's when in a pod, else the kubeconfig's current context."""
    in_cluster = in_cluster_credentials()
    if in_cluster is not None:
        return in_cluster
    return kubeconfig_credentials()


def in_cluster_credentials(root: Path = SERVICE_ACCOUNT, env: Mapping[str, str] = os.environ) -> Credentials | None:
    """The pod's service account, or None outside a pod (no token file or no service address)."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    token = root / "token"
    if not host or not port or not token.is_file():
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    ca = root / "ca.crt"
    ca_file = str(ca) if ca.is_file() else None
    return Credentials(server=f"https://{host}:{port}", ca_file=ca_file, token_file=str(token))


def kubeconfig_credentials(env: Mapping[str, str] = os.environ) -> Credentials:
    """The current context of the kubeconfig(s); the kubernetes package only for exec plugins and auth-providers."""
    paths = [Path(p).expanduser() for p in env.get("KUBECONFIG", "").split(os.pathsep) if p.strip()]
    if not paths:
        paths = [Path("~/.kube/config").expanduser()]
    current: str | None = None
    sections: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"contexts": {}, "clusters": {}, "users": {}}
    for path in paths:
        if not path.is_file():
            continue
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"kubeconfig {path}: {error}") from error
        current = current or config.get("current-context")
        for section, entries in sections.items():
            field = section[:-1]  # contexts -> context
            for item in config.get(section) or []:
                entries.setdefault(item.get("name", ""), (item.get(field) or {}, path.parent))
    if not current:
        raise ConfigError(f"no service account and no current context in {os.pathsep.join(map(str, paths))}")
    if current not in sections["contexts"]:
        raise ConfigError(f"kubeconfig: context {current!r} is not defined")
    context = sections["contexts"][current][0]
    cluster, cluster_dir = sections["clusters"].get(context.get("cluster", ""), ({}, Path()))
    user, user_dir = sections["users"].get(context.get("user", ""), ({}, Path()))
    if not cluster.get("server"):
        raise ConfigError(f"kubeconfig: context {current!r} has no cluster server")
    if user.get("exec") or user.get("auth-provider"):
        return _client_library_credentials(current, env.get("KUBECONFIG") or "~/.kube/config")

    def path_of(entry: Mapping[str, Any], key: str, base: Path) -> str | None:
        value = entry.get(key)
        return str((base / Path(value).expanduser()).resolve()) if value else None

    def data_of(entry: Mapping[str, Any], key: str) -> str | None:
        value = entry.get(key)
        return base64.b64decode(value).decode("ascii") if value else None

    cert_data, key_data = data_of(user, "client-certificate-data"), data_of(user, "client-key-data")
    return Credentials(
        server=str(cluster["server"]),
        ca_file=path_of(cluster, "certificate-authority", cluster_dir),
        ca_data=data_of(cluster, "certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        proxy_url=cluster.get("proxy-url"),
        cert_file=_private_file(cert_data) if cert_data else path_of(user, "client-certificate", user_dir),
        key_file=_private_file(key_data) if key_data else path_of(user, "client-key", user_dir),
        token=user.get("token"),
        token_file=path_of(user, "tokenFile", user_dir),
        username=user.get("username"),
        password=user.get("password"),
    )


def _client_library_credentials(context: str, config_file: str) -> Credentials:
    """An exec plugin or auth-provider: the kubernetes package runs it and refreshes what it yields. The import
    happens only here, so the operator process keeps without it otherwise (see `keep_client_library_out`)."""
    if sys.modules.get("kubernetes", False) is None:
        del sys.modules["kubernetes"]  # unblocked: this kubeconfig needs it
    import kubernetes

    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file, context=context, client_configuration=configuration)

    def plugin_headers() -> dict[str, str]:
        settings: Any = configuration.auth_settings().values()  # runs the refresh hook: renews expiring tokens
        headers = {s["key"]: s["value"] for s in settings if s.get("in") == "header" and s.get("value")}
        if "authorization" in headers:  # the client's spelling; login_info looks for the canonical one
            headers["Authorization"] = headers.pop("authorization")
        return headers

    return Credentials(
        server=configuration.host,
        ca_file=configuration.ssl_ca_cert,
        cert_file=configuration.cert_file,
        key_file=configuration.key_file,
        insecure=not configuration.verify_ssl,
        plugin_headers=plugin_headers,
    )


def _private_file(content: str) -> str:
    """Inline certificate or key data, into a file only we can read (TLS libraries load files), removed at exit."""
    handle, name = tempfile.mkstemp(prefix="dagwright-", suffix=".pem")
    with os.fdopen(handle, "w", encoding="ascii") as file:
        file.write(content)
    atexit.register(_remove, name)
    return name


def _remove(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


class Connection:
    """One pool to the API server, its TLS and the credential headers, shared by every caller in the process."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.server = credentials.server.rstrip("/")
        self.pool = _pool(credentials, self.server)
        self._lock = threading.Lock()
        self._headers: tuple[float, dict[str, str]] | None = None

    def headers(self) -> dict[str, str]:
        """The credential headers, read again at most every 30 s: a projected token lives an hour and the
        kubelet renews it well before; an exec plugin's refresh hook costs a kubeconfig load per call."""
        now = time.monotonic()
        with self._lock:
            cached = self._headers
            if cached is None or cached[0] <= now:
                cached = self._headers = (now + _CREDENTIALS_SECONDS, self.credentials.headers())
        return cached[1]

    def send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        stream: bool = False,
        timeout: urllib3.Timeout = _TIMEOUT,
    ) -> urllib3.BaseHTTPResponse:
        """One request; the response, whatever its status (the caller releases a streamed one)."""
        headers = {"Accept": "application/json", **self.headers()}
        if body is not None:
            headers["Content-Type"] = content_type
        url = self.server + path + ("?" + urlencode(query) if query else "")
        return self.pool.request(method, url, body=body, headers=headers, preload_content=not stream, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Body | None = None,
        content_type: str = "application/json",
    ) -> Body:
        """One call with a JSON body (or none); the response's JSON, or ApiError."""
        data = orjson.dumps(body) if body is not None else None
        response = self.send(method, path, query=query, body=data, content_type=content_type)
        if not 200 <= response.status <= 299:
            raise error_of(response)
        result: Body = orjson.loads(response.data)
        return result


def error_of(response: urllib3.BaseHTTPResponse, *, read_body: bool = True) -> ApiError:
    body = response.data.decode("utf-8", errors="replace") if read_body else ""
    return ApiError(response.status, response.reason, body, response.headers)


def _pool(credentials: Credentials, server: str) -> urllib3.PoolManager:
    tls: dict[str, Any] = {}
    if urlsplit(server).scheme == "https":
        if credentials.insecure:
            tls = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        else:
            tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": credentials.ca_file, "ca_cert_data": credentials.ca_data}
            if credentials.tls_server_name:
                tls["server_hostname"] = credentials.tls_server_name
        if credentials.cert_file:
            tls["cert_file"], tls["key_file"] = credentials.cert_file, credentials.key_file
    proxy = credentials.proxy_url or _environment_proxy(server)
    if proxy:
        return urllib3.ProxyManager(proxy, num_pools=4, maxsize=POOL_SIZE, **tls)
    return urllib3.PoolManager(num_pools=4, maxsize=POOL_SIZE, **tls)


def _environment_proxy(server: str) -> str | None:
    """HTTPS_PROXY / HTTP_PROXY unless NO_PROXY names the server, as the kubernetes client honours them."""
    parts = urlsplit(server)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme)
    bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or bypass(parts.hostname or "", proxies):
        return None
    return proxy


def login_info(connection: Connection) -> Any:
    """The same server and credentials as a `kopf.ConnectionInfo`, for kopf's own watches (`@kopf.on.login`).
    kopf calls its login handler again when the API server refuses its credentials, which re-reads the token."""
    import kopf

    credentials = connection.credentials
    scheme, _, token = connection.credentials.headers().get("Authorization", "").partition(" ")
    bearer = token if scheme == "Bearer" else None
    return kopf.ConnectionInfo(
        server=connection.server,
        ca_path=credentials.ca_file,
        ca_data=credentials.ca_data,
        insecure=credentials.insecure,
        scheme="Bearer" if bearer else None,
        token=bearer,
        username=credentials.username if not bearer else None,
        password=credentials.password if not bearer else None,
        certificate_path=credentials.cert_file,
        private_key_path=credentials.key_file,
        proxy_url=credentials.proxy_url,
    )


def keep_client_library_out() -> None:
    """Keep the operator process from importing the `kubernetes` package (~32 MiB), before kopf is imported.

    kopf imports `kubernetes.client` when it is installed (the image and dev installs have it, for the CLI)
    only to recognise the package's model objects passed to its adopt/label helpers, which we never do; marking
    the module absent makes that import fail as if it were not installed. Only if nothing imported it yet: a
    process that uses the package (tests, an exec-plugin kubeconfig: `_client_library_credentials` lifts the
    block) keeps it."""
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
