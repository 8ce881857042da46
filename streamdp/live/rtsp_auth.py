"""Authentication of the built-in RTSP server's clients: Digest (RFC 2617 / RFC 7616, MD5) and,
when asked for, Basic.

``RtspAuth(credentials="user:password", scheme="digest"|"basic"|"any")``; the connection calls
``check(method, uri, authorization, owner)`` for every request but OPTIONS and answers ``401`` with
the verdict's ``challenges`` (one ``WWW-Authenticate`` header each) when it is refused.

Digest as RTSP clients speak it: the challenge offers ``qop="auth"``; FFmpeg answers with
``qop=auth, nc, cnonce``, GStreamer and live555 (VLC) answer the RFC 2069 form without qop, which
is accepted too. What the server holds to:

* Nonces come from ``secrets``, live ``nonce_ttl_s`` seconds and belong to the connection they
  were issued on: a response captured on one connection is refused on any other. At most
  ``max_nonces`` are held (the oldest go first), and a connection that is challenged again gets
  its live nonce back rather than a new one: a client spamming requests cannot grow memory.
* A response is compared in constant time (``hmac.compare_digest``), for the ``uri`` the request
  line names (a response made for another URI is refused), with ``nc`` strictly increasing per
  nonce under ``qop=auth`` (a replayed request is refused).
* A correct response on a nonce that expired, was evicted or is another connection's gets ``401``
  with ``stale=true`` and a fresh nonce: clients retry without asking the user again.
* Only the password's hash ``HA1 = MD5(user:realm:password)`` is kept; nothing here logs a
  header, a nonce or a response (refusals are logged at debug level by reason only).

Digest proves the reader knows the password without sending it; it does not encrypt the stream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["SCHEMES", "AuthVerdict", "RtspAuth", "digest_response", "parse_digest"]

log = logging.getLogger(__package__ + ".rtsp_server")

SCHEMES = ("digest", "basic", "any")
REALM = "streamdp"
NONCE_TTL_S = 120.0  # long enough for a handshake and the keep-alives after it; then stale=true
MAX_NONCES = 1024  # nonces held at once, every connection together
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)')
_NC_RE = re.compile(r"[0-9a-fA-F]{8}")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def digest_response(ha1: str, method: str, uri: str, nonce: str, qop: str | None = None,
                    nc: str = "", cnonce: str = "") -> str:
    """The ``response`` of RFC 2617 section 3.2.2.1 (MD5): with ``qop="auth"``, or the RFC 2069
    form when ``qop`` is None. ``ha1`` is ``MD5(user:realm:password)``."""
    ha2 = _md5(f"{method}:{uri}")
    if qop is None:
        return _md5(f"{ha1}:{nonce}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def parse_digest(value: str) -> dict[str, str] | None:
    """The parameters of ``Digest k=v, k="v", ...`` (names lower-cased), or None if it is not one."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if m is None or m.end() == pos:
            return None
        quoted, token = m.group(2), m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token
        pos = m.end()
    return params


@dataclass(frozen=True)
class AuthVerdict:
    ok: bool
    challenges: list[str] = field(default_factory=list)  # WWW-Authenticate values when refused
    reason: str = ""  # why it was refused (for a debug log: never a header's content)


@dataclass
class _Nonce:
    owner: int  # the connection it was issued on
    issued: float
    last_nc: int = 0


