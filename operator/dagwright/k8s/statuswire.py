"""How node statuses are stored on large Workflows: compressed, so the object fits in etcd.

A Succeeded node's status is ~200 bytes of JSON; a 10,000-node workflow's plain status would pass etcd's
1.5 MiB object limit (with the spec beside it) part-way through the run, and every later status write would be
refused. Above `COMPRESS_ABOVE` nodes the map is stored as `status.compressedNodes` (gzip, then base64: about
12x smaller), the idea Argo users know, and `status.nodes` is left empty. `dagwright get` reads either form.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

COMPRESS_ABOVE = 1000  # nodes; with messages capped at 512 characters, a plain map below this stays < 1 MiB


def should_compress(node_count: int, stored: dict[str, Any]) -> bool:
    """Compress large maps; once compressed, stay compressed (a shrinking spec must not flap the format).
    `node_count` counts forEach items too: each keeps a few bytes, and their outputs more."""
    return node_count > COMPRESS_ABOVE or "compressedNodes" in stored


def encode(nodes: dict[str, Any]) -> str:
    raw = json.dumps(nodes, separators=(",", ":"), sort_keys=True).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode()


def decode(text: str) -> dict[str, Any]:
    nodes: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(text)))
    return nodes


def expanded(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored status with `compressedNodes` unpacked into `nodes` (the form the model and the CLI read)."""
    if "compressedNodes" not in stored:
        return stored
    plain = {key: value for key, value in stored.items() if key != "compressedNodes"}
    plain["nodes"] = decode(stored["compressedNodes"])
    return plain
