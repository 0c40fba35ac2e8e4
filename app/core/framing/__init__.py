"""Capture containers: detecting the framing and splitting a capture into packets.

This module owns everything between the file's bytes and a list of packet positions:
which container a capture uses (``detect_framing``), walking that container chunk by
chunk on message boundaries, validating each message, resynchronising after faults
and accounting for every byte of the file exactly once (packet body, message header,
container framing, heartbeat or bad). Field decoding lives in ``app.core.decode``.

Walking a container is sequential by nature (each length says where the next record
starts), so it is a Python loop over *messages*, kept cheap: a message whose packets
all share one length is validated with two C-level byte-slice counts. Where the raw
walk goes in small steps (tiny messages, junk between them) array passes take over
(``rawarray``: every start of a window checked at once, the walk's path taken a run
at a time). Splitting the accepted messages into packets is vectorised
(``split_messages`` walks packet k of all messages at once with numpy).

One job per module (the readers and the resynchronisation are ``Framer``'s bases):

- ``common``: the framings, message limits, ``BadPacket``, ``ChunkSplit`` and ``_Walk``;
- ``messages``: the message walker (``message_packets``, ``PacketChains``, checks, bad regions);
- ``packet_re``: chains of known-length packets followed by the ``re`` engine (C speed, no
  compiled code of ours);
- ``chains``: ``KnownChains``, the memoised chains the walks use, walked a segment at a
  time with ``packet_re`` (``PacketChains`` is the one-prefix-at-a-time reference);
- ``split``: vectorised splitting of accepted messages into packets (``split_messages``);
- ``record_formats``: the length-prefixed containers (``RecordFormat``, ``RECORD_FORMATS``);
- ``resync``: the anchor search after damage (``_Scan``, ``AnchorSearch``);
- ``raw``, ``records``, ``text``: the readers of each framing family (raw and single;
  length-prefixed; base64 and HAR);
- ``rawarray``: the raw reader's array passes (message boundaries, short resyncs and
  heartbeats of a window decided at once);
- ``framer``: ``Framer``, which walks a capture chunk by chunk with the reader of its framing;
- ``detect``: ``detect_framing`` and its evidence.
"""

from app.core.framing.common import BAD_RAW_CAP, FRAMINGS, BadPacket, ChunkSplit
from app.core.framing.detect import DETECT_HEAD, detect_framing, detect_framing_evidence
from app.core.framing.framer import Framer
from app.core.framing.messages import PacketChains, message_packets
from app.core.framing.record_formats import RECORD_FORMATS
from app.core.framing.split import split_messages

__all__ = [
    "BAD_RAW_CAP",
    "DETECT_HEAD",
    "FRAMINGS",
    "RECORD_FORMATS",
    "BadPacket",
    "ChunkSplit",
    "Framer",
    "PacketChains",
    "detect_framing",
    "detect_framing_evidence",
    "message_packets",
    "split_messages",
]
