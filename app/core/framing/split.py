"""Vectorised message splitting: the packets of many messages whose size is known, at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from app.core.framing import packet_re
from app.core.framing.common import KNOWN_MASK, same_length_run
from app.core.framing.messages import _merge_touching

# --- vectorised message splitting ----------------------------------------------


def _u16(a: np.ndarray, at: np.ndarray) -> np.ndarray:
    out = a[at].astype(np.int64)
    out <<= 8
    out |= a[at + 1]
    return out


def _u16_or(a: np.ndarray, at: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """u16 at ``at`` where ``ok``, else 0 (``at`` may be past the end there)."""
    out = np.zeros(at.size, dtype=np.int64)
    out[ok] = _u16(a, at[ok])
    return out


_UNKNOWN_MASK = ~KNOWN_MASK
# split_messages hands the messages still walking to _walk_long past packet _WALK_AFTER
# once they are at most _FEW_MESSAGES, or past packet _LONG_AFTER (longer than Kite's
# usual messages) once they are at most _SOME_MESSAGES: a vectorised step costs ~12 us +
# ~10 ns a message, _walk_long ~30 ns a packet in lanes, ~180 ns in Python steps (9
# messages of 46,000 packets took 46,000 vectorised steps, ~360 ms, while 9 were left).
_WALK_AFTER, _FEW_MESSAGES = 8, 8
_LONG_AFTER, _SOME_MESSAGES = 64, 128
_LANE, _LANE_K = packet_re.LANE, packet_re.LANE_K  # whole known packets per lane (one re match each)
_LOCKSTEP_LANES = 32  # fewer lanes are read by run_lengths (~85 ns a packet; a lockstep costs ~150 us + ~7 ns)


class EqualRun(NamedTuple):
    """``r`` packets of one ``length`` from body position ``body``, ``step`` bytes apart."""

    body: int
    step: int
    length: int
    r: int

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(body positions, lengths) as int64 arrays."""
        pos = np.arange(self.body, self.body + self.r * self.step, self.step, dtype=np.int64)
        return pos, np.full(self.r, self.length, dtype=np.int64)


def _bodies(x: int, lengths: np.ndarray) -> np.ndarray:
    """Body positions of packets of ``lengths`` one after another from prefix position ``x``."""
    body = np.empty(lengths.size, dtype=np.int64)
    if lengths.size:
        body[0] = x + 2
        np.cumsum(lengths[:-1] + 2, out=body[1:])
        body[1:] += x + 2
    return body


