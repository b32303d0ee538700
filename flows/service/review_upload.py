"""The reviewers' upload page of ``voc serve``: a browser-only way to get a building's review
workbook and to send the filled one back (issue 22).

Enabled by ``VOC_SERVE__REVIEWER_KEYS`` (a JSON map key → list of building ids,
:meth:`config.settings.ServeSettings.reviewer_buildings`); without it the routes do not exist (404).

* ``GET /review[?month=YYYY-MM]``: a self-contained HTML page (no script, no CDN; Korean): the
  reviewer's buildings with a download link each, and an upload form for the month (default:
  the previous month, KST).
* ``GET /review/{yyyymm}/{building_id}.xlsx``: the building's rows of the month as a workbook
  with a pull record (:func:`flows.review_exchange.pull_review_bytes`, what ``voc review pull
  --building-id`` writes).
* ``POST /review/{yyyymm}`` (``multipart/form-data``, field ``file``): the filled workbook,
  merged by :func:`flows.review_exchange.push_review_bytes` — the same per-row checks and
  compare-and-swap as ``voc review push`` — with the reviewer's buildings only: rows of other
  buildings are rejected (``other_building``). Answers an HTML page listing the accepted rows and
  the rejected ones with their reasons (JSON, :meth:`PushResult.to_dict`, when the request
  accepts ``application/json`` and not ``text/html``). A body over
  ``VOC_SERVE__MAX_UPLOAD_BYTES`` (10 MiB) → 413 (the declared ``Content-Length`` first, then
  the bytes counted); a cross-site POST (``Origin`` of another host, ``Sec-Fetch-Site:
  cross-site``) → 403.

Authentication: HTTP Basic (RFC 7617) — every browser asks for it without an extension; the
user name is free, the **password is the reviewer key**. Keys are compared in constant time
(SHA-256 digests) and never logged; no key or a wrong one → 401 with
``WWW-Authenticate: Basic realm="voc review", charset="UTF-8"``. Basic sends the key with each
request, readable on the wire: serve the page over HTTPS (a TLS-terminating reverse proxy).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from config.settings import VocSettings
from voc.months import parse_month, previous_month, yyyymm
from voc.schema import id_problem

__all__ = ["REALM", "review_router", "authorised_buildings", "render_page", "render_result"]

log = logging.getLogger("flows.service.app")

REALM = 'Basic realm="voc review", charset="UTF-8"'
"""``WWW-Authenticate`` of a 401 (RFC 7617 §2, §2.1: the browser sends the password as UTF-8)."""

_BASIC = HTTPBasic(auto_error=False, realm="voc review", description="User name: anything; password: your reviewer key")
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_YM = re.compile(r"\d{6}")

_CSS = """
body{font-family:system-ui,"Malgun Gothic","Apple SD Gothic Neo",sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f3f3f3}
.ok{color:#176117}.bad{color:#a31515}.note{color:#555;font-size:.9rem}form{margin:.6rem 0}
button{padding:.3rem .9rem}
"""


def authorised_buildings(keys: Mapping[str, frozenset[str]], password: str | None) -> frozenset[str] | None:
    """The buildings of the reviewer whose key is ``password``, ``None`` for no or a wrong key.

    Every key is compared (SHA-256 digests, :func:`hmac.compare_digest`): the time does not
    depend on which key matched or on its length.
    """
    if not password:
        return None
    digest = hashlib.sha256(password.encode("utf-8")).digest()
    found: frozenset[str] | None = None
    for key, buildings in keys.items():
        if hmac.compare_digest(digest, hashlib.sha256(key.encode("utf-8")).digest()):
            found = buildings
    return found


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="ko"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def render_page(month: str, buildings: frozenset[str], *, message: str | None = None) -> str:
    """The upload page of ``month`` (``YYYY-MM``) for a reviewer of ``buildings`` (HTML text)."""
    from voc.schema import building_sort_key

    ym = yyyymm(month)
    e = html.escape
    rows = "".join(
        f'<li>건물 {e(b)}: <a href="/review/{ym}/{quote(b, safe="")}.xlsx" download>'
        f"review_{ym}_{e(b)}.xlsx 내려받기</a></li>"
        for b in sorted(buildings, key=building_sort_key)
    )
    body = (
        (f'<p class="bad">{e(message)}</p>' if message else "")
        + '<form method="get" action="/review"><label>검수 월 <input type="month" name="month" '
        f'value="{e(month)}" required></label> <button type="submit">바꾸기</button></form>'
        f"<h2>1. 검수 시트 내려받기 ({e(month)})</h2><ul>{rows}</ul>"
        '<p class="note">노란색 검수_ 열을 채우고, 끝난 행은 검수완료에 Y를 고르세요. 모델 열은 바꾸지 마세요.</p>'
        f"<h2>2. 채운 시트 올리기 ({e(month)})</h2>"
        f'<form id="upload" method="post" action="/review/{ym}" enctype="multipart/form-data">'
        '<input type="file" name="file" accept=".xlsx,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" required> '
        '<button type="submit">올리기</button></form>'
        '<p class="note">내 건물의 행만 반영됩니다. 내려받은 뒤 다른 검수자가 같은 행을 바꿨다면 그 행은 반영하지 않고 '
        "알려 드립니다(다시 내려받아 확인하세요).</p>"
    )
    return _page("VOC 검수 시트 올리기", body)


def render_result(result: Any, filename: str) -> str:
    """The answer page of an upload: accepted, unchanged and rejected rows with reasons.

    ``result`` is a :class:`flows.review_exchange.PushResult`."""
    e = html.escape
    acc = "".join(f"<tr><td>{r}</td><td>{e(v)}</td></tr>" for r, v in result.accepted)
    rej = "".join(
        f"<tr><td>{r.sheet_row}</td><td>{e(r.voc_id)}</td><td>{e(', '.join(r.codes))}</td>"
        f"<td>{'<br>'.join(e(x) for x in r.reasons)}</td></tr>"
        for r in result.rejected
    )
    notes = "".join(f"<li>{e(str(n))}</li>" for n in result.notes)
    body = (
        f"<p>{e(filename)} ({e(result.month)}): "
        f'<span class="ok">반영 {len(result.accepted)}행</span>, 변경 없음 {result.unchanged}행, '
        f'<span class="bad">반영 안 됨 {len(result.rejected)}행</span>'
        + ("" if result.written else " (저장된 시트는 바뀌지 않았습니다)")
        + "</p>"
        + (f'<h2 class="ok">반영된 행</h2><table id="accepted"><tr><th>시트 행</th><th>voc_id</th></tr>{acc}</table>' if acc else "")
        + (
            '<h2 class="bad">반영하지 않은 행</h2><table id="rejected"><tr><th>시트 행</th><th>voc_id</th><th>코드</th><th>이유</th></tr>'
            f"{rej}</table>" if rej else ""
        )
        + (f"<h2>참고</h2><ul>{notes}</ul>" if notes else "")
        + (
            "" if result.checked_against_pull
            else '<p class="note">이 파일에는 내려받기 기록이 없어, 그 사이 다른 검수자가 바꾼 행인지 확인하지 못했습니다.</p>'
        )
        + f'<p><a href="/review?month={e(result.month)}">돌아가기</a></p>'
    )
    return _page("검수 시트 올리기 결과", body)


def _error_page(status: int, title: str, message: str) -> HTMLResponse:
    return HTMLResponse(_page(title, f'<p class="bad">{html.escape(message)}</p><p><a href="/review">돌아가기</a></p>'), status_code=status)


def _month_of(value: str) -> str:
    if not _YM.fullmatch(value):
        raise HTTPException(404, detail=f"not a month: {value!r} (YYYYMM)")
    try:
        return parse_month(value)
    except ValueError as e:
        raise HTTPException(404, detail=f"not a month: {value!r}: {e}") from None


def _same_origin(request: Request) -> bool:
    """False for a POST a browser marks cross-site (``Sec-Fetch-Site``) or whose ``Origin`` names
    another host than the request's ``Host``: Basic credentials are sent with cross-site form
    posts, so without this another site could post a workbook in the reviewer's name."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin in (None, "null"):
        return origin is None
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


async def _limited_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it is over ``limit`` bytes (the declared ``Content-Length``
    first, then the bytes counted)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _uploaded_file(request: Request, limit: int) -> tuple[bytes, str] | Response:
    """The bytes and file name of the multipart field ``file`` of an upload of at most ``limit``
    bytes, or the error page to answer: 413 (``Connection: close``) over the limit, 400 for a body
    that is not ``multipart/form-data`` or has no file."""
    body = await _limited_body(request, limit)
    if body is None:
        too_big = _error_page(413, "파일이 너무 큽니다", f"올린 내용이 {limit} 바이트를 넘습니다")
        too_big.headers["Connection"] = "close"
        return too_big
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10, max_part_size=limit)
    except Exception as e:  # noqa: BLE001 - multipart errors: a 400 naming the problem
        return _error_page(400, "올릴 수 없습니다", f"multipart/form-data 본문을 읽지 못했습니다: {e}")
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        return _error_page(400, "올릴 수 없습니다", "파일(file)을 골라 주세요")
    data = await upload.read()
    name = upload.filename or "upload.xlsx"
    await form.close()
    return data, name


