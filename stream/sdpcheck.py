"""A strict syntax check of a WebRTC offer's SDP, before any of it reaches aiortc (pure: no I/O, no aiortc).

aiortc's parser accepts much that is malformed and then fails, deep inside `setRemoteDescription`, with
whatever exception the bad line provokes (KeyError, IndexError, ...). This checks the grammar of the lines
that matter (RFC 8866, JSEP/RFC 8829, ICE/RFC 8839) and says, in one line, what is wrong:

* at most `MAX_SDP_CHARS` characters and `MAX_SDP_LINES` lines; no control characters; every line `x=value`
  with a known type; `v=0` first, then `o=`, `s=`, `t=`;
* each m-line well-formed (known media and transport, numeric formats for RTP); mids unique and the BUNDLE
  group naming only existing mids;
* each used m-section with its ICE credentials (4-256 and 22-256 ice-chars), a DTLS fingerprint of the right
  length for its hash, a `setup` role and a connection line (or a session-level one);
* candidates, rtpmap/fmtp/rtcp-fb, ssrc, extmap and sctp-port lines in their grammar, numbers in range.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

MAX_SDP_CHARS = 32 * 1024
MAX_SDP_LINES = 1000  # Chrome: ~150 for video and a data channel, more with audio and many candidates

LINE_TYPES = frozenset("vosiuepcbtrzkam")
MEDIA = frozenset({"audio", "video", "application", "text", "message"})
RTP_PROTOS = frozenset({"UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP", "RTP/SAVPF", "RTP/AVPF", "RTP/AVP", "RTP/SAVP"})
SCTP_PROTOS = frozenset({"UDP/DTLS/SCTP", "TCP/DTLS/SCTP", "DTLS/SCTP"})
HASH_BYTES = {"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}
SETUP_ROLES = frozenset({"actpass", "active", "passive", "holdconn"})
DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
CANDIDATE_TYPES = frozenset({"host", "srflx", "prflx", "relay"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}")
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_ENCODING = re.compile(r"[A-Za-z0-9_.+-]{1,32}")


class SdpError(ValueError):
    """The SDP is malformed; the message says where and what, for the client."""


@dataclass
class _Section:
    """One m-section's (or the session level's) attributes that the checks need."""

    line: int
    kind: str = ""
    port: int = 0
    proto: str = ""
    formats: list[str] = field(default_factory=list)
    mid: str | None = None
    ufrag: str | None = None
    pwd: str | None = None
    fingerprints: int = 0
    setup: str | None = None
    connection: bool = False
    direction: str | None = None
    rtpmap: set[str] = field(default_factory=set)
    sctp_port: bool = False


def check_sdp(sdp: str) -> None:
    """Raise SdpError unless `sdp` is a well-formed offer by the rules in the module docstring."""
    if len(sdp) > MAX_SDP_CHARS:
        raise SdpError(f"the SDP is longer than {MAX_SDP_CHARS} characters")
    lines = sdp.replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_SDP_LINES:
        raise SdpError(f"the SDP has more than {MAX_SDP_LINES} lines")
    session = _Section(0)
    sections: list[_Section] = []
    bundle: list[str] = []
    for number, line in enumerate(lines, 1):
        where = f"line {number}"
        if _CONTROL.search(line):
            raise SdpError(f"{where} has a control character")
        if len(line) < 2 or line[1] != "=" or line[0] not in LINE_TYPES:
            raise SdpError(f"{where} is not a known 'x=value' SDP line: {line[:40]!r}")
        kind, value = line[0], line[2:]
        if number == 1 and line != "v=0":
            raise SdpError('the SDP must start with "v=0"')
        if number == 2 and kind != "o":
            raise SdpError('line 2 must be the origin ("o=")')
        if kind == "v" and number != 1:
            raise SdpError(f'{where}: "v=" may only come first')
        current = sections[-1] if sections else session
        try:
            if kind == "o":
                _check_origin(value)
            elif kind == "t":
                _check_timing(value)
            elif kind == "c":
                _check_connection(value)
                current.connection = True
            elif kind == "m":
                sections.append(_media(value, number))
            elif kind == "a":
                group = _attribute(value, current, session)
                if group is not None:
                    bundle = group
        except SdpError as exc:
            raise SdpError(f"{where} ({line[:40]!r}...): {exc}") from None
    if not any(line.startswith("s=") for line in lines):
        raise SdpError('the SDP has no session name ("s=")')
    if not any(line.startswith("t=") for line in lines):
        raise SdpError('the SDP has no timing line ("t=")')
    _check_sections(session, sections, bundle)


def _check_sections(session: _Section, sections: list[_Section], bundle: list[str]) -> None:
    if not sections:
        raise SdpError('the SDP has no media ("m=") section')
    mids = [s.mid for s in sections if s.mid is not None]
    if len(mids) != len(set(mids)):
        raise SdpError("two media sections have the same mid")
    if any(m not in mids for m in bundle):
        raise SdpError("the BUNDLE group names a mid that no media section has")
    for s in sections:
        where = f"the {s.kind} section (line {s.line})"
        if s.port == 0:
            continue
        if s.mid is None:
            raise SdpError(f'{where} has no "a=mid"')
        if (s.ufrag or session.ufrag) is None or (s.pwd or session.pwd) is None:
            raise SdpError(f'{where} has no ICE credentials ("a=ice-ufrag", "a=ice-pwd")')
        if not (s.fingerprints or session.fingerprints):
            raise SdpError(f'{where} has no DTLS fingerprint ("a=fingerprint")')
        if (s.setup or session.setup) is None:
            raise SdpError(f'{where} has no DTLS role ("a=setup")')
        if not (s.connection or session.connection):
            raise SdpError(f'{where} has no connection line ("c=")')
        if s.proto in RTP_PROTOS:
            missing = [f for f in s.formats if int(f) >= 96 and f not in s.rtpmap]
            if missing:
                raise SdpError(f"{where}: payload type {missing[0]} has no a=rtpmap")
        elif not s.sctp_port:
            raise SdpError(f'{where} has no "a=sctp-port"')


def _media(value: str, number: int) -> _Section:
    fields = value.split(" ")
    if len(fields) < 4:
        raise SdpError("expected 'm=<media> <port> <proto> <format>...'")
    kind, port, proto, formats = fields[0], fields[1].split("/")[0], fields[2], fields[3:]
    if kind not in MEDIA:
        raise SdpError(f"unknown media {kind[:20]!r}")
    section = _Section(number, kind, _uint(port, 65535), proto, formats)
    if proto in RTP_PROTOS:
        for f in formats:
            _uint(f, 127)
    elif proto in SCTP_PROTOS:
        if formats != ["webrtc-datachannel"]:
            raise SdpError('the data channel format must be "webrtc-datachannel"')
    else:
        raise SdpError(f"unknown transport {proto[:30]!r}")
    return section


def _attribute(value: str, s: _Section, session: _Section) -> list[str] | None:
    """Check one `a=` line into `s`; the mids of a BUNDLE group line, else None."""
    name, _, arg = value.partition(":")
    if not _TOKEN.fullmatch(name):
        raise SdpError("malformed attribute name")
    if name == "group":
        semantics, *mids = arg.split(" ")
        _token(semantics)
        for mid in mids:
            _token(mid)
        return mids if semantics == "BUNDLE" else None
    if name == "mid":
        if s is session or s.mid is not None:
            raise SdpError("a mid belongs to one media section, once")
        s.mid = _token(arg, 32)
    elif name in ("ice-ufrag", "ice-pwd"):
        shortest = 4 if name == "ice-ufrag" else 22
        if not (shortest <= len(arg) <= 256 and _ICE_CHARS.fullmatch(arg)):
            raise SdpError(f"{name} must be {shortest}-256 letters, digits, '+' or '/'")
        previous = s.ufrag if name == "ice-ufrag" else s.pwd
        if previous is not None and previous != arg:
            raise SdpError(f"two different {name} values")
        if name == "ice-ufrag":
            s.ufrag = arg
        else:
            s.pwd = arg
    elif name == "fingerprint":
        algorithm, _, digest = arg.partition(" ")
        size = HASH_BYTES.get(algorithm.lower())
        if size is None or not _HEX_PAIRS.fullmatch(digest) or len(digest) != 3 * size - 1:
            raise SdpError("expected 'a=fingerprint:sha-256 XX:XX:...' with the hash's length")
        s.fingerprints += 1
    elif name == "setup":
        if arg not in SETUP_ROLES or (s.setup is not None and s.setup != arg):
            raise SdpError("setup must be one of actpass, active, passive, once")
        s.setup = arg
    elif name in DIRECTIONS:
        if arg or s.direction is not None:
            raise SdpError("one direction per section, without a value")
        s.direction = name
    elif name == "candidate":
        _check_candidate(arg)
    elif name in ("rtpmap", "fmtp", "rtcp-fb"):
        _check_payload_attribute(name, arg, s)
    elif name == "ssrc":
        ssrc, _, rest = arg.partition(" ")
        _uint(ssrc, 2**32 - 1)
        if not rest:
            raise SdpError("expected 'a=ssrc:<ssrc> <attribute>'")
    elif name == "ssrc-group":
        semantics, *ssrcs = arg.split(" ")
        _token(semantics)
        for ssrc in ssrcs:
            _uint(ssrc, 2**32 - 1)
    elif name == "extmap":
        ident, _, uri = arg.partition(" ")
        _uint(ident.split("/")[0], 255, lowest=1)
        if not uri or " " in uri.split(" ")[0] or len(uri) > 256:
            raise SdpError("expected 'a=extmap:<id> <uri>'")
    elif name in ("sctp-port", "max-message-size"):
        _uint(arg, 65535 if name == "sctp-port" else 2**32 - 1)
        s.sctp_port = s.sctp_port or name == "sctp-port"
    elif name == "rtcp":
        _uint(arg.split(" ")[0], 65535)
    return None


def _check_payload_attribute(name: str, arg: str, s: _Section) -> None:
    pt, _, rest = arg.partition(" ")
    if s.proto not in RTP_PROTOS:
        raise SdpError(f"{name} outside an RTP section")
    if not (name == "rtcp-fb" and pt == "*"):
        _uint(pt, 127)
        if pt not in s.formats:
            raise SdpError(f"payload type {pt} is not on the m-line")
    if not rest:
        raise SdpError(f"{name} needs a value after the payload type")
    if name == "rtpmap":
        encoding, *clock = rest.split("/")
        if not _ENCODING.fullmatch(encoding) or not 1 <= len(clock) <= 2:
            raise SdpError("expected 'a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]'")
        _uint(clock[0], 10_000_000, lowest=1)
        if len(clock) == 2:
            _uint(clock[1], 255, lowest=1)
        s.rtpmap.add(pt)


def _check_candidate(arg: str) -> None:
    fields = arg.split(" ")
    if len(fields) < 8 or fields[6] != "typ" or len(fields) % 2:
        raise SdpError(
            "expected 'a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...'"
        )
    foundation, component, transport, priority, address, port, _, kind = fields[:8]
    if not (len(foundation) <= 32 and _ICE_CHARS.fullmatch(foundation)):
        raise SdpError("malformed candidate foundation")
    _uint(component, 256, lowest=1)
    if transport.lower() not in ("udp", "tcp"):
        raise SdpError("candidate transport must be udp or tcp")
    _uint(priority, 2**32 - 1)
    _address(address)
    _uint(port, 65535)
    if kind not in CANDIDATE_TYPES:
        raise SdpError("unknown candidate type")
    for key in fields[8::2]:
        _token(key)


def _check_origin(value: str) -> None:
    fields = value.split(" ")
    if len(fields) != 6:
        raise SdpError("expected 'o=<user> <session id> <version> IN IP4|IP6 <address>'")
    _token(fields[0])
    _uint(fields[1], 2**64 - 1, digits=20)
    _uint(fields[2], 2**64 - 1, digits=20)
    _check_connection(" ".join(fields[3:]))


def _check_connection(value: str) -> None:
    fields = value.split(" ")
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ("IP4", "IP6"):
        raise SdpError("expected 'IN IP4|IP6 <address>'")
    _address(fields[2].split("/")[0])


def _check_timing(value: str) -> None:
    fields = value.split(" ")
    if len(fields) != 2:
        raise SdpError("expected 't=<start> <stop>'")
    for text in fields:
        _uint(text, 2**64 - 1, digits=20)


def _address(text: str) -> None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if not _HOSTNAME.fullmatch(text):
            raise SdpError(f"{text[:40]!r} is not an address") from None


def _token(text: str, longest: int = 64) -> str:
    if not _TOKEN.fullmatch(text) or len(text) > longest:
        raise SdpError(f"{text[:40]!r} is not a token")
    return text


def _uint(text: str, highest: int = 2**32 - 1, lowest: int = 0, digits: int = 10) -> int:
    if not (0 < len(text) <= digits and text.isascii() and text.isdigit()):
        raise SdpError(f"{text[:40]!r} is not a number")
    value = int(text)
    if not lowest <= value <= highest:
        raise SdpError(f"{value} is out of range ({lowest}..{highest})")
    return value