def _lockstep(payload: np.ndarray, lanes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Body positions and lengths (int64, row s: every lane's packet s) of the ``_LANE``
    packets from each lane's prefix position, all lanes one packet a step (each lane is
    known to hold ``_LANE`` whole packets)."""
    at = packet_re.lane_prefixes(payload, lanes)  # row s: every lane's prefix s
    lengths = at[1:] - at[:-1]
    lengths -= 2
    at[:-1] += 2
    return at[:-1], lengths


def _plan(payload: np.ndarray, c: int, e: int, count: int, k: int, lanes: list[int]) -> tuple:
    """``_walk_long``'s walk of one message: its answer's first four items and its pieces
    in order, (positions, lengths) arrays, ``EqualRun`` or [first lane, end lane, end
    position] of ``lanes``, to which it adds the prefix positions of its lanes."""
    block = packet_re.exact(_LANE_K).match
    buf = payload[c:e].tobytes()
    limit = e - c
    j, rem = 0, count - k
    fail, flen = -1, 0
    pieces: list = []
    at: list[int] = []  # prefixes (relative) taken one by one since the last piece
    append = at.append

    def flush():
        if at:
            prefix = np.asarray(at, dtype=np.int64) + c
            pieces.append((prefix + 2, _u16(payload, prefix)))
            at.clear()

    while rem:
        first = len(lanes)
        while rem >= _LANE:
            m = block(buf, j, limit)
            if m is None:
                break
            x = m.end()
            length = packet_re.equal_lane(buf, j, x)
            if length is not None:
                # _LANE equal packets: the run of them, strided compares
                step = 2 + length
                flush()
                if len(lanes) > first:
                    pieces.append([first, len(lanes), c + j])
                most = min(rem - _LANE, (limit - x) // step)
                r = _LANE + same_length_run(payload, c + x, step, length, e, most)
                pieces.append(EqualRun(c + j + 2, step, length, r))
                j += r * step
                rem -= r
                first = len(lanes)
                continue
            lanes.append(c + j)
            j = x
            rem -= _LANE
        if len(lanes) > first:
            flush()
            pieces.append([first, len(lanes), c + j])  # a block of lanes and where it ends
        # Fewer than _LANE whole known packets from j (a packet of unknown length, or one
        # that does not fit, within them), or fewer still to walk: Python steps, as many
        # as a lane holds (a failed match costs at most as much as the packets it read).
        stop = rem - min(_LANE, rem)
        while rem > stop:
            if j + 2 > limit:
                fail, flen = j, -1
                break
            length = buf[j] << 8 | buf[j + 1]
            after = j + 2 + length
            if after > limit:
                fail, flen = j, length
                break
            append(j)
            j = after
            rem -= 1
        if fail >= 0:
            break
    flush()
    state = (count - rem, c + j, c + fail, flen) if fail >= 0 else (count, c + j, -1, 0)
    return state, pieces


def _walk_long(payload: np.ndarray, items: list[tuple[int, int, int, int]]) -> list[tuple]:
    """Packets ``k..count-1`` of each message ``(c, e, count, k)`` whose packet ``k`` prefix
    is at ``c`` (message end ``e``), as ``split_messages``' vectorised step would find
    them, one answer per message: (packets walked, cursor, fault position or -1, fault
    length or -1 when its prefix is cut off, parts), the parts in order as (body
    positions, lengths) int64 arrays of the same shape, 1-D or 2-D (row-major order),
    or ``EqualRun`` (written in place by ``split_messages``).

    Runs of whole known-length packets are followed by the re engine (``packet_re``):
    every ``_LANE`` packets an anchor (one exact-count match), then the packets between
    anchors of all messages are read in lockstep, ``_LANE`` numpy steps over all lanes;
    runs of equal packets are strided compares (``same_length_run``). Where fewer than
    ``_LANE`` whole known packets follow (a packet whose length is unknown, taken when it
    fits and a fault later, or one that does not fit), the next ``_LANE`` packets are
    Python steps.
    """
    if not payload.flags.c_contiguous:  # the re engine reads the buffer itself
        payload = np.ascontiguousarray(payload)
    lanes: list[int] = []  # prefix positions, each followed by _LANE whole known packets
    plans = [_plan(payload, c, e, count, k, lanes) for c, e, count, k in items]
    if len(lanes) >= _LOCKSTEP_LANES:
        lane_pos, lane_len = _lockstep(payload, lanes)

        def lane_block(a, b, _):
            return lane_pos[:, a:b].T, lane_len[:, a:b].T
    else:

        def lane_block(a, _, stop):
            lengths = packet_re.run_lengths(payload, lanes[a], stop)
            return _bodies(lanes[a], lengths), lengths

    return [(*state, [lane_block(*p) if type(p) is list else p for p in pieces]) for state, pieces in plans]


def _walk_long_known(payload: np.ndarray, items: list, start: np.ndarray, idx: list, known: dict | None) -> list:
    """``_walk_long``'s answers for ``items`` (messages ``idx``), those of messages whose
    prefix positions ``known`` holds (by start) read from there: every packet whole."""
    got = [known.get(int(start[i])) for i in idx] if known else [None] * len(idx)
    rest = [item for item, prefixes in zip(items, got, strict=True) if prefixes is None]
    walked = iter(_walk_long(payload, rest) if rest else ())
    out = []
    for (_c, e, count, k), prefixes in zip(items, got, strict=True):
        if prefixes is None:
            out.append(next(walked))
            continue
        at = prefixes[k:]
        out.append((count, e, -1, 0, [(at + 2, _u16(payload, at))] if at.size else []))
    return out


@dataclass
class MessageSplit:
    """Packets of a batch of messages (indexes are into the batch's message arrays)."""

    pkt_msg: np.ndarray  # int64 index of the message in the batch
    pkt_seq: np.ndarray  # int32
    pkt_pos: np.ndarray  # int64 (known lengths only)
    pkt_len: np.ndarray
    valid: np.ndarray  # bool per message: every packet known and they add up exactly
    faults: list[tuple[int, int, int, str]]  # (message index, payload pos, length, reason)
    header_bytes: int
    packet_bytes: int
    bad_bytes: int


def split_messages(
    payload: np.ndarray,
    start: np.ndarray,
    size: np.ndarray,
    bare: np.ndarray | None = None,
    known: dict | None = None,
) -> MessageSplit:
    """Split messages of known position and size into packets, packet k of all at once.

    ``bare`` marks messages that are one packet body without a message header (the
    base64 fixtures of single bodies). Unknown-length packets that fit are skipped by
    their prefix and reported as faults; whatever does not fit becomes one fault
    region running to the end of its message. ``known`` maps the start of a long message
    the walk validated to its packets' prefix positions, read off the walk's chains
    (``KnownChains.prefixes``): they are not walked again.
    """
    start = np.asarray(start, dtype=np.int64)
    size = np.asarray(size, dtype=np.int64)
    m = len(start)
    if (bare is None or not bare.any()) and _one_packet_each(payload, start, size):
        # one packet filling each message (tiny messages): what the walk below finds for
        # them at its first step, without its cursors, fault arrays and packet placing
        return _split_of(np.arange(m), np.zeros(m, dtype=np.int32), start + 4, size - 4, np.ones(m, dtype=bool),
                         4 * m, [])
    end = start + size
    if bare is None:
        bare = np.zeros(m, dtype=bool)
        framed_mask = size >= 2
    else:
        framed_mask = ~bare & (size >= 2)
    # A JSON text frame ({"type": ...}) written into a binary capture: all of it is bad.
    text = np.zeros(m, dtype=bool)
    # every message framed (the usual batch): whole-array views instead of gathers by
    # index, and the index arrays made by arange, not searched for (nonzero costs more)
    every_framed = bool(framed_mask.all())
    candidates = np.arange(m) if every_framed else np.flatnonzero(framed_mask)
    cand = slice(None) if every_framed else candidates
    high = low = None  # the count's bytes of every candidate
    if candidates.size:
        at = start[cand]
        high, low = payload[at], payload[at + 1]
        brace = high == 0x7B
        if brace.any():
            brace &= low == 0x22
            text[cand] = brace
            framed_mask &= ~text
    framed = candidates if every_framed and not text.any() else np.flatnonzero(framed_mask)
    sel = slice(None) if framed.size == m else framed
    if m and framed.size == m:  # every message framed, none text: the bytes read above
        count = high.astype(np.int64)
        count <<= 8
        count |= low
    else:
        count = np.zeros(m, dtype=np.int64)
        count[sel] = _u16(payload, start[sel])
    cursor = start + 2
    fail_pos = np.full(m, -1, dtype=np.int64)
    fail_len = np.zeros(m, dtype=np.int64)
    done = np.zeros(m, dtype=np.int64)  # packets walked per message

    msgs, seqs, poss, lens = [], [], [], []
    tail = []  # (message, first k, packets, parts): messages walked by _walk_long
    counted = count[sel] > 0
    active = framed if counted.all() else framed[counted]
    failures = False  # any message failed (fail_pos set)
    k = 0
    while active.size:
        if k >= _WALK_AFTER and (
            active.size <= _FEW_MESSAGES or (k >= _LONG_AFTER and active.size <= _SOME_MESSAGES)
        ):
            # A few long messages left (one of 65,535 tiny packets, say): a numpy step
            # per packet would cost far more than a scalar walk of their prefixes.
            idx = active.tolist()
            items = [(int(cursor[i]), int(end[i]), int(count[i]), k) for i in idx]
            for i, (k_end, c, fail, flen, parts) in zip(idx, _walk_long_known(payload, items, start, idx, known),
                                                        strict=True):
                cursor[i] = c
                if fail >= 0:
                    fail_pos[i], fail_len[i], done[i] = fail, flen, k_end
                    failures = True
                n = sum(p.r if type(p) is EqualRun else p[0].size for p in parts)
                if n:
                    tail.append((i, k, n, parts))
            break
        every = active.size == m  # all messages still walking (a usual batch's first step): views
        c = cursor if every else cursor[active]  # (cursor is written only after c's last use)
        e = end if every else end[active]
        body = c + 2
        has_prefix = body <= e
        if has_prefix.all():
            length = _u16(payload, c)
        else:
            length = np.zeros(active.size, dtype=np.int64)
            hp = np.flatnonzero(has_prefix)
            length[hp] = _u16(payload, c[hp])
        after = body + length
        fits = after <= e
        if fits.all():  # the usual case: nothing failed at packet k
            good = active
        else:
            good = active[fits]
            body, length, after = body[fits], length[fits], after[fits]
            failed = active[~fits]
            fail_pos[failed] = cursor[failed]
            fail_len[failed] = np.where(has_prefix[~fits], _u16_or(payload, cursor[failed], has_prefix[~fits]), -1)
            done[failed] = k
            failures = True
        msgs.append(good)
        seqs.append(k)
        poss.append(body)
        lens.append(length)
        if every and good.size == m:
            cursor[:] = after
            more = count > k + 1
            active = good[more] if more.any() else good[:0]  # (none: one-packet messages)
        else:
            cursor[good] = after
            active = good[count[good] > k + 1]
        k += 1
    walked = np.zeros(m, dtype=np.int64)
    for k, good in enumerate(msgs):
        if good.size == m:  # every message (distinct indexes)
            walked.fill(k + 1)
        else:
            walked[good] = k + 1
    for i, k0, n, _ in tail:
        walked[i] = k0 + n
    done = np.where(fail_pos >= 0, done, walked) if failures else walked

    bare_idx = np.flatnonzero(bare)
    if len(msgs) == 1 and not tail and not bare_idx.size:
        # one packet per message (tiny messages): the packets are the first step's, in order
        pkt_msg, pkt_pos, pkt_len = msgs[0], poss[0], lens[0]
        pkt_seq = np.zeros(pkt_msg.size, dtype=np.int32)
    elif msgs or tail or bare_idx.size:
        # File order is (message, packet number): place each packet without sorting.
        per_message = walked.copy()
        per_message[bare_idx] = 1
        first = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(per_message, out=first[1:])
        total = int(first[-1])
        pkt_msg = np.empty(total, dtype=np.int64)
        pkt_seq = np.empty(total, dtype=np.int32)
        pkt_pos = np.empty(total, dtype=np.int64)
        pkt_len = np.empty(total, dtype=np.int64)
        for k, (good, pos_k, len_k) in enumerate(zip(msgs, poss, lens, strict=True)):
            at = first[good] + k
            pkt_msg[at] = good
            pkt_seq[at] = k
            pkt_pos[at] = pos_k
            pkt_len[at] = len_k
        for i, k0, n, parts in tail:
            at = int(first[i]) + k0
            pkt_msg[at : at + n] = i
            pkt_seq[at : at + n] = np.arange(k0, k0 + n, dtype=np.int32)
            for part in parts:
                if type(part) is EqualRun:  # written in place: no arrays of its own
                    to = at + part.r
                    pos = pkt_pos[at:to]
                    pos.fill(part.step)
                    pos[0] = part.body
                    np.cumsum(pos, out=pos)
                    pkt_len[at:to] = part.length
                else:
                    pos_t, len_t = part
                    to = at + pos_t.size
                    pkt_pos[at:to].reshape(pos_t.shape)[...] = pos_t
                    pkt_len[at:to].reshape(len_t.shape)[...] = len_t
                at = to
        if bare_idx.size:
            at = first[bare_idx]
            pkt_msg[at] = bare_idx
            pkt_seq[at] = 0
            pkt_pos[at] = start[bare_idx]
            pkt_len[at] = size[bare_idx]
    else:
        pkt_msg = np.zeros(0, np.int64)
        pkt_seq = np.zeros(0, np.int32)
        pkt_pos = np.zeros(0, np.int64)
        pkt_len = np.zeros(0, np.int64)

    # 2 bytes of prefix per packet of a framed message (a bare one has none)
    framed_packets = pkt_msg.size - (int(np.count_nonzero(bare[pkt_msg])) if bare_idx.size else 0)
    header_bytes = 2 * framed.size + 2 * framed_packets
    valid = np.zeros(m, dtype=bool)
    valid[sel] = (cursor[sel] == end[sel]) & (count[sel] > 0)
    if failures:
        valid[sel] &= fail_pos[sel] < 0
    valid[bare_idx] = True

    # Message-level faults: rare, so a Python loop over them only. (Messages whose packets
    # are whole but of unknown length are valid here, and none of them is broken.)
    invalid = framed[np.flatnonzero(~valid[sel])]
    broken = invalid[(fail_pos[invalid] >= 0) | (cursor[invalid] != end[invalid])]
    # (when every message is a framed candidate, none is short)
    short = np.zeros(0, np.int64) if every_framed else np.flatnonzero(~bare & (size < 2) & (size > 0))
    faults: list[tuple[int, int, int, str]] = []
    for i in broken.tolist():
        n, e = int(count[i]), int(end[i])
        if fail_pos[i] >= 0:
            at = int(fail_pos[i])
            walked = int(done[i])
            if at == e:
                # Every byte is a whole packet: the wrong count is the bad part, and a
                # region is never empty, so the 2-byte count is the region (not header).
                faults.append((i, int(start[i]), 2, f"message announces {n} packets but holds only {walked}"))
                header_bytes -= 2
                continue
            elif fail_len[i] < 0:
                reason = f"message announces {n} packets but packet {walked}'s length prefix is cut off"
            else:
                reason = (
                    f"packet {walked} of {n}: length {int(fail_len[i])} overruns the message "
                    f"(size {int(size[i])}) by {at + 2 + int(fail_len[i]) - e} bytes"
                )
        else:
            at = int(cursor[i])
            if n == 0:
                reason = f"message with 0 packets and {e - at} more bytes"
            else:
                reason = f"{e - at} bytes after the last of the message's {n} packets: sizes do not add up"
        faults.append((i, at, e - at, reason))
    for i in np.flatnonzero(text).tolist():
        faults.append((i, int(start[i]), int(size[i]), f"JSON text frame in a binary capture ({int(size[i])} bytes)"))
    for i in short.tolist():
        faults.append((i, int(start[i]), int(size[i]), f"{int(size[i])}-byte message is not a heartbeat"))
    return _split_of(pkt_msg, pkt_seq, pkt_pos, pkt_len, valid, header_bytes, faults)


def _one_packet_each(payload: np.ndarray, start: np.ndarray, size: np.ndarray) -> bool:
    """Whether each message (none empty) is one packet that fills it: its first 4 bytes
    are a count of 1 and a length of its size less those 4. Read as one big-endian u32
    a message (a gather of one unaligned word, not four of bytes)."""
    if not start.size or not payload.flags.c_contiguous or int(size.min()) < 4 or int(size.max()) > 4 + 0xFFFF:
        return False
    words = np.ndarray((payload.size - 3,), dtype=">u4", buffer=payload, strides=(1,))
    return bool((words[start] == size + ((1 << 16) - 4)).all())


def _split_of(pkt_msg, pkt_seq, pkt_pos, pkt_len, valid, header_bytes: int, message_faults: list) -> MessageSplit:
    """The ``MessageSplit`` of the packets found (in file order), the messages' validity and
    header bytes so far and their message-level faults: a packet of unknown length is a
    fault of its own (its message invalid); the faults in order, those of a message that
    touch merged; the known packets kept."""
    unknown_mask = _UNKNOWN_MASK[pkt_len]
    faults: list[tuple[int, int, int, str]] = []
    unknown = np.flatnonzero(unknown_mask)
    if unknown.size:
        valid[pkt_msg[unknown]] = False
        for i in unknown.tolist():
            length = int(pkt_len[i])
            if length == 0:
                # A packet of length 0 has no body: its 2-byte prefix is the bad region
                # (a region is never empty), so that prefix is not counted as header.
                faults.append((int(pkt_msg[i]), int(pkt_pos[i]) - 2, 2, "unknown packet length 0"))
                header_bytes -= 2
            else:
                faults.append((int(pkt_msg[i]), int(pkt_pos[i]), length, f"unknown packet length {length}"))
    faults += message_faults
    faults.sort(key=lambda f: f[1])
    faults = _merge_touching(faults)

    if not unknown.size:  # every packet known (the usual case): no copies
        pkt_msg_k, pkt_seq_k, pkt_pos_k, pkt_len_k = pkt_msg, pkt_seq, pkt_pos, pkt_len
    else:
        known = ~unknown_mask
        pkt_msg_k, pkt_seq_k, pkt_pos_k, pkt_len_k = pkt_msg[known], pkt_seq[known], pkt_pos[known], pkt_len[known]
    packet_bytes = int(pkt_len_k.sum())
    bad_bytes = sum(f[2] for f in faults)
    return MessageSplit(
        pkt_msg=pkt_msg_k,
        pkt_seq=pkt_seq_k,
        pkt_pos=pkt_pos_k,
        pkt_len=pkt_len_k,
        valid=valid,
        faults=faults,
        header_bytes=header_bytes,
        packet_bytes=packet_bytes,
        bad_bytes=bad_bytes,
    )
