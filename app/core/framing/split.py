"""Vectorised message splitting: the packets of many messages whose size is known, at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.framing.common import KNOWN_MASK, RUN_AFTER, same_length_run
from app.core.framing.messages import _merge_touching

# --- vectorised message splitting ----------------------------------------------


def _u16(a: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (a[at].astype(np.int64) << 8) | a[at + 1]


def _u16_or(a: np.ndarray, at: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """u16 at ``at`` where ``ok``, else 0 (``at`` may be past the end there)."""
    out = np.zeros(at.size, dtype=np.int64)
    out[ok] = _u16(a, at[ok])
    return out


_MANY = 4096  # packets in a message above which _walk_one looks for runs of equal ones
_LONG_RUN = 32  # packets still to walk before _walk_one looks for a run of equal ones
_FEW_MESSAGES = 8  # split_messages walks fewer long messages than this one by one


def _walk_one(payload: np.ndarray, c: int, e: int, count: int, k: int):
    """Packets ``k..count-1`` of one message whose packet ``k`` prefix is at ``c``, as
    ``split_messages``' vectorised step would find them: (packets walked, cursor, fault
    position or -1, fault length or -1 when its prefix is cut off, body positions, lengths
    as int64 arrays)."""
    buf = payload[c:e].tobytes()
    base, limit = c, len(buf)
    j = 0
    at: list[int] = []  # prefixes walked one by one since the last run (relative; lengths read after, numpy)
    append = at.append
    parts: list[tuple[np.ndarray, np.ndarray]] = []  # (positions, lengths): walked ones and runs, in order

    def walked():
        prefix = np.asarray(at, dtype=np.int64)
        return prefix + (base + 2), _u16(payload, prefix + base)

    def done(*state):
        if at:
            parts.append(walked())
        if not parts:
            return (*state, np.zeros(0, np.int64), np.zeros(0, np.int64))
        if len(parts) == 1:
            return (*state, *parts[0])
        return (*state, np.concatenate([p for p, _ in parts]), np.concatenate([q for _, q in parts]))

    runs = count > _MANY  # runs are looked for in messages longer than Kite's
    same = last = 0
    while k < count:
        if j + 2 > limit:
            return done(k, base + j, base + j, -1)
        length = buf[j] << 8 | buf[j + 1]
        after = j + 2 + length
        if after > limit:
            return done(k, base + j, base + j, length)
        append(j)
        j = after
        k += 1
        if length != last:
            last, same = length, 0
            continue
        same += 1
        if same >= RUN_AFTER and runs and count - k > _LONG_RUN:
            # a run of equal packets (one of 65,535 tiny ones, say): strided compares, whole bodies only
            step = 2 + length
            r = same_length_run(payload, c + j, step, length, c + limit, min(count - k, (limit - j) // step))
            if r:
                if at:
                    parts.append(walked())
                    at = []
                    append = at.append
                parts.append((np.arange(base + j + 2, base + j + 2 + r * step, step, dtype=np.int64),
                              np.full(r, length, dtype=np.int64)))
            j += r * step
            k += r
            same = 0
    return done(k, base + j, -1, 0)


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
) -> MessageSplit:
    """Split messages of known position and size into packets, packet k of all at once.

    ``bare`` marks messages that are one packet body without a message header (the
    base64 fixtures of single bodies). Unknown-length packets that fit are skipped by
    their prefix and reported as faults; whatever does not fit becomes one fault
    region running to the end of its message.
    """
    start = np.asarray(start, dtype=np.int64)
    size = np.asarray(size, dtype=np.int64)
    m = len(start)
    end = start + size
    if bare is None:
        bare = np.zeros(m, dtype=bool)
    framed_mask = ~bare & (size >= 2)
    # A JSON text frame ({"type": ...}) written into a binary capture: all of it is bad.
    text = np.zeros(m, dtype=bool)
    candidates = np.flatnonzero(framed_mask)
    # every message framed (the usual batch): whole-array views instead of gathers by index
    cand = slice(None) if candidates.size == m else candidates
    if candidates.size:
        text[cand] = (payload[start[cand]] == 0x7B) & (payload[start[cand] + 1] == 0x22)
        framed_mask &= ~text
    framed = np.flatnonzero(framed_mask)
    sel = slice(None) if framed.size == m else framed
    count = np.zeros(m, dtype=np.int64)
    count[sel] = _u16(payload, start[sel])
    cursor = start + 2
    fail_pos = np.full(m, -1, dtype=np.int64)
    fail_len = np.zeros(m, dtype=np.int64)
    done = np.zeros(m, dtype=np.int64)  # packets walked per message

    msgs, seqs, poss, lens = [], [], [], []
    tail = []  # (message, first k, positions, lengths): messages walked one by one
    active = framed[count[sel] > 0]
    k = 0
    while active.size:
        if active.size <= _FEW_MESSAGES and k >= _FEW_MESSAGES:
            # A few long messages left (one of 65,535 tiny packets, say): a numpy step
            # per packet would cost far more than a scalar walk of their prefixes.
            for i in active.tolist():
                k_end, c, fail, flen, at, ln = _walk_one(payload, int(cursor[i]), int(end[i]), int(count[i]), k)
                cursor[i] = c
                if fail >= 0:
                    fail_pos[i], fail_len[i], done[i] = fail, flen, k_end
                if at.size:
                    tail.append((i, k, at, ln))
            break
        every = active.size == m  # all messages still walking (a usual batch's first step): views
        c = cursor.copy() if every else cursor[active]
        e = end if every else end[active]
        has_prefix = c + 2 <= e
        if has_prefix.all():
            length = _u16(payload, c)
        else:
            length = np.zeros(active.size, dtype=np.int64)
            hp = np.flatnonzero(has_prefix)
            length[hp] = _u16(payload, c[hp])
        after = c + 2 + length
        fits = after <= e
        if fits.all():  # the usual case: nothing failed at packet k
            good = active
        else:
            good = active[fits]
            c, length, after = c[fits], length[fits], after[fits]
            failed = active[~fits]
            fail_pos[failed] = cursor[failed]
            fail_len[failed] = np.where(has_prefix[~fits], _u16_or(payload, cursor[failed], has_prefix[~fits]), -1)
            done[failed] = k
        msgs.append(good)
        seqs.append(k)
        poss.append(c + 2)
        lens.append(length)
        if every and good.size == m:
            cursor[:] = after
            active = good[count > k + 1]
        else:
            cursor[good] = after
            active = good[count[good] > k + 1]
        k += 1
    walked = np.zeros(m, dtype=np.int64)
    for k, good in enumerate(msgs):
        walked[good] = k + 1
    for i, k0, at, _ in tail:
        walked[i] = k0 + at.size
    done = np.where(fail_pos >= 0, done, walked)

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
        for i, k0, pos_t, len_t in tail:
            at = int(first[i]) + k0
            pkt_msg[at : at + pos_t.size] = i
            pkt_seq[at : at + pos_t.size] = np.arange(k0, k0 + pos_t.size, dtype=np.int32)
            pkt_pos[at : at + pos_t.size] = pos_t
            pkt_len[at : at + pos_t.size] = len_t
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

    header_bytes = 2 * framed.size + 2 * int(np.count_nonzero(~bare[pkt_msg])) if pkt_msg.size else 2 * framed.size
    known = KNOWN_MASK[pkt_len]
    valid = np.zeros(m, dtype=bool)
    valid[sel] = (fail_pos[sel] < 0) & (cursor[sel] == end[sel]) & (count[sel] > 0)
    valid[bare_idx] = True

    faults: list[tuple[int, int, int, str]] = []
    unknown = np.flatnonzero(~known)
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
    # Message-level faults: rare, so a Python loop over them only.
    broken = framed[~valid[sel] & ((fail_pos[sel] >= 0) | (cursor[sel] != end[sel]))]
    short = np.flatnonzero(~bare & (size < 2) & (size > 0))
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
    faults.sort(key=lambda f: f[1])
    faults = _merge_touching(faults)

    good = known
    packet_bytes = int(pkt_len[good].sum())
    bad_bytes = sum(f[2] for f in faults)
    return MessageSplit(
        pkt_msg=pkt_msg[good],
        pkt_seq=pkt_seq[good],
        pkt_pos=pkt_pos[good],
        pkt_len=pkt_len[good],
        valid=valid,
        faults=faults,
        header_bytes=header_bytes,
        packet_bytes=packet_bytes,
        bad_bytes=bad_bytes,
    )
