"""The raw walker as it was before the array-pass walker (one Python step per message):
the differential tests' oracle. Test support, not product (app/ never imports it)."""

from __future__ import annotations

from app.core.framing.common import _INVALID, _NEED_MORE, LENIENT_MAX_COUNT, _Walk
from app.core.framing.framer import Framer
from app.core.framing.messages import _bad, _describe_fault, _uniform_end
from app.core.framing.raw import _plain_end
from app.core.framing.resync import _FOUND, _MORE, _Scan


class OracleFramer(Framer):
    """``Framer`` whose raw reader takes one step per message and bad region."""

    def _walk_raw(self, buf, base: int, final: bool):
        walk = _Walk()
        limit = len(buf)
        scan = _Scan(buf)
        p = 0
        while p < limit:
            if self.resync:
                kind, q = self._next_start(scan, p, final)
                self._close_region(buf, base, p, q, walk, "bytes before the next valid message")
                p = q
                if kind == _MORE:
                    break
                self.resync = False
                continue
            if buf[p] == 0 and p + 1 < limit and buf[p + 1] == 0:
                # A run of zero bytes (idle heartbeats, a zero-filled tail): a count of 0
                # is no message, so all but the last zero are heartbeats.
                window = buf[p : p + (1 << 16)]
                run = len(window) - len(window.lstrip(b"\x00"))
                walk.heartbeats += run - 1
                p += run - 1
                continue
            scan.checks += 1
            e = _uniform_end(buf, p, limit)
            if e is None:
                e = _plain_end(scan, p)
            if e is None:
                e = scan.strict.message_end(p)
            if e >= 0:
                walk.start.append(p)
                walk.size.append(e - p)
                p = e
                continue
            if e == _NEED_MORE:
                if not final:
                    break
                if buf[p] == 0 and p + 1 == limit:
                    walk.heartbeats += 1
                    p += 1
                    continue
                kind, q = self._next_start(scan, p + 1, final)
                if kind == _FOUND:  # a broken count, not a capture cut while writing
                    self._close_region(buf, base, p, q, walk, _describe_fault(scan, p))
                    p = q
                    continue
                walk.regions.append(_bad(buf, base, p, limit,
                                         f"truncated message at the end of the capture ({limit - p} bytes)"))
                p = limit
                break
            if buf[p] == 0:
                hb_ok = self._followed(scan, p + 1, final, junk=False)
                if hb_ok is _NEED_MORE:
                    break
                if hb_ok:
                    walk.heartbeats += 1
                    p += 1
                    continue
            # No valid message here: the next resync point, unless a message with
            # unknown-length packets (split_messages skips and records them) starts here.
            kind, q = self._next_start(scan, p + 1, final)
            if kind == _FOUND and q < p + 5:
                # A message with unknown lengths is at least 5 bytes: the one found
                # inside it would hide it anyway, so it is not walked.
                self._close_region(buf, base, p, q, walk, _describe_fault(scan, p))
                p = q
                continue
            e = scan.lenient.message_end(p, max_count=LENIENT_MAX_COUNT)
            if e >= 0 and q < e:
                if kind == _MORE:
                    # Whether a message that validates starts inside this one (and so
                    # hides it) is decided by bytes past this chunk: carry, ask again.
                    break
                if kind == _FOUND:
                    e = _INVALID  # a message with unknown lengths never hides one that validates
            if e == _NEED_MORE and not final:
                break
            if e >= 0:
                ok = self._followed(scan, e, final, junk=False)
                if ok is _NEED_MORE:
                    break
                if ok:
                    walk.start.append(p)
                    walk.size.append(e - p)
                    p = e
                    continue
            self._close_region(buf, base, p, q, walk, _describe_fault(scan, p))
            p = q
            if kind == _MORE:
                self.resync = True
                break
        walk.file_start = [base + s for s in walk.start]
        self.work += scan.work
        return walk, p