class RtspAuth:
    """One server's credentials and its live nonces (used from the server's event loop only)."""

    def __init__(self, credentials: str, scheme: str = "digest", realm: str = REALM,
                 nonce_ttl_s: float = NONCE_TTL_S, max_nonces: int = MAX_NONCES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"RTSP auth scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
        user, sep, password = credentials.partition(":")
        if not sep or not user:
            raise ValueError("RTSP credentials must be 'user:password'")
        self.scheme = scheme
        self.realm = realm
        self.nonce_ttl_s = nonce_ttl_s
        self.max_nonces = max(1, max_nonces)
        self.clock = clock
        self._user = user.encode("utf-8")
        self._ha1 = _md5(f"{user}:{realm}:{password}")
        self._basic = ("Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")).encode("ascii")
        self._nonces: OrderedDict[str, _Nonce] = OrderedDict()  # oldest first
        self._by_owner: dict[int, str] = {}

    # ------------------------------------------------------------------------------ nonces

    def _live(self, nonce: str | None) -> _Nonce | None:
        entry = self._nonces.get(nonce or "")
        if entry is not None and self.clock() - entry.issued > self.nonce_ttl_s:
            self._drop(nonce or "")
            return None
        return entry

    def _drop(self, nonce: str) -> None:
        entry = self._nonces.pop(nonce, None)
        if entry is not None and self._by_owner.get(entry.owner) == nonce:
            del self._by_owner[entry.owner]

    def _nonce_for(self, owner: int, fresh: bool = False) -> str:
        current = self._by_owner.get(owner)
        if not fresh and current is not None and self._live(current) is not None:
            return current
        if current is not None:
            self._drop(current)
        while len(self._nonces) >= self.max_nonces:
            self._drop(next(iter(self._nonces)))
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = _Nonce(owner, self.clock())
        self._by_owner[owner] = nonce
        return nonce

    def forget(self, owner: int) -> None:
        """The connection ``owner`` is gone: its nonce with it."""
        nonce = self._by_owner.get(owner)
        if nonce is not None:
            self._drop(nonce)

    def held(self) -> int:
        return len(self._nonces)

    # ------------------------------------------------------------------------------ checks

    def challenges(self, owner: int, stale: bool = False) -> list[str]:
        out = []
        if self.scheme in ("digest", "any"):
            nonce = self._nonce_for(owner, fresh=stale)
            out.append(f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'
                       + (", stale=true" if stale else ""))
        if self.scheme in ("basic", "any"):
            out.append(f'Basic realm="{self.realm}"')
        return out

    def _refuse(self, owner: int, reason: str, stale: bool = False) -> AuthVerdict:
        log.debug("rtsp server: connection %d refused: %s", owner, reason)
        return AuthVerdict(False, self.challenges(owner, stale), reason)

    def check(self, method: str, uri: str, authorization: str, owner: int) -> AuthVerdict:
        """May the request ``method uri`` with this ``Authorization`` value (``""``: none) from
        connection ``owner`` go on?"""
        given = authorization.strip()
        if not given:
            return self._refuse(owner, "no credentials")
        if given.split(" ", 1)[0].lower() == "basic":
            if self.scheme == "digest":
                return self._refuse(owner, "basic auth offered, digest required")
            if hmac.compare_digest(given.encode("utf-8", "replace"), self._basic):
                return AuthVerdict(True)
            return self._refuse(owner, "wrong basic credentials")
        if self.scheme == "basic":
            return self._refuse(owner, "basic auth required")
        params = parse_digest(given)
        if params is None:
            return self._refuse(owner, "unknown auth scheme")
        return self._check_digest(method, uri, params, owner)

    def _check_digest(self, method: str, uri: str, p: dict[str, str], owner: int) -> AuthVerdict:
        nonce, response, qop = p.get("nonce", ""), p.get("response", ""), p.get("qop")
        if not nonce or not response:
            return self._refuse(owner, "digest without nonce or response")
        if p.get("algorithm", "MD5").upper() != "MD5":
            return self._refuse(owner, "digest algorithm other than MD5")
        if p.get("realm") != self.realm:
            return self._refuse(owner, "wrong realm")
        if p.get("uri") != uri:
            return self._refuse(owner, "digest uri is not the request's")
        if qop is not None and (qop != "auth" or not _NC_RE.fullmatch(p.get("nc", "")) or not p.get("cnonce")):
            return self._refuse(owner, "unsupported qop, or nc/cnonce missing")
        expected = digest_response(self._ha1, method, uri, nonce, qop, p.get("nc", ""), p.get("cnonce", ""))
        user_ok = hmac.compare_digest(p.get("username", "").encode("utf-8", "replace"), self._user)
        response_ok = hmac.compare_digest(response.lower().encode("utf-8", "replace"), expected.encode("ascii"))
        if not (user_ok and response_ok):
            return self._refuse(owner, "wrong digest credentials")
        entry = self._live(nonce)
        if entry is None or entry.owner != owner:
            # the password was right; the nonce is expired, evicted or another connection's
            return self._refuse(owner, "stale or foreign nonce", stale=True)
        if qop is not None:
            nc = int(p["nc"], 16)
            if nc <= entry.last_nc:
                return self._refuse(owner, "nonce count replayed")
            entry.last_nc = nc
        return AuthVerdict(True)
