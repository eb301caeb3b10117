"""Secrets out of everything printed or logged: URLs, headers, and text that quotes them.

One home for redaction, used by every print and log path of the collector, the CLI, the
emitter and the app (``emp_tui.config.redacted_url`` is :func:`redact_url`). Pure, no I/O,
never raises: a string that does not parse as a URL is still searched for secrets.

* **URLs**: the password of the userinfo (``redis://:pw@host``, ``https://user:tok@host``;
  a userinfo without a password is a token too: ``https://tok@host``) and the values of query
  or fragment parameters whose names say they hold a secret (``password``, ``api_key``,
  ``token``, ``X-Amz-Signature``, ...), as in ``unix:///run/redis.sock?password=...``.
* **Headers**: an allow-list of names known to carry nothing secret (``Content-Type``,
  ``Dash0-Dataset``, ...); every other value is masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

MASK: Final = "***"

# Query/fragment parameter names whose value is a secret. Compared lowercased with "-"
# read as "_"; a name that contains one of _SECRET_PARTS counts too (db_password, x_token).
_SECRET_PARAMS: Final = frozenset(
    {
        "password",
        "pass",
        "passwd",
        "pwd",
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "secret",
        "client_secret",
        "auth",
        "authorization",
        "signature",
        "sig",
        "credential",
        "credentials",
        "session",
        "code",
    }
)
_SECRET_PARTS: Final = ("pass", "pwd", "secret", "token", "key", "auth", "signature", "credential")

# Header names whose values are safe to show; everything else is masked.
SAFE_HEADERS: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "dash0-dataset",
        "host",
        "transfer-encoding",
        "user-agent",
    }
)

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# A URL inside free text: scheme://, then anything up to whitespace or a quote/bracket that
# usually closes it.
_URL_IN_TEXT: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter called ``name`` holds a secret."""
    lowered = name.strip().lower().replace("-", "_")
    return lowered in _SECRET_PARAMS or any(part in lowered for part in _SECRET_PARTS)


def _redact_params(text: str) -> str:
    """``a=1&password=x`` -> ``a=1&password=***`` (order, separators and the rest kept)."""
    out: list[str] = []
    for part in re.split(r"([&;])", text):
        name, sep, value = part.partition("=")
        if sep and value and is_secret_param(name):
            part = f"{name}={MASK}"
        out.append(part)
    return "".join(out)


def redact_url(url: str) -> str:
    """``url`` with its secrets replaced by ``***``; everything else as given.

    >>> redact_url("redis://:pw@db:6379/0")
    'redis://:***@db:6379/0'
    >>> redact_url("unix:///run/redis.sock?db=0&password=pw")
    'unix:///run/redis.sock?db=0&password=***'
    """
    text = str(url)
    match = _SCHEME.match(text)
    if match is None:
        # Not scheme://...: a bare host, a path, or junk. It may still carry parameters.
        rest, hash_, fragment = text.partition("#")
        base, question, query = rest.partition("?")
        if question:
            rest = base + question + _redact_params(query)
        return rest + (hash_ + _redact_params(fragment) if hash_ else "")
    scheme = match.group(0)
    rest = text[match.end() :]
    rest, hash_, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    # The authority ends at the first "/"; the userinfo is what comes before its last "@".
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    out = scheme + authority + slash + path
    if question:
        out += question + _redact_params(query)
    if hash_:
        out += hash_ + _redact_params(fragment)
    return out


def redact_text(text: str) -> str:
    """Free text (an error message, say) with every URL in it redacted."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), str(text))


def redact_header(name: str, value: str) -> str:
    """A header's value as it may be shown: as is for an allow-listed name, else ``***``."""
    return value if name.strip().lower() in SAFE_HEADERS else MASK


def redact_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> dict[str, str]:
    """Every header with its value as it may be shown."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name: redact_header(name, value) for name, value in items}
