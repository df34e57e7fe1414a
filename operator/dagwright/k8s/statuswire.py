"""How node statuses are stored on large Workflows: compressed, so the object fits in etcd.

A Succeeded node's status is ~200 bytes of JSON; a 10,000-node workflow's plain status would pass etcd's
1.5 MiB object limit (with the spec beside it) part-way through the run, and every later status write would be
refused. Above `COMPRESS_ABOVE` nodes the map is stored as `status.compressedNodes` (gzip, then base64: about
12x smaller), the idea Argo users know, and `status.nodes` is left empty. `dagwright get` reads either form.

Every pass that changes a large workflow writes the whole compressed map again, so the operator keeps one
`NodeMap` per such workflow: each node's JSON is made once and reused for as long as the planner hands back
the same (immutable) NodeStatus object, which it does for every node it left alone, and the map is compressed
in runs of nodes that keep their compressed bytes while none of their nodes changes. A pass pays for the
nodes that moved and the runs they are in, not for serializing and compressing 10,000 nodes. Readers see
one ordinary gzip stream of the same JSON; key order inside it carries no meaning.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import operator
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic_core

from dagwright.status import NodeStatus

COMPRESS_ABOVE = 1000  # nodes; with messages capped at 512 characters, a plain map below this stays < 1 MiB


def should_compress(node_count: int, stored: dict[str, Any]) -> bool:
    """Compress large maps; once compressed, stay compressed (a shrinking spec must not flap the format).
    `node_count` counts forEach items too: each keeps a few bytes, and their outputs more."""
    return node_count > COMPRESS_ABOVE or "compressedNodes" in stored


def encode(nodes: dict[str, Any]) -> str:
    """A node map already in its JSON form (dicts), compressed."""
    return _packed(json.dumps(nodes, separators=(",", ":"), sort_keys=True).encode())


class NodeMap:
    """One workflow's compressed node map as last written, and what it was made of, kept for the next pass.

    Each node's JSON is kept by NodeStatus identity, and the map is compressed in runs of `CHUNK_NODES` nodes,
    each compressed on its own (as pigz does) so a run of unchanged nodes keeps its compressed bytes: the
    gzip stream is their concatenation, one ordinary gzip member that any reader inflates. A run is compressed
    with the run before it as its dictionary (what a reader has just inflated), so little size is lost; when
    a run changes, it and the run after it are compressed again.
    """

    def __init__(self) -> None:
        self._source: Mapping[str, NodeStatus] | None = None  # the map last encoded, and what it gave
        self._encoded: str | None = None
        self._names: list[str] = []  # its names, nodes and each node's `"name":{...}`, in its order
        self._nodes: list[NodeStatus] = []
        self._members: list[bytes] = []
        self._chunks: list[_Chunk] = []

    def encode(self, nodes: Mapping[str, NodeStatus]) -> str:
        """`compressedNodes` for these nodes: the same string as last time when no node object changed."""
        if nodes is self._source and self._encoded is not None:
            return self._encoded
        names, values = list(nodes), list(nodes.values())
        dirty: set[int] | None = None  # runs holding a changed node; None: compare every run
        if names == self._names:  # the usual pass: the same nodes, a few of them new objects
            changed = list(itertools.compress(range(len(values)), map(operator.is_not, values, self._nodes)))
            members = self._members.copy() if changed else self._members
            for index in changed:
                members[index] = _member(names[index], values[index])
            dirty = {index // CHUNK_NODES for index in changed}
        else:  # nodes added or removed (a changed spec, a status read again)
            held = dict(zip(self._names, zip(self._nodes, self._members, strict=True), strict=True))
            members = []
            for name, node in zip(names, values, strict=True):
                before = held.get(name)
                members.append(before[1] if before is not None and before[0] is node else _member(name, node))
        self._source, self._names, self._nodes, self._members = nodes, names, values, members
        if dirty is None or dirty or self._encoded is None:
            self._encoded = self._packed(members, dirty)
        return self._encoded

    def _packed(self, members: list[bytes], dirty: set[int] | None) -> str:
        chunks: list[_Chunk] = []
        window = b"{"  # what the reader has inflated before this run: a run refers back into it, as in one stream
        for number, start in enumerate(range(0, len(members), CHUNK_NODES)):
            chunk = self._chunks[number] if number < len(self._chunks) else None
            if chunk is None or (number in dirty if dirty is not None else not _same(chunk.members, members, start)):
                run = tuple(members[start : start + CHUNK_NODES])
                raw = b",".join(run)
                chunk = _Chunk(run, raw, window, _deflated(b"," + raw if start else raw, window))
            elif chunk.window is not window:  # the same nodes after a changed run: compressed again, same raw
                chunk = _Chunk(
                    chunk.members, chunk.raw, window, _deflated(b"," + chunk.raw if start else chunk.raw, window)
                )
            chunks.append(chunk)
            window = chunk.raw
        self._chunks = chunks
        return _gzip_of(chunks)


CHUNK_NODES = 100  # ~20 KB of JSON a run; 200 or 400 save under 1% of the size and recompress more per change
_LEVEL = 6


@dataclass(frozen=True)
class _Chunk:
    members: tuple[bytes, ...]
    raw: bytes  # the members joined, without the comma before a run that follows another
    window: bytes  # the run before it (its `raw`), which its matches may refer back into
    deflated: bytes  # raw deflate blocks (with that comma), flushed to a byte boundary, not final


def _same(before: tuple[bytes, ...], members: list[bytes], start: int) -> bool:
    """Whether the run at `start` holds the very member objects it held."""
    now = members[start : start + CHUNK_NODES]
    return len(before) == len(now) and all(map(operator.is_, before, now))


def _deflated(raw: bytes, window: bytes) -> bytes:
    """`raw` as deflate blocks that may refer back into `window`, the 32 KiB the reader inflated just before."""
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=window[-_WINDOW:])
    return compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)


_WINDOW = 32 * 1024


def _gzip_of(chunks: list[_Chunk]) -> str:
    """One gzip member (RFC 1952) around the runs' deflate blocks, closed by an empty final block."""
    crc, size = zlib.crc32(b"{"), 1
    for number, chunk in enumerate(chunks):
        if number:
            crc, size = zlib.crc32(b",", crc), size + 1
        crc, size = zlib.crc32(chunk.raw, crc), size + len(chunk.raw)
    crc, size = zlib.crc32(b"}", crc), size + 1
    opening, closing = _deflated(b"{", b""), zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = b"".join([opening, *(chunk.deflated for chunk in chunks), closing.compress(b"}"), closing.flush()])
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0, unknown OS
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return base64.b64encode(header + body + trailer).decode()


def _member(name: str, node: NodeStatus) -> bytes:
    """`"name":{...}` as it appears in the map: camelCase, unset fields left out (as `to_wire`)."""
    return json.dumps(name).encode() + b":" + pydantic_core.to_json(node, by_alias=True, exclude_none=True)


def _packed(raw: bytes) -> str:
    return base64.b64encode(gzip.compress(raw, compresslevel=_LEVEL, mtime=0)).decode()


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
