"""The raw reader: messages back to back, 1-byte heartbeats between them; and a single message."""

from __future__ import annotations

from app.core.framing import packet_re
from app.core.framing.common import (
    _INVALID,
    _NEED_MORE,
    KNOWN_SET,
    LENIENT_MAX_COUNT,
    RUN_AFTER,
    _Walk,
    same_length_run,
)
from app.core.framing.messages import (
    UNIFORM_MAX_COUNT,
    _bad,
    _describe_fault,
    _region_reason,
    _strict_end,
    _uniform_end,
)
from app.core.framing.rawarray import MIN_WINDOW, SPARSE, SPARSE_WINDOW, WINDOW, walk_window
from app.core.framing.resync import _FOUND, _MORE, _Scan

LONG_RUN = 32  # packets still to walk before _plain_end looks for a run of equal ones
JUMP_AFTER = 16  # packets in a message above which _plain_end first asks packet_re to jump them
KNOWN_SPLIT = 1 << 14  # bytes of a message the chains validated above which split reads its packets off them


def _plain_end(scan: _Scan, p: int) -> int | None:
    """Fast path: end of the message at ``p`` walked packet by packet with plain ints, or
    None (undecided: ask the chains).

    A message of mixed packet lengths (the usual full/quote/LTP mix) is walked once, with
    no memo: recording every prefix in the chains costs twice the whole decode on clean
    captures. Linear whatever the input: only a success returns (it consumes the bytes
    it walked), and a failure raises ``scan.frontier`` to where it stopped; a start
    before the frontier goes to the chains, so no byte is walked here twice after a
    failure. The steps count in ``scan.work``.
    """
    buf, limit = scan.buf, scan.limit
    if p < scan.frontier or p + 2 > limit:
        return None
    n = buf[p] << 8 | buf[p + 1]
    if n > JUMP_AFTER and scan.shortcuts:
        # Every packet whole below the limit: the re engine takes them at C speed. Else
        # the walk below finds where it stops (for the frontier).
        e = packet_re.jump(buf, p + 2, n, limit)
        if e >= 0:
            scan.plain += n
            return e
    known = KNOWN_SET
    j = p + 2
    walked = same = last = 0
    # Two loops on purpose: Kite's own messages take the plain one, without the run
    # bookkeeping of the second (per-packet work the walk of a clean capture never needs).
    if n <= UNIFORM_MAX_COUNT or not scan.shortcuts:  # Kite's own messages: a plain walk
        while walked < n and j + 2 <= limit:
            length = buf[j] << 8 | buf[j + 1]
            if length not in known:
                break
            j += 2 + length
            walked += 1
    while walked < n and j + 2 <= limit:
        length = buf[j] << 8 | buf[j + 1]
        if length not in known:
            break
        j += 2 + length
        walked += 1
        if length != last:
            last, same = length, 0
            continue
        same += 1
        if same >= RUN_AFTER and n - walked > LONG_RUN:
            # a long run of equal packets (more than UNIFORM_MAX_COUNT of them): strided compares
            k = same_length_run(scan.a, j, 2 + length, length, limit, n - walked)
            j += k * (2 + length)
            walked += k
            same = 0
    scan.plain += walked
    if walked == n and n and j <= limit:
        return j
    scan.frontier = max(scan.frontier, j)
    return None


ARRAY_AFTER = 16  # per-message steps before an array pass is tried
SMALL_STEP = 512  # ... when they averaged fewer bytes than this
ARRAY_BACKOFF = 1 << 12  # steps before trying again after passes that decided little
# A pass that decided most of its window: the next this many times wider (up to WINDOW or
# SPARSE_WINDOW: 4 kB, 64 kB, then the widest). A pass's fixed cost (~2 ms of numpy calls)
# is that of ~150 kB of a wide one, so a slow ramp from MIN_WINDOW costs a damaged chunk
# more than it saves when a pass stops early (which resets it to MIN_WINDOW either way).
GROWTH = 16


class RawReader:
    """``Framer``'s raw and single readers (one of its bases)."""

    # Off, the raw walk takes one step per message and bad region: the array passes'
    # differential tests compare against that (tests/support/raw_oracle.py).
    array_passes = True

    # -- raw: messages back to back, 1-byte heartbeats between them -----------------

    def _walk_raw(self, buf, base: int, final: bool):
        walk = _Walk()
        limit = len(buf)
        scan = _Scan(buf, self.shortcuts, self.chain_spares)
        p = 0
        # Array passes (``rawarray``) take over where the walk goes in small steps (tiny
        # messages, junk between them); big messages stay with the per-message loop,
        # which is cheaper for them. A pass that decides little backs off.
        steps, mark, due, size = 0, 0, ARRAY_AFTER, MIN_WINDOW
        while p < limit:
            if not self.resync and self.array_passes:
                steps += 1
                if steps >= due:
                    if p - mark < due * SMALL_STEP:
                        q, hi, places = walk_window(scan, buf, base, p, final, walk, size)
                        if 2 * (q - p) >= hi - p:
                            # Decided most of it: it stopped where the bytes past its end
                            # decide; a wider one goes on from there at once (wider still
                            # where places are sparse: a pass's fixed cost is what counts).
                            widest = WINDOW if places * SPARSE >= hi - p else SPARSE_WINDOW
                            due, size = ARRAY_AFTER, min(GROWTH * size, widest)
                            steps, mark, p = due, q, q
                            if p >= limit:
                                break
                            continue
                        due, size = min(2 * due, ARRAY_BACKOFF), MIN_WINDOW
                        p = q
                    steps, mark = 0, p
                    if p >= limit:
                        break
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
            # A message whose chain the chains have walked, or were told joins a walked
            # one (the resync's pre-filter found it), is read off them; else walked here.
            if e is None and not scan.strict.known(p + 2) and not scan.strict.joined(p + 2):
                e = _plain_end(scan, p)
            if e is None:
                e = scan.strict.message_end(p)
                if e - p > KNOWN_SPLIT and scan.shortcuts:
                    # a long message the chains validated: split reads its packets off them
                    walk.prefixes[p] = scan.strict.prefixes(p + 2, buf[p] << 8 | buf[p + 1])
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
            e = self._lenient_outcome(scan, e, final)
            if e == _NEED_MORE:
                break
            if e >= 0:
                walk.start.append(p)
                walk.size.append(e - p)
                p = e
                continue
            self._close_region(buf, base, p, q, walk, _describe_fault(scan, p))
            p = q
            if kind == _MORE:
                self.resync = True
                break
        return self._walk_done(walk, base, scan, p)

    def _walk_done(self, walk, base: int, scan, p: int):
        """A walk's end (raw and record framings): file positions, the work counted, ``p``."""
        walk.base = base  # file positions are base + start
        self.work += scan.work
        scan.release()  # (the chains' arrays, for the next chunk's walk)
        return walk, p

    @staticmethod
    def _close_region(buf, base, start, end, walk, reason) -> int:
        if end > start:
            walk.regions.append(_bad(buf, base, start, end, _region_reason(buf, start, end, reason)))
        return end

    # -- single: the whole file is one message (or one bare packet body) -------------

    def _walk_single(self, buf, base: int, final: bool):
        walk = _Walk()
        if not final:
            return walk, 0  # keep reading: the message is the whole file
        n = len(buf)
        if n == 1 and buf[0] == 0:
            walk.heartbeats = 1
        elif n:
            walk.start.append(0)
            walk.size.append(n)
            walk.bare.append(n in KNOWN_SET and _strict_end(buf, 0, n) != n)
        walk.file_start = [base + s for s in walk.start]
        return walk, n
