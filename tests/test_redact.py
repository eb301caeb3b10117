"""One redaction for URLs, headers and text that quotes them (emp_tui.redact)."""

from __future__ import annotations

import pytest

from emp_tui.config import redacted_url
from emp_tui.redact import redact_header, redact_headers, redact_text, redact_url

SECRET = "S3cr3tV4lue"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:S3cr3tV4lue@db:6379/0", "redis://:***@db:6379/0"),
        ("rediss://default:S3cr3tV4lue@db:6380/1", "rediss://default:***@db:6380/1"),
        ("https://u:S3cr3tV4lue@h/", "https://u:***@h/"),
        ("https://S3cr3tV4lue@h/v1/logs", "https://***@h/v1/logs"),
        ("ftp://u:S3cr3tV4lue@h", "ftp://u:***@h"),
        ("unix:///run/redis.sock?password=S3cr3tV4lue", "unix:///run/redis.sock?password=***"),
        ("unix:///run/r.sock?db=2&pass=S3cr3tV4lue", "unix:///run/r.sock?db=2&pass=***"),
        ("unix://:S3cr3tV4lue@/run/r.sock", "unix://:***@/run/r.sock"),
        ("https://h/v1/logs?api_key=S3cr3tV4lue&x=1", "https://h/v1/logs?api_key=***&x=1"),
        ("https://h/?apiKey=S3cr3tV4lue", "https://h/?apiKey=***"),
        ("https://h/?access_token=S3cr3tV4lue", "https://h/?access_token=***"),
        ("https://h/?X-Amz-Signature=S3cr3tV4lue", "https://h/?X-Amz-Signature=***"),
        ("https://h/?X-Amz-Credential=S3cr3tV4lue", "https://h/?X-Amz-Credential=***"),
        (
            "https://h/?pwd=S3cr3tV4lue;db_password=S3cr3tV4lue",
            "https://h/?pwd=***;db_password=***",
        ),
        ("https://h/#token=S3cr3tV4lue", "https://h/#token=***"),
        ("https://h/path@x?sig=S3cr3tV4lue", "https://h/path@x?sig=***"),
        ("http://[::1/?secret=S3cr3tV4lue", "http://[::1/?secret=***"),  # not parseable
        ("host:6379?auth=S3cr3tV4lue", "host:6379?auth=***"),  # no scheme
    ],
)
def test_urls_lose_their_secrets_and_keep_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redacted_url(url) == shown  # the config helper the CLI and the app call
    assert SECRET not in shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "unix:///tmp/redis.sock?db=3",
        "https://ingress.eu.dash0.com/v1/logs?dataset=dev",
        "not a url at all",
        "",
    ],
)
def test_urls_without_secrets_are_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_headers_are_shown_only_when_known_to_be_safe() -> None:
    headers = {
        "Content-Type": "application/json",
        "content-encoding": "gzip",
        "Dash0-Dataset": "dev",
        "User-Agent": "emp-collector",
        "Authorization": f"Bearer {SECRET}",
        "Cookie": f"s={SECRET}",
        "X-Honeycomb-Team": SECRET,
        "x-password": SECRET,
        "x-team": "emp",  # not known to be safe: masked too
    }
    assert redact_headers(headers) == {
        "Content-Type": "application/json",
        "content-encoding": "gzip",
        "Dash0-Dataset": "dev",
        "User-Agent": "emp-collector",
        "Authorization": "***",
        "Cookie": "***",
        "X-Honeycomb-Team": "***",
        "x-password": "***",
        "x-team": "***",
    }
    assert redact_header(" CONTENT-TYPE ", "text/plain") == "text/plain"


def test_urls_inside_text_are_redacted() -> None:
    text = (
        f"export to 'https://u:{SECRET}@h/v1/logs?api_key={SECRET}' failed; "
        f"redis unix:///s.sock?password={SECRET}, then (redis://:{SECRET}@db:1/0)"
    )
    shown = redact_text(text)
    assert SECRET not in shown
    assert "'https://u:***@h/v1/logs?api_key=***' failed" in shown
    assert "unix:///s.sock?password=***" in shown  # what follows a value up to a space goes too
