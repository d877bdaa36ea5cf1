"""Reading the web app's pages in HTTP tests: the CSRF token and hidden fields a form carries."""

from __future__ import annotations

import html
import re

import httpx

_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def hidden_fields(page: httpx.Response | str) -> dict[str, str]:
    """The hidden inputs of the page (the first of each name): csrf_token, next, keys."""
    text = page if isinstance(page, str) else page.text
    fields: dict[str, str] = {}
    for name, value in _HIDDEN.findall(text):
        fields.setdefault(name, html.unescape(value))
    return fields


def csrf_token(page: httpx.Response | str) -> str:
    return hidden_fields(page)["csrf_token"]
