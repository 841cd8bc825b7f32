"""The one place that scrubs secrets from text: known values, DSN/URL passwords, tokens, keys.

Two layers, because either alone leaks: a `Redactor` remembers the exact secret values a run
has handled (Kubernetes secret data, the password of a DSN, the API key) and removes them
wherever they appear, even inside an error message a library produced; the patterns catch
secret-shaped text whose value was never seen (a password in some other URL, a bearer token
echoed by a server).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

# Values shorter than this are not scrubbed by value: "immich" as a username or "1" would turn
# ordinary words and numbers into *** everywhere.
_MIN_SECRET_LENGTH = 6

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host  ->  scheme://user:***@host
    (re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)(?=@)"), MASK),
    # key=value secrets in DSNs, query strings and env dumps
    (
        re.compile(
            r"(?P<pre>\b(?:password|passwd|pwd|apikey|api_key|api-key|token|secret|"
            r"jwt[-_]secret|access_token|DB_PASSWORD|REDIS_PASSWORD)\s*[=:]\s*)"
            r"(?P<secret>\"[^\"]*\"|'[^']*'|[^\s&,;\"']+)",
            re.IGNORECASE,
        ),
        MASK,
    ),
    # HTTP headers
    (re.compile(r"(?P<pre>\bx-api-key\s*:\s*)(?P<secret>\S+)", re.IGNORECASE), MASK),
    (re.compile(r"(?P<pre>\bBearer\s+)(?P<secret>[A-Za-z0-9._~+/=-]{8,})"), MASK),
    # JSON Web Tokens wherever they appear
    (
        re.compile(
            r"(?P<pre>)(?P<secret>\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)"
        ),
        MASK,
    ),
)


def _scrub_patterns(text: str) -> str:
    for pattern, mask in _PATTERNS:
        text = pattern.sub(rf"\g<pre>{mask}", text)
    return text


class Redactor:
    """Scrubs known secret values and secret-shaped text from strings and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        for value in secrets:
            self.add(value)

    def add(self, value: str | bytes | None) -> None:
        """Remember one secret value (and its base64 form, as Kubernetes stores it)."""
        if value is None:
            return
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        value = value.strip()
        if len(value) < _MIN_SECRET_LENGTH:
            return
        self._values.add(value)
        self._values.add(base64.b64encode(value.encode()).decode())

    def add_many(self, values: Iterable[str | bytes | None]) -> None:
        """Remember several secret values."""
        for value in values:
            self.add(value)

    @property
    def known_count(self) -> int:
        """How many distinct values are scrubbed by value (for tests and debugging)."""
        return len(self._values)

    def text(self, text: str) -> str:
        """`text` with every known secret value and secret-shaped substring masked."""
        return _scrub_patterns(self.values(text))

    def values(self, text: str) -> str:
        """`text` with the known secret values masked, nothing else touched.

        For rendered output (JSON, XML): the patterns could cut through an escaped quote
        there, while the records inside were already scrubbed with them.
        """
        # Longest first, so a value that contains another is masked whole.
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text

    def data(self, value: Any) -> Any:
        """A copy of nested JSON-like data with every string scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Scrub `text` of the given secret values and of anything that looks like a secret."""
    return Redactor(secrets).text(text)


# Environment variables whose literal values are secrets, whatever their value looks like.
SECRET_ENV_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|_DSN$", re.IGNORECASE
)


def secret_env_values(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """Secret values written literally into pod specs: secret-named env vars, URL passwords.

    Values that come from a secretKeyRef are not in the spec at all (they are scrubbed through
    the Secret objects' data); this finds the ones someone typed in, so they are scrubbed by
    value wherever else they show up (logs, events, ConfigMaps).
    """
    from urllib.parse import urlsplit

    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, Mapping):
            for key in ("containers", "initContainers"):
                for container in node.get(key) or []:
                    for variable in (container or {}).get("env") or []:
                        value = (variable or {}).get("value")
                        if not isinstance(value, str) or not value:
                            continue
                        if SECRET_ENV_NAME.search(str(variable.get("name", ""))):
                            found.append(value)
                        elif "://" in value:
                            try:
                                password = urlsplit(value).password
                            except ValueError:
                                password = None
                            if password:
                                found.append(password)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    for obj in objects:
        visit(obj)
    return found
