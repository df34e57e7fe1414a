"""Fixtures for the tests whose pods run real containers: the plane's real node, with dagwright's images loaded.

Why a separate directory: everything else in tests/e2e runs on kwok's fake nodes, fast and at scale; these tests
pay for real containers (image builds, container starts) to prove what kwok cannot: that the images work, that
the chart's operator runs in a pod, and that a node's command, outputs, logs and limits are real.

The first test that asks for `real_node` builds the images (cached by a hash of their inputs, see
cluster/images.py), joins the kubelet to the plane (cluster/node.py) and imports the images into its containerd.
Pods reach the node only with `on_real_node()`'s toleration and node selector.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..cluster import images, node, plane
from ..conftest import Kube


@dataclass(frozen=True)
class RealNode:
    """The real node's name and the image references its containerd holds."""

    name: str
    operator_image: str
    runner_image: str
    redis_image: str


def on_real_node() -> dict[str, Any]:
    """The podTemplate fields (Workflow spec) that put a node's pod on the real node."""
    return {"nodeSelector": dict(node.NODE_SELECTOR), "tolerations": [dict(node.TOLERATION)]}


@pytest.fixture(scope="session")
def real_node(kube: Kube) -> Iterator[RealNode]:
    if not kube.local_plane:
        pytest.skip("the real node joins the local plane only (on kind, every node is real: use its images)")
    reason = node.unavailable()
    if reason:
        pytest.skip(reason)
    with images.docker_session():  # dockerd runs while images are built and saved, not for the whole session
        built = images.build_images()
        redis = images.build_redis_image()
        node.up()
        wanted = [built["operator"], built["node-runner"], redis]
        missing = [ref for ref in wanted if not node.has_image(ref)]
        if missing:
            with tempfile.TemporaryDirectory() as tmp:
                node.load_images(images.save(missing, Path(tmp) / "images.tar"))
    yield RealNode(
        name=node.NODE_NAME, operator_image=built["operator"], runner_image=built["node-runner"], redis_image=redis
    )


@pytest.fixture(scope="session")
def helm() -> Path:
    return plane.install_helm()
