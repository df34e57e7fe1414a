"""A real redis-server (Debian's package) on a free loopback port, started and stopped by the tests.

`redis_tls` serves TLS only, with a server certificate from a throwaway CA (made with the openssl CLI), so
`rediss://` and `DAGWRIGHT_REDIS_CA` are tested against the real thing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis


@dataclass
class RedisServer:
    port: int
    password: str | None
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    ca: Path | None = None  # TLS only, with a server certificate this CA signed
    extra: tuple[str, ...] = ()  # more redis-server options

    @property
    def url(self) -> str:
        return f"{'rediss' if self.ca else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            _binary(),
            *(self._tls_args() if self.ca else ["--port", str(self.port)]),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",  # outputs survive a restart, as the chart configures it
            "--save",
            "",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.extra
        log = self.directory / "redis-server.log"
        with log.open("ab") as output:
            self.process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(log)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, log: Path) -> None:
        client = self.client()
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                exited = self.process is not None and self.process.poll() is not None
                if exited and self.ca and "tls" in log.read_text(errors="replace").lower():
                    pytest.skip(f"this redis-server cannot serve TLS: {log.read_text(errors='replace')[-300:]}")
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _tls_args(self) -> list[str]:
        assert self.ca is not None
        folder = self.ca.parent
        return [
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(folder / "server.crt"),
            "--tls-key-file",
            str(folder / "server.key"),
            "--tls-ca-cert-file",
            str(self.ca),
            "--tls-auth-clients",
            "no",
        ]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final flush, as when its pod or node dies."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart_with(self, *options: str) -> None:
        self.stop()
        self.extra = options
        self.start()

    def client(self) -> redis.Redis:
        if self.ca:
            return redis.Redis("127.0.0.1", self.port, password=self.password, ssl=True, ssl_ca_certs=str(self.ca))
        return redis.Redis("127.0.0.1", self.port, password=self.password)


def _binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run installs it)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(_free_port(), None, tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(_free_port(), "s3cret-for-tests", tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_tls(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(_free_port(), None, tmp_path, ca=_throwaway_ca(tmp_path / "tls"))
    server.start()
    yield server
    server.stop()


def _throwaway_ca(folder: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it; returns the CA's file."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl CLI is not installed, so no test certificates can be made")
    folder.mkdir()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=test-ca")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=redis")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    signed = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-extfile", "san.ext", "-out", "server.crt"]
    run("x509", "-req", "-in", "server.csr", "-days", "1", *signed)
    return folder / "ca.crt"
