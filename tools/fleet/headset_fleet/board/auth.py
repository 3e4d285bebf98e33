"""Board login: one shared secret (the first line of --login-file) and a signed session cookie.

The cookie is `<expiry>.<HMAC-SHA256 hex>`; the HMAC key is derived from the secret, so
changing the secret logs everybody out and a board restart does not. Comparisons are
constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import time

COOKIE = "hs_board"
SESSION_S = 12 * 3600


class BoardAuth:
    def __init__(self, secret: str, session_s: float = SESSION_S):
        self._secret_digest = hashlib.sha256(secret.encode()).digest()
        self._key = hmac.new(secret.encode(), b"headset-board-session-v1", hashlib.sha256).digest()
        self.session_s = session_s

    def check_password(self, given: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self._secret_digest)

    def _sign(self, expiry: int) -> str:
        return hmac.new(self._key, f"v1.{expiry}".encode(), hashlib.sha256).hexdigest()

    def issue(self, now_s: float | None = None) -> str:
        expiry = int((time.time() if now_s is None else now_s) + self.session_s)
        return f"{expiry}.{self._sign(expiry)}"

    def valid(self, cookie: str | None, now_s: float | None = None) -> bool:
        if not cookie or "." not in cookie:
            return False
        expiry_text, _, signature = cookie.partition(".")
        if not expiry_text.isdigit() or len(expiry_text) > 12:
            return False
        expiry = int(expiry_text)
        if not hmac.compare_digest(self._sign(expiry), signature):
            return False
        return (time.time() if now_s is None else now_s) < expiry
