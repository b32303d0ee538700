"""Links that open: where the month index, the run summary and the Prefect artifacts point a
browser, for the buildings' dashboards and the month's review workbook.

* **Local storage**: the month index links its buildings *relatively*
  (``1/dashboard_1_201911.html``, ``review_201911.xlsx``), so the month folder works wherever it
  is copied or opened from a file share; the run summary and the artifacts get ``file://`` URLs.
* **S3**: a relative link inside a page opened through a presigned URL of a private bucket
  resolves to an *unsigned* URL, which S3 refuses (403). So every link in the index is absolute:
  ``{VOC_PUBLIC_BASE_URL}/{key}`` when that is set (the storage root served over HTTPS, links
  that never expire), else a presigned HTTPS URL (SigV4 query signature) valid
  ``VOC_S3__PRESIGN_EXPIRY_S`` (dashboards) or ``VOC_REVIEW__LINK_EXPIRY_S`` (the review
  workbook) seconds, at most 7 days (604800 s), the SigV4 maximum. A presigned URL stored in a
  page expires with it: every ``full``/``refresh`` run re-renders the index with fresh links, and
  the page says until when they are valid. Links signed with temporary credentials (an instance
  role, SSO) stop working when those credentials expire, whatever the expiry asked.
* **Google Sheets** (``VOC_REVIEW__BACKEND=gsheets``): the review link is the spreadsheet's URL;
  reviewers need to be given access to it (``VOC_REVIEW__SHARE_WITH`` or sharing by hand).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from config.settings import VocSettings
from flows import storage_layout as layout
from flows.adapters.storage import PresigningStorage, Storage
from flows.resources import browser_link
from voc.months import KST, Month

__all__ = ["absolute_links", "index_dashboard_url", "review_link", "links_valid_until"]


def absolute_links(storage: Storage) -> bool:
    """Whether the month index must link absolutely: storage that presigns (S3), where a relative
    link from a presigned page would be an unsigned, refused request."""
    return isinstance(storage, PresigningStorage)


def index_dashboard_url(settings: VocSettings, storage: Storage, month: Month, building_id: str) -> str | None:
    """The absolute link from the month index to a building's latest dashboard on S3
    (:func:`flows.resources.browser_link`: public base URL or presigned, ``VOC_S3__PRESIGN_EXPIRY_S``);
    ``None`` for local storage, where the index keeps its relative link."""
    if not absolute_links(storage):
        return None
    return browser_link(settings, storage, layout.latest_dashboard_key(settings.prefix, month, building_id))


def review_link(
    settings: VocSettings, storage: Storage, month: Month, *, backend: Any = None, in_index: bool = False
) -> str | None:
    """A link a reviewer opens to get the month's review sheet, ``None`` when the month has none.

    Parameters
    ----------
    settings, storage
        The run's settings and storage.
    month
        The month.
    backend
        The review backend (only read for Google Sheets: its ``location`` is the spreadsheet URL).
    in_index
        For the month index page: a relative link (``review_201911.xlsx``) for local storage.

    Returns
    -------
    str or None
        XLSX backend: ``{VOC_PUBLIC_BASE_URL}/{key}``, else a presigned HTTPS URL valid
        ``VOC_REVIEW__LINK_EXPIRY_S`` seconds on S3, else (local) a ``file://`` URL, or the
        relative link with ``in_index``; Google Sheets: the spreadsheet's HTTPS URL. ``None``
        when no workbook/spreadsheet exists yet.
    """
    if settings.review.backend == "gsheets":
        location = str(backend.location(month)) if backend is not None else ""
        return location if location.startswith("https://") else None
    key = layout.review_workbook_key(settings.prefix, month)
    if not storage.exists(key):
        return None
    if in_index and not absolute_links(storage):
        return layout.relative_href(key, layout.month_dir(settings.prefix, month))
    return browser_link(settings, storage, key, expires_s=settings.review.link_expiry_s)


def links_valid_until(settings: VocSettings, storage: Storage, *, now: datetime | None = None) -> str | None:
    """Until when the presigned links of a page rendered ``now`` work (``"2019-12-08 02:00 KST"``):
    the shorter of the dashboard and review-link expiries; ``None`` when the links do not expire
    (local storage, or ``VOC_PUBLIC_BASE_URL``)."""
    if not absolute_links(storage) or settings.public_base_url:
        return None
    seconds = min(settings.s3.presign_expiry_s, settings.review.link_expiry_s)
    return ((now or datetime.now(KST)).astimezone(KST) + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M KST")
