"""The ICE candidates of an offer and of our answer: whether a candidate pair can exist, and the one change the
offer needs before aiortc sees it (pure: SDP text in, decisions out; no aiortc).

Browsers hide their host addresses behind random `<uuid>.local` names (mDNS candidates) unless the page is
capturing or has camera permission. Firefox then sends a non-trickle offer whose only candidates are such names,
followed by `a=end-of-candidates`. What aioice does with that offer:

* it asks the local network for each name (multicast DNS, a 1 s timeout, inside setRemoteDescription). The answer
  comes only from the browser's own machine on the same link: for a server on another network it never comes;
* on `a=end-of-candidates` it drops every component that has no remote candidate yet. aiortc gathers the server's
  own candidates only afterwards (in setLocalDescription), for the components left: none, so the answer carries no
  candidate of ours, and connect() with an empty check list fails ICE at once. Even with candidates, the browser's
  connectivity checks, from which the server would learn its address as a peer-reflexive candidate (RFC 8445
  section 7.3.1.3), would reach a connection that had already failed.

The fix is at the signalling boundary, not in aioice: when the offer has mDNS candidates, `prepare_offer` removes
them and the `a=end-of-candidates` lines. Without end-of-candidates aioice keeps ICE open, so the browser's first
check (it sends one to each of our candidates as soon as it has the answer) becomes a peer-reflexive candidate,
is answered, checked back and nominated; the mDNS draft (draft-ietf-mmusic-mdns-ice-candidates section 3.2.2)
expects exactly this of an agent that cannot resolve a name. The names go too: resolving them would cost up to
1 s of every answer in multicast queries that only the browser's own link can answer, and where they do resolve
they name the very address the browser's checks come from. Resolving longer, or trickling the names in later,
would only make a remote server wait longer for nothing.

Giving up is then the server's job: `peer_unheard` says when an offer whose usable candidates are all names has
given the server no peer-reflexive candidate by `SessionLimits.peer_check_timeout_s` after the answer (the
browser starts checking as soon as it has the answer; without a check no pair can form). Offers with addresses only keep
`a=end-of-candidates`, so aioice fails them itself when every pair has failed.

`check_pairing` refuses, before a 200, an answer that cannot connect: the server offers no UDP address of its own,
or the offer is complete (`a=end-of-candidates`) and none of its candidates can pair with ours (TCP only, names
that are not mDNS, an address family the server has none of, or no candidate at all). Component 1 only (RTP and
RTCP are multiplexed); aioice is UDP-only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

END_OF_CANDIDATES = "a=end-of-candidates"
_MDNS = re.compile(r"[A-Za-z0-9-]{1,63}\.local")  # aioice's test, so both sides agree on what is a name


class IceError(ValueError):
    """No candidate pair can exist between the offer and the server; the message says why, for the client."""


@dataclass(frozen=True)
class Candidate:
    """One `a=candidate` line: transport in lower case, address as written (IP or name)."""

    component: int
    transport: str
    address: str
    port: int
    kind: str

    @property
    def mdns(self) -> bool:
        return _MDNS.fullmatch(self.address) is not None

    @property
    def family(self) -> int | None:
        """4 or 6 for an IP address, None for a name."""
        try:
            return ipaddress.ip_address(self.address).version
        except ValueError:
            return None

    def describe(self) -> str:
        where = "an mDNS name" if self.mdns else self.address if self.family else f"the name {self.address}"
        return f"{self.transport} {self.kind} {where}"


@dataclass(frozen=True)
class OfferIce:
    """What the offer says about ICE: its component-1 candidates and whether it declared them complete."""

    candidates: tuple[Candidate, ...]
    complete: bool
    ended_removed: bool  # prepare_offer took `a=end-of-candidates` out

    @property
    def udp(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.transport == "udp" and (c.mdns or c.family is not None))

    @property
    def names_only(self) -> bool:
        """Every usable candidate is an mDNS name: the server learns the peer's address from its checks."""
        return bool(self.udp) and all(c.mdns for c in self.udp)

    def summary(self) -> str:
        """For the log: counts by kind, and what was changed."""
        mdns = sum(c.mdns for c in self.udp)
        text = f"{len(self.candidates)} candidate lines ({len(self.udp)} UDP, {mdns} of them mDNS names)"
        text += ", end-of-candidates" if self.complete else ", trickle (no end-of-candidates)"
        if any(c.mdns for c in self.candidates):
            text += "; mDNS names and end-of-candidates left out, the browser's checks give its address"
        return text


