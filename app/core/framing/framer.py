"""``Framer``: walks one capture's container chunk by chunk, carrying state between chunks;
its readers and the resynchronisation are its bases (one module each)."""

from __future__ import annotations

import numpy as np

from app.core.framing.chains import ChainSpares
from app.core.framing.common import (
    BAD_RAW_CAP,
    FRAMINGS,
    KNOWN_MASK,
    BadPacket,
    BadRegions,
    ChunkSplit,
    _new_accounted,
    _Walk,
)
from app.core.framing.raw import RawReader
from app.core.framing.record_formats import RECORD_FORMATS
from app.core.framing.records import RecordReader
from app.core.framing.resync import AnchorSearch
from app.core.framing.split import split_messages
from app.core.framing.text import TextReader


class Framer(RawReader, RecordReader, TextReader, AnchorSearch):
    """Walks one capture's container, chunk by chunk, carrying state between chunks.

    One reader per framing (``_READERS``); the length-prefixed ones differ only by their
    ``RecordFormat``. All of them share the message walker (``PacketChains``) and the
    resynchronisation, which finds the next message that validates completely in one
    forward pass over candidate starts. ``work`` counts what the walk examined.
    """

    _READERS = {"raw": "_walk_raw", "base64": "_split_base64", "har": "_split_har", "single": "_walk_single"}

    def __init__(self, framing: str):
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; expected one of {', '.join(FRAMINGS)}")
        self.framing = framing
        self.msg_seq = 0  # messages seen so far: the next message's number
        self.resync = False  # the carried bytes start inside a bad region
        self.work = 0  # candidate checks + pre-filtered bytes + chain steps, all chunks
        # the chains' position arrays, handed from one chunk's walk to the next's
        self.chain_spares = ChainSpares()

    def split(self, buf, base: int, final: bool) -> ChunkSplit:
        """Walk ``buf`` (starting at file offset ``base``); stop at the last whole message."""
        fmt = RECORD_FORMATS.get(self.framing)
        if fmt is not None:
            walk, consumed = self._walk_records(buf, base, final, fmt)
        else:
            reader = getattr(self, self._READERS[self.framing])
            if self.framing in ("base64", "har"):
                return reader(buf, base, final)
            walk, consumed = reader(buf, base, final)
        payload = np.frombuffer(buf, dtype=np.uint8) if len(buf) else np.zeros(0, np.uint8)
        return self._finish(payload, walk, consumed, scale=None)

    # Packets of the walked messages, their file offsets and the byte accounting.
    def _finish(self, payload: np.ndarray, walk: _Walk, consumed: int, scale, container=None) -> ChunkSplit:
        start, size = walk.columns()
        bare = np.asarray(walk.bare, dtype=bool) if walk.bare else np.zeros(len(start), bool)
        ms = split_messages(payload, start, size, bare, walk.prefixes)
        if scale == "base64":
            # A single body without a header decodes as that packet; only when the
            # bytes are not a valid message (checked by the split above).
            retry = ~ms.valid & KNOWN_MASK[np.minimum(size, 0xFFFF)] & ~bare
            if retry.any():
                ms = split_messages(payload, start, size, bare | retry)
        file_start = start + walk.base if walk.base is not None else np.asarray(walk.file_start, dtype=np.int64)
        seq0 = self.msg_seq
        self.msg_seq += len(start)

        def file_offset(msg_idx, pos):
            delta = pos - start[msg_idx]
            if scale in ("base64", "har"):
                delta = delta * 4 // 3  # the text position where the decoded byte starts
            return file_start[msg_idx] + delta

        if walk.base is not None and scale not in ("base64", "har"):
            # (file_start is start + base: a packet's file offset is its position + base,
            # no gather of its message's start and file start)
            pkt_offset = ms.pkt_pos + walk.base
        else:
            pkt_offset = file_offset(ms.pkt_msg, ms.pkt_pos)
        recv = None
        if walk.recv_ns:
            recv = np.asarray(walk.recv_ns, dtype=np.int64)[ms.pkt_msg]
        faults = []
        for i, pos, length, reason in ms.faults:
            at = int(file_offset(np.int64(i), np.int64(pos)))
            raw = bytes(payload[pos : pos + min(length, BAD_RAW_CAP)])
            faults.append(BadPacket(at, length, reason, raw, seq0 + i))
        bad = BadRegions.build(walk.regions + faults, walk.region_batches)
        accounted = _new_accounted()
        accounted["packet"] = ms.packet_bytes
        accounted["header"] = ms.header_bytes
        accounted["framing"] = walk.framing_bytes
        accounted["heartbeat"] = walk.heartbeats
        accounted["bad"] = bad.total()
        return ChunkSplit(
            payload=payload,
            pkt_pos=ms.pkt_pos,
            pkt_len=ms.pkt_len,
            pkt_msg=ms.pkt_msg + seq0,
            pkt_seq=ms.pkt_seq,
            pkt_offset=pkt_offset,
            pkt_recv_ns=recv,
            bad=bad,
            accounted=accounted,
            messages=len(start),
            heartbeats=walk.heartbeats,
            consumed=consumed,
            container=container,
        )
