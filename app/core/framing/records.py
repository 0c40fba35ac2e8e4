"""The reader of length-prefixed containers (``RecordFormat``): a fast pass trusting the
container, then a checked walk with resynchronisation."""

from __future__ import annotations

import numpy as np

from app.core.framing.common import _INVALID, _NEED_MORE, _TS_U32, _U32, MAX_MESSAGE_BYTES, TS_MAX_NS, TS_MIN_NS, _Walk
from app.core.framing.messages import _adds_up, _bad
from app.core.framing.record_formats import RECORD_FORMATS, RecordFormat
from app.core.framing.resync import _FOUND, _MORE, FOLLOW_WINDOW, _Scan
from app.core.framing.split import split_messages


class RecordReader:
    """``Framer``'s length-prefixed reader (one of its bases)."""

    # -- length-prefixed: [header with the u32 length (and receive time)][message] -----

    def _walk_records(self, buf, base: int, final: bool, fmt: RecordFormat):
        hdr = fmt.header
        limit = len(buf)
        scan = _Scan(buf, self.shortcuts, self.chain_spares)
        # Fast pass: trust the container, then check all messages at once (vectorised).
        walk = _Walk()
        p = 0
        if not self.resync:
            p = self._fast_records(buf, limit, fmt, walk)
            if walk.start:
                ms = split_messages(np.frombuffer(buf, dtype=np.uint8), np.asarray(walk.start), np.asarray(walk.size))
                heartbeat = (np.asarray(walk.size) == 1) & (np.frombuffer(buf,
                                                                          dtype=np.uint8)[np.asarray(walk.start)] == 0)
                ok = ms.valid | heartbeat
                if not ok.all():
                    first = int(np.argmin(ok))
                    p = walk.start[first] - hdr
                    del walk.start[first:], walk.size[first:], walk.recv_ns[first:]
            # heartbeats came back as 1-byte messages: pull them out of the message list
            walk = self._drop_heartbeat_records(buf, walk)
            walk.framing_bytes = hdr * (len(walk.start) + walk.heartbeats)
            scan.checks += len(walk.start) + walk.heartbeats
        # Careful pass: validate every record, resynchronise after broken ones.
        while p < limit:
            if self.resync:
                reason = "JSON text frame" if buf[p : p + 1] == b"{" else "bytes before the next valid record"
                kind, q = self._next_start(scan, p, final, fmt)
                self._close_region(buf, base, p, q, walk, reason)
                p = q
                if kind == _MORE:
                    break
                self.resync = False
                continue
            scan.checks += 1
            status, n = fmt.record(buf, p, limit)
            if status == _NEED_MORE:
                if not final:
                    break
                kind, q = self._next_start(scan, p + 1, final, fmt)
                if kind == _FOUND:  # a broken length, not a capture cut while writing
                    self._close_region(buf, base, p, q, walk, f"broken container record (length {n})")
                    p = q
                    continue
                walk.regions.append(_bad(buf, base, p, limit,
                                         f"truncated record at the end of the capture ({limit - p} bytes)"))
                p = limit
                break
            s, e = p + hdr, p + hdr + n
            if status >= 0:
                if n == 1 and buf[s] == 0:
                    walk.heartbeats += 1
                    walk.framing_bytes += hdr
                    p = e
                    continue
                if self._record_validates(scan, p, fmt) == e:
                    trusted = True
                else:
                    trusted = _adds_up(buf, s, e) or self._record_plausible(buf, e, limit, fmt, final)
                    if trusted is True:
                        # Never trust a faulty record over a valid one that starts inside it
                        # (a damaged length that happens to look sane).
                        kind, q = self._next_start(scan, p + 1, final, fmt)
                        if q < e and (kind == _FOUND or not final):
                            trusted = False if kind == _FOUND else _NEED_MORE
                if trusted is _NEED_MORE:
                    break  # carry the record: whether to trust it depends on the next one
                if trusted:
                    # A record whose message is faulty but whose neighbour is a record:
                    # trust the container, split_messages records the faults.
                    self._take_record(buf, p, s, e, fmt, walk)
                    walk.framing_bytes += hdr
                    p = e
                    continue
            if buf[p : p + 1] == b"{":
                reason = "JSON text frame"
            else:
                reason = "broken container record" + (f" (length {n})" if n else "")
            kind, q = self._next_start(scan, p + 1, final, fmt)
            self._close_region(buf, base, p, q, walk, reason)
            p = q
            if kind == _MORE:
                self.resync = True
                break
        return self._walk_done(walk, base, scan, p)

    @staticmethod
    def _take_record(buf, p, s, e, fmt: RecordFormat, walk):
        walk.start.append(s)
        walk.size.append(e - s)
        if fmt.time_at is not None:
            walk.recv_ns.append(fmt.parse(buf, p)[0])

    def _fast_records(self, buf, limit: int, fmt: RecordFormat, walk: _Walk) -> int:
        p = 0
        hdr = fmt.header
        starts, sizes, recvs = walk.start, walk.size, walk.recv_ns
        if fmt.order == ">" and fmt.time_at == 0 and fmt.length_at == 8:
            unpack = _TS_U32.unpack_from
            while p + 12 <= limit:
                t, n = unpack(buf, p)
                e = p + 12 + n
                if n == 0 or n > MAX_MESSAGE_BYTES or not TS_MIN_NS <= t < TS_MAX_NS or e > limit:
                    break
                recvs.append(t)
                starts.append(p + 12)
                sizes.append(n)
                p = e
        elif fmt.order == ">" and fmt.time_at is None and fmt.length_at == 0 and hdr == 4:
            unpack = _U32.unpack_from
            while p + 4 <= limit:
                (n,) = unpack(buf, p)
                e = p + 4 + n
                if n == 0 or n > MAX_MESSAGE_BYTES or e > limit:
                    break
                starts.append(p + 4)
                sizes.append(n)
                p = e
        else:
            while True:
                status, n = fmt.record(buf, p, limit)
                if status < 0:
                    break
                if fmt.time_at is not None:
                    recvs.append(fmt.parse(buf, p)[0])
                starts.append(p + hdr)
                sizes.append(n)
                p += hdr + n
        return p

    @staticmethod
    def _drop_heartbeat_records(buf, walk: _Walk) -> _Walk:
        if 1 not in walk.size:
            return walk
        out = _Walk()
        for i, (s, n) in enumerate(zip(walk.start, walk.size, strict=True)):
            if n == 1 and buf[s] == 0:
                out.heartbeats += 1
                continue
            out.start.append(s)
            out.size.append(n)
            if walk.recv_ns:
                out.recv_ns.append(walk.recv_ns[i])
        return out

    @staticmethod
    def _record(buf, p: int, limit: int, ts: bool):
        """(status, message size) of a u32len (``ts``: ts-u32len) record at ``p``."""
        return RECORD_FORMATS["ts-u32len" if ts else "u32len"].record(buf, p, limit)

    @staticmethod
    def _record_plausible(buf, p: int, limit: int, fmt: RecordFormat, final: bool):
        """Whether a container record starts at ``p`` (its message may still be faulty).

        Used to trust the container around a faulty message: the next record's length
        is sane and its message starts like one (a packet count and a first length
        that fits), or it is a heartbeat or a JSON text frame. Only the record's header
        and first 4 message bytes are read, so the answer is the same however the file
        is chunked; when they are past the end of a chunk that is not the last, the
        answer is ``_NEED_MORE``. At the true end of the file a cut-off record is
        trusted (the capture was cut while writing it).
        """
        hdr = fmt.header
        if p + hdr > limit:
            return True if final else _NEED_MORE
        t, n = fmt.parse(buf, p)
        if t is not None and not TS_MIN_NS <= t < TS_MAX_NS:
            return False
        if n == 0 or n > MAX_MESSAGE_BYTES:
            return False
        s = p + hdr
        if s + min(n, 4) > limit:
            return True if final else _NEED_MORE
        if n == 1:
            return buf[s] == 0
        if buf[s : s + 2] == b'{"':
            return True
        if n < 4:
            return False
        count = buf[s] << 8 | buf[s + 1]
        first = buf[s + 2] << 8 | buf[s + 3]
        return count > 0 and 4 + first <= n

    @staticmethod
    def _record_validates(scan: _Scan, p: int, fmt: RecordFormat) -> int:
        """End of a record at ``p`` that is a heartbeat or a valid message, else a code."""
        buf = scan.buf
        status, n = fmt.record(buf, p, scan.limit)
        if status < 0:
            return status
        s, e = p + fmt.header, p + fmt.header + n
        if n == 1:
            return e if buf[s] == 0 else _INVALID
        return e if scan.strict.message_end(s) == e else _INVALID

    def _record_followed(self, scan: _Scan, e: int, final: bool, fmt: RecordFormat):
        for k in range(FOLLOW_WINDOW):
            if e + k >= scan.limit:
                return True if final else _NEED_MORE
            scan.checks += 1
            r = self._record_validates(scan, e + k, fmt)
            if r >= 0:
                return True
            if r == _NEED_MORE:
                return True if final else _NEED_MORE
        return False