def _reviewer_dependency(
    keys: Mapping[str, frozenset[str]],
) -> Callable[[Request, HTTPBasicCredentials | None], frozenset[str]]:
    """The FastAPI dependency of the ``/review`` routes: the buildings of the reviewer whose
    Basic password is one of ``keys``; raises HTTPException 401 (``WWW-Authenticate``) otherwise."""

    def reviewer(request: Request, creds: Annotated[HTTPBasicCredentials | None, Depends(_BASIC)]) -> frozenset[str]:
        buildings = authorised_buildings(keys, creds.password if creds is not None else None)
        if buildings is None:
            client = request.client.host if request.client else "?"
            why = "no reviewer key" if creds is None else "wrong reviewer key"
            log.info("401 %s %s from %s: %s", request.method, request.url.path, client, why)
            raise HTTPException(
                401, detail="검수자 키가 없거나 틀렸습니다 (missing or wrong reviewer key)", headers={"WWW-Authenticate": REALM}
            )
        return buildings

    return reviewer


def review_router(settings: VocSettings) -> APIRouter:
    """The ``/review`` routes (module docstring) for ``settings.serve.reviewer_keys``.

    Raises
    ------
    ValueError
        No reviewer key configured (the caller adds the routes only when there is one).
    """
    keys = settings.serve.reviewer_buildings()
    if not keys:
        raise ValueError("no reviewer key: set VOC_SERVE__REVIEWER_KEYS")
    limit = settings.serve.max_upload_bytes
    router = APIRouter(tags=["review"])
    reviewer = _reviewer_dependency(keys)

    @router.get("/review", response_class=HTMLResponse)
    async def review_page(month: str | None = None, buildings: frozenset[str] = Depends(reviewer)) -> HTMLResponse:
        """The upload page (HTML) of ``month`` (default the previous month, KST)."""
        try:
            m = parse_month(month) if month else previous_month()
        except ValueError:
            return HTMLResponse(render_page(previous_month(), buildings, message=f"알 수 없는 월: {month!r} (YYYY-MM)"), status_code=400)
        return HTMLResponse(render_page(m, buildings))

    @router.get("/review/{ym}/{filename}")
    async def review_download(ym: str, filename: str, buildings: frozenset[str] = Depends(reviewer)) -> Response:
        """The building's review workbook of the month (with a pull record)."""
        from flows.review_exchange import ReviewExchangeError, pull_review_bytes

        m = _month_of(ym)
        if not filename.endswith(".xlsx"):
            raise HTTPException(404, detail="not found")
        bid = filename[: -len(".xlsx")]
        if id_problem(bid) is not None or bid not in buildings:
            return _error_page(403, "내려받을 수 없습니다", f"건물 {bid!r}은(는) 이 검수자가 맡은 건물이 아닙니다")
        try:
            got = await anyio.to_thread.run_sync(lambda: pull_review_bytes(settings, m, building_id=bid))
        except ReviewExchangeError as e:
            return _error_page(404, "검수 시트가 없습니다", str(e))
        return Response(
            got.data,
            media_type=_XLSX,
            headers={
                "Content-Disposition": f"attachment; filename=\"review_{yyyymm(m)}.xlsx\"; filename*=UTF-8''{quote(got.filename)}",
                "Cache-Control": "no-store",
            },
        )

    @router.post("/review/{ym}")
    async def review_upload(ym: str, request: Request, buildings: frozenset[str] = Depends(reviewer)) -> Response:
        """Merge an uploaded workbook (multipart field ``file``) into the month's review sheet."""
        from flows.adapters.review_backends import ReviewConflictError
        from flows.review_exchange import ReviewExchangeError, push_review_bytes

        m = _month_of(ym)
        if not _same_origin(request):
            return _error_page(403, "올릴 수 없습니다", "다른 사이트에서 보낸 요청은 받지 않습니다")
        got = await _uploaded_file(request, limit)
        if isinstance(got, Response):
            return got
        data, name = got
        try:
            res = await anyio.to_thread.run_sync(
                lambda: push_review_bytes(settings, data, source=name, month=m, buildings=buildings)
            )
        except ReviewExchangeError as e:
            return _error_page(422, "올릴 수 없습니다", str(e))
        except ReviewConflictError as e:
            return _error_page(409, "잠시 뒤 다시 올려 주세요", str(e))
        log.info("review upload %s for %s: %d accepted, %d rejected", name, m, len(res.accepted), len(res.rejected))
        accept = request.headers.get("accept", "")
        if "application/json" in accept and "text/html" not in accept:
            return JSONResponse(res.to_dict())
        return HTMLResponse(render_result(res, name))

    return router
