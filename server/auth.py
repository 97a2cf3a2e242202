"""Token verification (and issuing development tokens).

Identity comes only from a verified JWT: subject = user id, `name` = display name,
`role` = one of viewer, host, moderator, service, bot. A bot token also carries
`rooms`: the list of room ids the bot may act in (`["*"]`: every room, for a
platform's own assistant); a bot token without it acts in no room. Optional `level`
(fan level, an integer 0 to 100) and `badges` (a list of at most 5 badge ids, each 1 to
32 characters of A-Z a-z 0-9 . _ : -) are copied into every Sender of the user's events
(docs/commerce.md "Badges and levels"); a token with them malformed is refused. What each role
may do in a room is decided in server/core/policy.py (docs/commerce.md).

Development: HS256 tokens signed with a shared secret (`barrage token`). Never use
them in production: anyone holding the secret can mint any identity.
Production: the identity provider signs tokens with its private key (RS256/ES256/
EdDSA); Barrage verifies with the public key (`--jwt-public-key PEM`) or the
provider's JWKS URL (`--jwt-jwks-url`), and checks `iss`/`aud` when configured.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from barrage.server.core.errors import ApiError, Code
from barrage.v1 import event_pb2

ROLES: dict[str, int] = {
    "viewer": event_pb2.ROLE_VIEWER,
    "host": event_pb2.ROLE_HOST,
    "moderator": event_pb2.ROLE_MODERATOR,
    "service": event_pb2.ROLE_SERVICE,
    "bot": event_pb2.ROLE_BOT,
}
MAX_LEVEL = 100
"""Highest fan level (barrage.v1.Sender.level; server/core/ranges.py has the same)."""
MAX_BADGES = 5
BADGE = re.compile(r"[A-Za-z0-9._:-]{1,32}")
"""A badge id (server/core/policy.py checks Senders a service posts against the same)."""
_MAX_TOKEN_BYTES = 8192
_MAX_BOT_ROOMS = 1000
ALL_ROOMS = "*"
"""In a bot's `rooms` claim: every room."""


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    display_name: str
    role: int
    """barrage.v1.Role value."""
    expires_at: float
    """Unix seconds; the token is refused from then on."""
    rooms: frozenset[str] = frozenset()
    """A bot's rooms (its token's `rooms` claim); ALL_ROOMS in it means every room."""
    level: int = 0
    """Fan level (the `level` claim), 0 to MAX_LEVEL."""
    badges: tuple[str, ...] = ()
    """Badge ids (the `badges` claim), at most MAX_BADGES, in the token's order."""

    def given_room(self, room_id: str) -> bool:
        """Whether the token's `rooms` claim gives it this room (bots)."""
        return room_id in self.rooms or ALL_ROOMS in self.rooms

    def sender(self) -> event_pb2.Sender:
        return event_pb2.Sender(
            user_id=self.user_id,
            display_name=self.display_name,
            role=self.role,  # type: ignore[arg-type]
            level=self.level,
            badges=self.badges,
        )


class TokenVerifier:
    """Verifies bearer tokens with one configured key source."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key_path: str | None = None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_s: float = 5.0,
    ) -> None:
        sources = [s for s in (secret, public_key_path, jwks_url) if s]
        if len(sources) != 1:
            raise ValueError("configure exactly one of: jwt secret (dev), public key file, JWKS URL")
        self._secret = secret
        self._public_key = Path(public_key_path).read_text() if public_key_path else None
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None
        self._algorithms = ["HS256"] if secret else ["RS256", "ES256", "EdDSA"]
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s

    def verify(self, token: str) -> Identity:
        """Return the token's identity or raise ApiError(UNAUTHENTICATED)."""
        if not token:
            raise ApiError(Code.UNAUTHENTICATED, "TOKEN_MISSING", "a bearer token is required")
        if len(token) > _MAX_TOKEN_BYTES:
            raise ApiError(Code.UNAUTHENTICATED, "TOKEN_INVALID", "token too large")
        try:
            key: Any
            if self._jwks is not None:
                # PyJWKClient caches keys; a miss fetches the JWKS (blocking, rare: key rotation).
                key = self._jwks.get_signing_key_from_jwt(token).key
            else:
                key = self._secret or self._public_key
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["sub", "exp", "role"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(Code.UNAUTHENTICATED, "TOKEN_EXPIRED", "token has expired") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise ApiError(Code.UNAUTHENTICATED, "TOKEN_INVALID", f"token rejected: {exc}") from exc
        role = ROLES.get(str(claims.get("role", "")))
        subject = str(claims["sub"])
        if role is None or not subject or len(subject) > 128:
            raise ApiError(Code.UNAUTHENTICATED, "TOKEN_INVALID", "token has no valid role or subject")
        name = str(claims.get("name") or subject)[:64]
        rooms = _rooms_claim(claims.get("rooms"))
        return Identity(
            user_id=subject,
            display_name=name,
            role=role,
            expires_at=float(claims["exp"]),
            rooms=rooms,
            level=_level_claim(claims.get("level")),
            badges=_badges_claim(claims.get("badges")),
        )


def _rooms_claim(value: object) -> frozenset[str]:
    """The `rooms` claim: absent, or a list of room id strings (a bot's rooms)."""
    if value is None:
        return frozenset()
    if not isinstance(value, list) or len(value) > _MAX_BOT_ROOMS or not all(isinstance(r, str) for r in value):
        message = f"claim rooms must be a list of at most {_MAX_BOT_ROOMS} room ids"
        raise ApiError(Code.UNAUTHENTICATED, "TOKEN_INVALID", message)
    return frozenset(value)


def _level_claim(value: object) -> int:
    """The `level` claim: absent (0) or an integer 0 to MAX_LEVEL."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LEVEL:
        raise ApiError(Code.UNAUTHENTICATED, "TOKEN_INVALID", f"claim level must be an integer 0 to {MAX_LEVEL}")
    return value


def _badges_claim(value: object) -> tuple[str, ...]:
    """The `badges` claim: absent, or a list of at most MAX_BADGES badge ids (BADGE)."""
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or len(value) > MAX_BADGES
        or not all(isinstance(b, str) and BADGE.fullmatch(b) for b in value)
    ):
        message = f"claim badges must be a list of at most {MAX_BADGES} ids of 1-32 characters A-Z a-z 0-9 . _ : -"
        raise ApiError(Code.UNAUTHENTICATED, "TOKEN_INVALID", message)
    return tuple(value)


def issue_dev_token(
    secret: str,
    *,
    user_id: str,
    role: str,
    name: str | None = None,
    ttl_s: float = 24 * 3600,
    issuer: str | None = None,
    audience: str | None = None,
    rooms: list[str] | None = None,
    level: int | None = None,
    badges: list[str] | None = None,
) -> str:
    """Mint an HS256 development token. Not for production (see module docstring).

    `rooms`: the bot's rooms claim (["*"]: every room); `level`, `badges`: the fan
    level and badges claims (checked by verify, not here)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "name": name or user_id,
        "role": role,
        "iat": now,
        "exp": now + int(ttl_s),
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    if rooms is not None:
        claims["rooms"] = list(rooms)
    if level is not None:
        claims["level"] = level
    if badges:
        claims["badges"] = list(badges)
    return jwt.encode(claims, secret, algorithm="HS256")
