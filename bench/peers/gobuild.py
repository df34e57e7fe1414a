"""A peer's controller built from its Go module into the plane's binary cache, once, like the plane's own binaries.

Two ways in, both CGO_ENABLED=0, -trimpath, GOTOOLCHAIN=local, -p DAGWRIGHT_GO_PARALLELISM (the plane's build
settings), under the plane's build lock, the binary named ``<name>-<version>`` so versions never mix:

- ``go install module/cmd/x@version`` (Argo): the go command fetches the module and its dependencies itself;
- ``go build ./cmd/x`` inside the module's own directory in the Go module cache (Tekton): for a module whose
  go.mod has a ``replace`` directive, which ``go install pkg@version`` refuses, or whose version list the module
  proxy does not serve (``go install`` looks the newest version up to print deprecations). The source built is the
  module exactly as published (the cache is read-only), with the versions its own go.mod and go.sum pin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.e2e.cluster import plane
from tests.e2e.cluster.processes import file_lock


def cached_binary(name: str, version: str, build: Callable[[Path], None]) -> Path:
    """``<name>-<version>`` in the plane's binary cache; `build(bin_dir)` leaves ``bin_dir/<name>`` when missing."""
    target = plane.bin_dir()
    target.mkdir(parents=True, exist_ok=True)
    binary = target / f"{name}-{version}"
    with file_lock(target.parent / "build.lock"):
        if not binary.exists():
            build(target)
            os.replace(target / name, binary)
    return binary


def go_install(package: str, version: str, progress: plane.Progress) -> Callable[[Path], None]:
    """A build step for cached_binary: ``go install package@version``."""
    return lambda target: plane._install_go_tools(target, [f"{package}@{version}"], progress)


def go_build_in_module(module: str, version: str, package: str, progress: plane.Progress) -> Callable[[Path], None]:
    """A build step for cached_binary: ``go build ./<package>`` inside the published module's own directory."""
    name = package.rsplit("/", 1)[-1]

    def build(target: Path) -> None:
        source = module_dir(module, version)

        def compile_into(out: Path) -> None:
            args = ["build", "-v", "-p", plane.GO_PARALLELISM, "-trimpath", "-ldflags", "-s -w"]
            args += ["-o", str(out / name), f"./{package}"]
            plane._run_go(args, source, f"{module}/{package}@{version}", progress)

        plane._build_into(target, [name], compile_into)

    return build


def module_dir(module: str, version: str) -> Path:
    """The module's source in the Go module cache, downloaded when missing (``go mod download -json``)."""
    found = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    )
    return Path(json.loads(found.stdout)["Dir"])
