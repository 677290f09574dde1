"""Fetching a WhatsApp Business Account's message templates from the Graph API, every page.

`fetch_templates` GETs `{graph_url}/{version}/{waba_id}/message_templates` with the channel's
access token and follows Meta's cursor paging until the last page, so the caller gets the whole
set or a `CloudApiError` (Meta's error, a network failure, or an answer that is not a template
listing), never part of it. The access token goes only in the Authorization header, and only to
the channel's own Graph host: a `paging.next` link elsewhere is not followed, the cursor is.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from wagate.cloud.client import CloudApiError, _json_or_none, _parse_error, network_error
from wagate.domain.templates import Template, template_from_meta

PAGE_SIZE = 100
MAX_PAGES = 500
FIELDS = "id,name,language,status,category,parameter_format,components"


def templates_url(graph_url: str, version: str, waba_id: str) -> str:
    return f"{graph_url.rstrip('/')}/{version.strip('/')}/{waba_id}/message_templates"


async def fetch_templates(
    http: httpx.AsyncClient,
    *,
    graph_url: str,
    version: str,
    waba_id: str,
    access_token: str,
    page_size: int = PAGE_SIZE,
) -> list[Template]:
    """Every template of the WABA, in Meta's order (one per name and language)."""
    url = templates_url(graph_url, version, waba_id)
    first: dict[str, str] = {"limit": str(page_size), "fields": FIELDS}
    page_url, params = url, first
    found: dict[tuple[str, str], Template] = {}
    cursors_seen: set[str] = set()
    for _ in range(MAX_PAGES):
        body = await _get(http, page_url, params, access_token)
        for item in body["data"]:
            try:
                template = template_from_meta(item)
            except ValueError as exc:
                detail = f"a template in Meta's answer: {exc}"
                raise CloudApiError(None, "invalid response", detail) from None
            found.setdefault((template.name, template.language), template)
        paging = _object(body.get("paging"))
        next_link, after = paging.get("next"), _object(paging.get("cursors")).get("after")
        if not body["data"] or not isinstance(next_link, str) or not next_link:
            return list(found.values())
        if isinstance(after, str) and after:
            if after in cursors_seen:  # a server that keeps answering the same page
                return list(found.values())
            cursors_seen.add(after)
        if _same_origin(next_link, url):
            page_url, params = next_link, {}
        elif isinstance(after, str) and after:
            page_url, params = url, first | {"after": after}
        else:
            raise CloudApiError(None, "invalid response", "paging.next leads to another host")
    raise CloudApiError(None, "invalid response", f"more than {MAX_PAGES} pages of templates")


async def _get(
    http: httpx.AsyncClient, url: str, params: dict[str, str], token: str
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    try:
        response = await http.get(url, params=params or None, headers=headers)
    except httpx.HTTPError as exc:
        raise network_error(exc, token) from None
    if not response.is_success:
        raise _parse_error(response, token)
    body = _json_or_none(response)
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise CloudApiError(
            None,
            "invalid response",
            "the answer has no `data` list of templates",
            http_status=response.status_code,
        )
    return body


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _same_origin(link: str, url: str) -> bool:
    a, b = urlsplit(link), urlsplit(url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)
