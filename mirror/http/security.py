"""Tokens, listening addresses and request limits of `mirror serve`.

- The server listens on 127.0.0.1 unless told otherwise; any other address requires a tokens file (one token
  per line), and every API route then requires `Authorization: Bearer <token>` as API Entreprise does (v2
  also took `?token=`, accepted on /v2/ routes only). Tokens are compared in constant time
  (hmac.compare_digest, against every token of the file), never logged, never echoed.
  The INSEE API Sirene routes (/api-sirene/3.11) also take the token as INSEE clients send their key,
  `X-INSEE-Api-Key-Integration: <token>`.
- CORS (`--cors ORIGIN`): the same for every route: the methods and request headers of CORS_METHODS and
  CORS_HEADERS (POST and the INSEE key header are what the INSEE searches need from a browser).
- Limits: URL length (414), number of query parameters (400), time per request (503).
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path

from mirror.core.config import INSEE_KEY_HEADER
from mirror.core.errors import BadInput

MAX_URL_BYTES = 2048  # path + query string
MAX_QUERY_PARAMETERS = 32
REQUEST_TIMEOUT_S = 30.0
MIN_TOKEN_LENGTH = 16
MAX_TOKENS = 10_000
CORS_METHODS = ("GET", "HEAD", "POST")  # POST: the INSEE API Sirene's form searches
CORS_HEADERS = ("Authorization", INSEE_KEY_HEADER)


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_tokens(path: str | Path) -> tuple[bytes, ...]:
    """The tokens of a file: one per line, blank lines and `#` comments skipped. BadInput (one line, never
    naming a token) when the file cannot be read, holds none, or holds one shorter than MIN_TOKEN_LENGTH."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise BadInput(f"--tokens {path}: cannot read the tokens file ({reason})") from None
    tokens = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) < MIN_TOKEN_LENGTH or any(c.isspace() for c in line):
            raise BadInput(
                f"--tokens {path}: line {number} is not a token (at least {MIN_TOKEN_LENGTH} characters, "
                "no spaces)"
            )
        tokens.append(line.encode("utf-8"))
    if not tokens:
        raise BadInput(f"--tokens {path}: no token in the file (one token per line)")
    if len(tokens) > MAX_TOKENS:
        raise BadInput(f"--tokens {path}: more than {MAX_TOKENS} tokens")
    return tuple(tokens)


def check_listen_address(host: str, tokens: tuple[bytes, ...] | None) -> None:
    """Refuses to listen beyond this machine without tokens (BadInput, one line)."""
    if not is_loopback(host) and not tokens:
        raise BadInput(
            f"--host {host} accepts connections from other machines: give --tokens FILE (one token per line; "
            "clients send Authorization: Bearer <token>), or keep the default --host 127.0.0.1"
        )


def bearer_token(authorization: str | None) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip().encode("utf-8", "replace")


def insee_key(value: str | None) -> bytes | None:
    """The token of an `X-INSEE-Api-Key-Integration` header (the INSEE API Sirene's key, accepted in place of
    `Authorization: Bearer` on /api-sirene/3.11 routes), else None."""
    if not value or not value.strip():
        return None
    return value.strip().encode("utf-8", "replace")


def token_ok(given: bytes | None, tokens: tuple[bytes, ...]) -> bool:
    """Constant-time membership: every token is compared (no early exit on a match)."""
    if given is None:
        return False
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(given, token)
    return ok