def parse_candidates(sdp: str) -> tuple[Candidate, ...]:
    """The component-1 `a=candidate` lines of `sdp` (already syntax-checked by stream.sdpcheck)."""
    found = []
    for line in sdp.splitlines():
        if not line.startswith("a=candidate:"):
            continue
        fields = line[len("a=candidate:") :].split(" ")
        if len(fields) < 8 or not fields[1].isdigit() or not fields[5].isdigit():
            continue
        component = int(fields[1])
        if component == 1:
            found.append(Candidate(component, fields[2].lower(), fields[4], int(fields[5]), fields[7]))
    return tuple(found)


def prepare_offer(sdp: str) -> tuple[str, OfferIce]:
    """The SDP to give aiortc and what its ICE lines say: without its mDNS candidates and `a=end-of-candidates`
    when it has mDNS candidates (see the module docstring), unchanged otherwise."""
    candidates = parse_candidates(sdp)
    lines = sdp.splitlines(keepends=True)
    complete = any(line.rstrip("\r\n") == END_OF_CANDIDATES for line in lines)
    if not any(c.mdns for c in candidates):
        return sdp, OfferIce(candidates, complete, ended_removed=False)
    kept = "".join(line for line in lines if not _mdns_line(line) and line.rstrip("\r\n") != END_OF_CANDIDATES)
    return kept, OfferIce(candidates, complete, ended_removed=complete)


def _mdns_line(line: str) -> bool:
    fields = line.split(" ")
    return line.startswith("a=candidate:") and len(fields) > 4 and _MDNS.fullmatch(fields[4]) is not None


def check_pairing(offer: OfferIce, answer_sdp: str) -> None:
    """Raise IceError if no candidate pair can exist between `offer` and our answer (rules in the module
    docstring)."""
    ours = [c for c in parse_candidates(answer_sdp) if c.transport == "udp" and c.family is not None]
    if not ours:
        raise IceError(
            "the server has no network address to receive media on (no UDP candidate of its own): "
            "it needs a network interface other than loopback"
        )
    if not offer.complete:
        return  # more may come, and the browser's checks can still reach our candidates
    families = {c.family for c in ours if c.family is not None}
    pairable = [c for c in offer.udp if c.mdns or c.family in families]
    if pairable:
        return
    if not offer.candidates:
        raise IceError(
            "the offer has no ICE candidates and says it has no more (a=end-of-candidates): "
            "the browser found no network address to connect from"
        )
    theirs = ", ".join(sorted({c.describe() for c in offer.candidates}))
    have = " and ".join(f"IPv{f}" for f in sorted(families))
    raise IceError(
        f"none of the offer's ICE candidates can reach this server, which receives UDP on {have} only "
        f"(the offer has: {theirs})"
    )


def peer_unheard(offer: OfferIce, remote_addresses: Sequence[str], waited_s: float) -> str | None:
    """Why the session cannot connect, when an offer of names only has given the server no peer address
    (`remote_addresses`: the remote candidates the ICE transport knows, resolved or learned) in the `waited_s`
    seconds since the answer; None while a pair may still form. When to ask is the session core's timer
    (`SessionLimits.peer_check_timeout_s`)."""
    if not offer.names_only or remote_addresses:
        return None
    return (
        f"no connectivity check from the browser reached the server within {waited_s:.0f} s, and its "
        "mDNS candidates (.local names) do not resolve from here: the browser cannot reach the server's addresses"
    )
