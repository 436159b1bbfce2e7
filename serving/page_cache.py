"""Pages of polled reads kept in memory while the data under them is unchanged.

A ward's worklist is polled by every tablet every few seconds and changes far less
often. :class:`PageCache` keeps the JSON body of a page under the request's key together
with the revision of the data it was built from
(:func:`healthos_core.suggestion_revision.read_suggestion_revision`); a later request
whose revision is the same gets the same bytes without running the query or building
the schemas again (issue 9 item 10, ``bench/README.md``). Each worker process has its
own; they agree because the revision is in the database.

HTTP clients can skip the body too: every page carries a strong ``ETag`` (a hash of
the body), and a request whose ``If-None-Match`` names it gets ``304 Not Modified``
(RFC 9110 §8.8.3, §13.1.2).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

from cachetools import LRUCache
from fastapi import Response

#: Pages kept per process (a 20-item worklist is about 32 KB: at most about 16 MB).
DEFAULT_PAGES: Final = 512
#: ``Cache-Control`` of a kept page: a browser or proxy may store it for this caller
#: only and must ask again (with ``If-None-Match``) before each use.
CACHE_CONTROL: Final = "private, no-cache"
#: The headers of a kept page, as the OpenAPI document lists them.
PAGE_HEADERS: Final = {
    "ETag": {
        "description": "Strong entity tag of the page; send it in If-None-Match",
        "schema": {"type": "string"},
    },
    "Cache-Control": {"description": CACHE_CONTROL, "schema": {"type": "string"}},
    "Vary": {"description": "Authorization", "schema": {"type": "string"}},
}


@dataclass(frozen=True, slots=True)
class Page:
    """A page's JSON body, its ``ETag`` and the revision it was built at."""

    revision: str
    body: bytes
    etag: str


def entity_tag(body: bytes) -> str:
    """Return a strong entity tag for ``body``: a quoted SHA-256 prefix (32 hex digits)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (or is ``*``), RFC 9110 §13.1.2.

    The comparison is weak, as the RFC asks for ``If-None-Match``: ``W/"x"`` matches
    ``"x"``.
    """
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip().removeprefix("W/")
        if tag == "*" or tag == etag:
            return True
    return False


class PageCache:
    """A bounded, thread-safe map from a request's key to the page built for it.

    Parameters
    ----------
    pages : int, default=DEFAULT_PAGES
        How many pages to keep; the least recently used goes first.
    """

    def __init__(self, pages: int = DEFAULT_PAGES) -> None:
        self._pages: LRUCache[Hashable, Page] = LRUCache(maxsize=pages)
        self._lock = threading.Lock()  # PostgreSQL reads run in the threadpool

    def get(self, key: Hashable, revision: str | None) -> Page | None:
        """Return the page kept for ``key`` if it was built at ``revision``, else ``None``."""
        if revision is None:
            return None
        with self._lock:
            page = self._pages.get(key)
        return page if page is not None and page.revision == revision else None

    def put(self, key: Hashable, revision: str | None, body: bytes) -> Page:
        """Keep ``body`` for ``key`` at ``revision`` (nothing is kept without a revision)."""
        page = Page(revision=revision or "", body=body, etag=entity_tag(body))
        if revision is not None:
            with self._lock:
                self._pages[key] = page
        return page

    def __len__(self) -> int:
        with self._lock:
            return len(self._pages)


def page_response(page: Page, if_none_match: str | None) -> Response:
    """Answer with ``page``: its JSON body, or ``304`` if ``If-None-Match`` names its ETag."""
    headers = {"ETag": page.etag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
    if matches(if_none_match, page.etag):
        return Response(status_code=304, headers=headers)
    return Response(content=page.body, media_type="application/json", headers=headers)
