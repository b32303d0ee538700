"""A LOCAL STAND-IN for the few Google Sheets v4 / Drive v3 endpoints gspread calls.

**This is not Google.** It is an in-memory HTTP server on ``127.0.0.1`` (random port, one
thread per request) that answers the requests the *real* ``gspread`` client makes for
``flows.adapters.review_backends.GSheetsReviewBackend``, so tests exercise gspread's actual URLs, query
parameters, JSON bodies and error handling without network access. It implements just enough
behaviour to be checked against:

==========================================================  ======================================
endpoint                                                    behaviour
==========================================================  ======================================
``POST /token``                                             OAuth token for a service-account
                                                            JWT (any assertion accepted)
``GET  /drive/v3/files?q=…name = "T"…``                     list spreadsheets titled T
``POST /drive/v3/files``                                    create a spreadsheet (one sheet
                                                            ``Sheet1``, 1000 × 26)
``POST /drive/v3/files/{id}/permissions``                   record a share
``GET  /v4/spreadsheets/{id}``                              metadata incl. ``sheets[].properties``
                                                            and ``sheets[].protectedRanges``
``POST /v4/spreadsheets/{id}:batchUpdate``                  atomic; applies ``addSheet`` (a given
                                                            ``sheetId`` is kept),
                                                            ``updateSheetProperties`` (title, grid
                                                            size — shrinking drops cells —,
                                                            frozen rows), ``updateCells`` (values
                                                            stored), ``addProtectedRange`` /
                                                            ``deleteProtectedRange`` (listed in
                                                            the metadata); records ``repeatCell``,
                                                            ``setDataValidation``,
                                                            ``updateDimensionProperties``,
                                                            ``setBasicFilter`` after checking their
                                                            ranges lie inside the grid; anything
                                                            else is a 400
``PUT  /v4/spreadsheets/{id}/values/{range}``               ``RAW`` stores values as sent;
                                                            ``USER_ENTERED`` turns ``=…`` text into
                                                            an (unevaluated) formula, like Sheets;
                                                            a range outside the grid is a 400
``POST /v4/spreadsheets/{id}/values:batchUpdate``           several ranges as ``PUT …/values`` does,
                                                            atomic (every range is checked first)
``GET  /v4/spreadsheets/{id}/values/{range}``               ``FORMATTED_VALUE`` (default) returns
                                                            text (numbers in general format,
                                                            formulas as ``""``: nothing is
                                                            evaluated), ``UNFORMATTED_VALUE`` and
                                                            ``FORMULA`` the stored values; trailing
                                                            empty rows/cells omitted, as Google
==========================================================  ======================================

Errors use Google's JSON shape ``{"error": {"code", "message", "status"}}``.
:meth:`SheetsStandIn.fail_next` makes the next *n* API requests (optionally: to a given path)
fail (429 by default; Drive-style 403 rate-limit errors too) to test retries. Every request is
recorded in :attr:`SheetsStandIn.log`; batchUpdate bodies also in
:attr:`SheetsStandIn.batch_updates`.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["SheetsStandIn", "StandInSheet", "StandInSpreadsheet", "RecordedRequest"]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None


@dataclass
class StandInSheet:
    sheet_id: int
    title: str
    index: int
    rows: int = 1000
    cols: int = 26
    frozen_rows: int = 0
    frozen_cols: int = 0
    cells: dict[tuple[int, int], Any] = field(default_factory=dict)
    formats: list[dict[str, Any]] = field(default_factory=list)
    protected: list[dict[str, Any]] = field(default_factory=list)

    def properties(self) -> dict[str, Any]:
        grid: dict[str, Any] = {"rowCount": self.rows, "columnCount": self.cols}
        if self.frozen_rows:
            grid["frozenRowCount"] = self.frozen_rows
        if self.frozen_cols:
            grid["frozenColumnCount"] = self.frozen_cols
        return {
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": self.index,
            "sheetType": "GRID",
            "gridProperties": grid,
        }


@dataclass
class StandInSpreadsheet:
    spreadsheet_id: str
    title: str
    sheets: list[StandInSheet] = field(default_factory=list)
    permissions: list[dict[str, Any]] = field(default_factory=list)

    def sheet(self, *, title: str | None = None, sheet_id: int | None = None) -> StandInSheet | None:
        for s in self.sheets:
            if (title is not None and s.title == title) or (sheet_id is not None and s.sheet_id == sheet_id):
                return s
        return None


class _Error(Exception):
    def __init__(self, code: int, message: str, status: str = "INVALID_ARGUMENT", reason: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.reason = code, message, status, reason


_A1 = re.compile(r"^([A-Za-z]*)(\d*)$")
_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def _col_letters(index: int) -> str:
    s, n = "", index + 1
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


def _split_range(rng: str) -> tuple[str, str]:
    """``'T'!A1:B2`` / ``T!A1`` / ``'T'`` → (title, a1)."""
    if rng.startswith("'"):
        i, title = 1, ""
        while i < len(rng):
            if rng[i] == "'" and rng[i + 1 : i + 2] == "'":
                title += "'"
                i += 2
            elif rng[i] == "'":
                i += 1
                break
            else:
                title += rng[i]
                i += 1
        rest = rng[i:]
        return title, rest[1:] if rest.startswith("!") else rest
    title, _, a1 = rng.partition("!")
    return title, a1


def _parse_a1(a1: str) -> tuple[int, int, int | None, int | None]:
    """→ (row0, col0, row_end_exclusive | None, col_end_exclusive | None)."""
    if not a1:
        return 0, 0, None, None
    start, _, end = a1.partition(":")
    m = _A1.match(start)
    if not m:
        raise _Error(400, f"Unable to parse range: {a1}")
    c0 = _col_index(m.group(1)) if m.group(1) else 0
    r0 = int(m.group(2)) - 1 if m.group(2) else 0
    if not end:
        return r0, c0, None, None
    m2 = _A1.match(end)
    if not m2:
        raise _Error(400, f"Unable to parse range: {a1}")
    c1 = _col_index(m2.group(1)) + 1 if m2.group(1) else None
    r1 = int(m2.group(2)) if m2.group(2) else None
    return r0, c0, r1, c1


def _format_value(v: Any) -> str:
    if isinstance(v, dict):  # an unevaluated formula
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return str(int(v)) if float(v).is_integer() else format(v, ".15g")
    return str(v)


class SheetsStandIn:
    """The stand-in server (see the module docstring). Use as a context manager::

        with SheetsStandIn() as standin:
            settings = ReviewSettings(backend="gsheets", sheets_api_url=standin.url)
    """

    def __init__(self) -> None:
        self.spreadsheets: dict[str, StandInSpreadsheet] = {}
        self.log: list[RecordedRequest] = []
        self.batch_updates: list[tuple[str, list[dict[str, Any]]]] = []
        self._fail: list[tuple[int, str | None, str | None]] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "stand-in not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SheetsStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                code, payload = standin._dispatch(self.command, self.path, raw, self.headers)
                data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="sheets-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SheetsStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test helpers ----------------------------------------------------------------------------
    def fail_next(self, n: int, *, status: int = 429, reason: str | None = None, path: str | None = None) -> None:
        """The next ``n`` API requests (not ``/token``; only those whose path contains ``path``
        when given) answer ``status``; ``reason`` adds Drive's ``errors: [{domain, reason}]``
        (``domain`` ``usageLimits``)."""
        with self._lock:
            self._fail.extend([(status, reason, path)] * n)

    def clear_failures(self) -> None:
        """Forget failures :meth:`fail_next` queued and no request consumed."""
        with self._lock:
            self._fail.clear()

    def create_spreadsheet(self, title: str) -> str:
        """Create a spreadsheet directly (as if a person had); return its id."""
        with self._lock:
            return self._create(title).spreadsheet_id

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.batch_updates.clear()

    def values(self, spreadsheet_id: str, title: str) -> list[list[Any]]:
        """Stored values of a worksheet as a dense grid up to the last non-empty cell."""
        with self._lock:
            sheet = self.spreadsheets[spreadsheet_id].sheet(title=title)
            assert sheet is not None
            return self._dense(sheet, raw=True)

    def set_cell(self, spreadsheet_id: str, title: str, row: int, col: int, value: Any) -> None:
        """Edit one cell as a reviewer would (0-based row/col)."""
        with self._lock:
            sheet = self.spreadsheets[spreadsheet_id].sheet(title=title)
            assert sheet is not None
            if value in ("", None):
                sheet.cells.pop((row, col), None)
            else:
                sheet.cells[(row, col)] = value

    # -- dispatch ----------------------------------------------------------------------------
    def _dispatch(self, method: str, target: str, raw: bytes, headers: Any) -> tuple[int, Any]:
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        body: Any = None
        if raw:
            ctype = headers.get("Content-Type", "")
            body = json.loads(raw) if "json" in ctype else parse_qs(raw.decode("utf-8"))
        with self._lock:
            self.log.append(RecordedRequest(method, parts.path, query, body, headers.get("Authorization")))
            try:
                if parts.path == "/token" and method == "POST":
                    return 200, {"access_token": "standin-token", "expires_in": 3600, "token_type": "Bearer"}
                for k, (code, reason, frag) in enumerate(self._fail):
                    if frag is None or frag in parts.path:
                        del self._fail[k]
                        raise _Error(code, f"stand-in: injected HTTP {code}", _STATUS.get(code, "UNKNOWN"), reason)
                return 200, self._route(method, parts.path, query, body)
            except _Error as e:
                err: dict[str, Any] = {"code": e.code, "message": e.message, "status": e.status}
                if e.reason:
                    err["errors"] = [{"domain": "usageLimits", "reason": e.reason, "message": e.message}]
                return e.code, {"error": err}

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        if path == "/drive/v3/files":
            if method == "GET":
                return self._drive_list(query)
            if method == "POST":
                ss = self._create(body["name"])
                return {"kind": "drive#file", "id": ss.spreadsheet_id, "name": ss.title,
                        "mimeType": "application/vnd.google-apps.spreadsheet"}
        m = re.fullmatch(r"/drive/v3/files/([^/]+)/permissions", path)
        if m and method == "POST":
            ss = self._get(m.group(1))
            perm = {"id": f"perm{len(ss.permissions) + 1}", **(body or {}), "query": query}
            ss.permissions.append(perm)
            return {"kind": "drive#permission", "id": perm["id"]}
        m = re.fullmatch(r"/v4/spreadsheets/([^/:]+):batchUpdate", path)
        if m and method == "POST":
            return self._batch_update(m.group(1), body or {})
        m = re.fullmatch(r"/v4/spreadsheets/([^/:]+)/values:batchUpdate", path)
        if m and method == "POST":
            return self._values_batch_update(self._get(m.group(1)), body or {})
        m = re.fullmatch(r"/v4/spreadsheets/([^/:]+)/values/(.+)", path)
        if m and method in ("GET", "PUT"):
            ss = self._get(m.group(1))
            rng = unquote(m.group(2))
            if method == "GET":
                return self._values_get(ss, rng, query)
            return self._values_update(ss, rng, query, body or {})
        m = re.fullmatch(r"/v4/spreadsheets/([^/:]+)", path)
        if m and method == "GET":
            ss = self._get(m.group(1))
            return {
                "spreadsheetId": ss.spreadsheet_id,
                "properties": {"title": ss.title, "locale": "ko_KR", "timeZone": "Asia/Seoul"},
                "sheets": [
                    {"properties": s.properties(), **({"protectedRanges": s.protected} if s.protected else {})}
                    for s in ss.sheets
                ],
                "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{ss.spreadsheet_id}/edit",
            }
        raise _Error(404, f"stand-in does not implement {method} {path}", "NOT_FOUND")

    # -- drive ---------------------------------------------------------------------------------
    def _create(self, title: str) -> StandInSpreadsheet:
        sid = f"standin-{next(self._ids):04d}"
        ss = StandInSpreadsheet(sid, title, [StandInSheet(0, "Sheet1", 0)])
        self.spreadsheets[sid] = ss
        return ss

    def _drive_list(self, query: dict[str, list[str]]) -> Any:
        q = (query.get("q") or [""])[0]
        m = re.search(r'name = "((?:[^"\\]|\\.)*)"', q)
        files = [
            {"id": ss.spreadsheet_id, "name": ss.title, "createdTime": "2025-01-01T00:00:00.000Z",
             "modifiedTime": "2025-01-01T00:00:00.000Z"}
            for ss in self.spreadsheets.values()
            if m is None or ss.title == m.group(1)
        ]
        return {"kind": "drive#fileList", "files": files}

    def _get(self, sid: str) -> StandInSpreadsheet:
        ss = self.spreadsheets.get(sid)
        if ss is None:
            raise _Error(404, f"Requested entity was not found: {sid}", "NOT_FOUND")
        return ss

    # -- batchUpdate -----------------------------------------------------------------------------
    def _batch_update(self, sid: str, body: dict[str, Any]) -> Any:  # noqa: C901 - one flat branch per request kind of the API
        ss = self._get(sid)
        work = copy.deepcopy(ss)  # atomic, like Google: all requests or none
        requests = body.get("requests", [])
        replies: list[dict[str, Any]] = []
        for i, req in enumerate(requests):
            (kind, arg), = req.items()
            where = f"requests[{i}].{kind}"
            if kind == "addSheet":
                props = arg.get("properties", {})
                title = props.get("title") or f"Sheet{len(work.sheets) + 1}"
                if work.sheet(title=title) is not None:
                    raise _Error(400, f"Invalid {where}: A sheet with the name \"{title}\" already exists.")
                grid = props.get("gridProperties", {})
                new_id = props.get("sheetId", max((s.sheet_id for s in work.sheets), default=0) + 1000)
                if work.sheet(sheet_id=new_id) is not None:
                    raise _Error(400, f"Invalid {where}: A sheet with id {new_id} already exists.")
                sheet = StandInSheet(new_id, title, len(work.sheets), grid.get("rowCount", 1000),
                                     grid.get("columnCount", 26), grid.get("frozenRowCount", 0))
                work.sheets.append(sheet)
                replies.append({"addSheet": {"properties": sheet.properties()}})
            elif kind == "updateSheetProperties":
                props = arg["properties"]
                sheet = self._sheet(work, props.get("sheetId", 0), where)
                fields = [f.strip() for f in arg.get("fields", "").split(",") if f.strip()]
                grid = props.get("gridProperties", {})
                for f in fields:
                    if f == "title":
                        other = work.sheet(title=props["title"])
                        if other is not None and other is not sheet:
                            raise _Error(400, f"Invalid {where}: A sheet with the name \"{props['title']}\" already exists.")
                        sheet.title = props["title"]
                    elif f == "gridProperties.rowCount":
                        sheet.rows = grid["rowCount"]
                    elif f == "gridProperties.columnCount":
                        sheet.cols = grid["columnCount"]
                    elif f == "gridProperties.frozenRowCount":
                        sheet.frozen_rows = grid.get("frozenRowCount", 0)
                    elif f == "gridProperties.frozenColumnCount":
                        sheet.frozen_cols = grid.get("frozenColumnCount", 0)
                    else:
                        raise _Error(400, f"stand-in: {where} field {f!r} not supported")
                if sheet.frozen_rows >= sheet.rows:
                    raise _Error(400, f"Invalid {where}: You can't freeze all visible rows on the sheet.")
                if sheet.frozen_cols and sheet.frozen_cols >= sheet.cols:
                    raise _Error(400, f"Invalid {where}: You can't freeze all visible columns on the sheet.")
                sheet.cells = {k: v for k, v in sheet.cells.items() if k[0] < sheet.rows and k[1] < sheet.cols}
                replies.append({})
            elif kind in ("repeatCell", "setDataValidation"):
                self._check_range(work, arg["range"], where)
                self._sheet(work, arg["range"].get("sheetId", 0), where).formats.append({kind: arg})
                replies.append({})
            elif kind == "setBasicFilter":
                self._check_range(work, arg["filter"]["range"], where)
                self._sheet(work, arg["filter"]["range"].get("sheetId", 0), where).formats.append({kind: arg})
                replies.append({})
            elif kind == "updateCells":
                start = arg["start"]
                sheet = self._sheet(work, start.get("sheetId", 0), where)
                r0, c0 = start.get("rowIndex", 0), start.get("columnIndex", 0)
                rows = arg.get("rows", [])
                width = max((len(r.get("values", [])) for r in rows), default=0)
                if r0 + len(rows) > sheet.rows or c0 + width > sheet.cols:
                    raise _Error(400, f"Invalid {where}: range exceeds grid limits")
                for i, r in enumerate(rows):
                    for j, cell in enumerate(r.get("values", [])):
                        value = cell.get("userEnteredValue", {})
                        v = next(iter(value.values()), None) if value else None
                        if v in (None, ""):
                            sheet.cells.pop((r0 + i, c0 + j), None)
                        else:
                            sheet.cells[(r0 + i, c0 + j)] = v
                sheet.formats.append({kind: arg})
                replies.append({})
            elif kind == "addProtectedRange":
                pr = copy.deepcopy(arg["protectedRange"])
                sheet = self._sheet(work, pr.get("range", {}).get("sheetId", 0), where)
                for sub in pr.get("unprotectedRanges", []):
                    self._check_range(work, sub, where)
                pr["protectedRangeId"] = next(self._ids)
                sheet.protected.append(pr)
                replies.append({"addProtectedRange": {"protectedRange": pr}})
            elif kind == "deleteProtectedRange":
                pid = arg["protectedRangeId"]
                owner = next((sh for sh in work.sheets if any(p["protectedRangeId"] == pid for p in sh.protected)), None)
                if owner is None:
                    raise _Error(400, f"Invalid {where}: No protected range with id: {pid}")
                owner.protected = [p for p in owner.protected if p["protectedRangeId"] != pid]
                replies.append({})
            elif kind == "updateDimensionProperties":
                rng = arg["range"]
                sheet = self._sheet(work, rng.get("sheetId", 0), where)
                limit = sheet.cols if rng["dimension"] == "COLUMNS" else sheet.rows
                if rng.get("endIndex", 0) > limit:
                    raise _Error(400, f"Invalid {where}: range exceeds grid limits ({limit})")
                sheet.formats.append({kind: arg})
                replies.append({})
            else:
                raise _Error(400, f"stand-in: {where} is not implemented")
        self.spreadsheets[sid] = work
        self.batch_updates.append((sid, requests))
        return {"spreadsheetId": sid, "replies": replies}

    @staticmethod
    def _sheet(ss: StandInSpreadsheet, sheet_id: int, where: str) -> StandInSheet:
        sheet = ss.sheet(sheet_id=sheet_id)
        if sheet is None:
            raise _Error(400, f"Invalid {where}: No grid with id: {sheet_id}")
        return sheet

    def _check_range(self, ss: StandInSpreadsheet, rng: dict[str, int], where: str) -> None:
        sheet = self._sheet(ss, rng.get("sheetId", 0), where)
        if rng.get("endRowIndex", 0) > sheet.rows or rng.get("endColumnIndex", 0) > sheet.cols:
            raise _Error(
                400,
                f"Invalid {where}: Range ({sheet.title}!R{rng.get('endRowIndex')}C{rng.get('endColumnIndex')}) "
                f"exceeds grid limits. Max rows: {sheet.rows}, max columns: {sheet.cols}",
            )

    # -- values --------------------------------------------------------------------------------
    def _resolve(self, ss: StandInSpreadsheet, rng: str) -> tuple[StandInSheet, int, int, int | None, int | None]:
        title, a1 = _split_range(rng)
        sheet = ss.sheet(title=title)
        if sheet is None:
            raise _Error(400, f"Unable to parse range: {rng}")
        return (sheet, *_parse_a1(a1))

    def _values_update(self, ss: StandInSpreadsheet, rng: str, query: dict[str, list[str]], body: dict[str, Any]) -> Any:
        option = (query.get("valueInputOption") or [""])[0]
        if option not in ("RAW", "USER_ENTERED"):
            raise _Error(400, "'valueInputOption' is required but not specified")
        sheet, r0, c0, _, _ = self._resolve(ss, rng)
        values = body.get("values") or []
        n_rows = len(values)
        n_cols = max((len(r) for r in values), default=0)
        if r0 + n_rows > sheet.rows or c0 + n_cols > sheet.cols:
            raise _Error(
                400,
                f"Range ('{sheet.title}'!{_col_letters(c0)}{r0 + 1}:{_col_letters(c0 + n_cols - 1)}{r0 + n_rows}) "
                f"exceeds grid limits. Max rows: {sheet.rows}, max columns: {sheet.cols}",
            )
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                key = (r0 + i, c0 + j)
                if option == "USER_ENTERED" and isinstance(v, str):
                    if v.startswith("="):
                        v = {"formula": v}
                    elif v.startswith("'"):
                        v = v[1:]
                if v is None or v == "":
                    sheet.cells.pop(key, None)
                else:
                    sheet.cells[key] = v
        return {
            "spreadsheetId": ss.spreadsheet_id,
            "updatedRange": rng,
            "updatedRows": n_rows,
            "updatedColumns": n_cols,
            "updatedCells": sum(len(r) for r in values),
        }

    def _values_batch_update(self, ss: StandInSpreadsheet, body: dict[str, Any]) -> Any:
        query = {"valueInputOption": [body.get("valueInputOption") or ""]}
        data = body.get("data") or []
        for item in data:  # all-or-nothing, like the API: check every range before writing any
            sheet, r0, c0, _, _ = self._resolve(ss, item["range"])
            values = item.get("values") or []
            n_cols = max((len(r) for r in values), default=0)
            if r0 + len(values) > sheet.rows or c0 + n_cols > sheet.cols:
                raise _Error(400, f"Range ({item['range']}) exceeds grid limits. Max rows: {sheet.rows}, max columns: {sheet.cols}")
        replies = [self._values_update(ss, item["range"], query, item) for item in data]
        return {
            "spreadsheetId": ss.spreadsheet_id,
            "totalUpdatedCells": sum(r["updatedCells"] for r in replies),
            "responses": replies,
        }

    def _dense(self, sheet: StandInSheet, *, raw: bool, render: str = "FORMATTED_VALUE",
               bounds: tuple[int, int, int | None, int | None] = (0, 0, None, None)) -> list[list[Any]]:
        r0, c0, r1, c1 = bounds
        keys = [k for k in sheet.cells if k[0] >= r0 and k[1] >= c0
                and (r1 is None or k[0] < r1) and (c1 is None or k[1] < c1)]
        if not keys:
            return []
        last_row = max(k[0] for k in keys)
        out: list[list[Any]] = []
        for r in range(r0, last_row + 1):
            cols = [k[1] for k in keys if k[0] == r]
            if not cols:
                out.append([])
                continue
            row = []
            for c in range(c0, max(cols) + 1):
                v = sheet.cells.get((r, c), "")
                if raw or render in ("UNFORMATTED_VALUE", "FORMULA"):
                    row.append(v["formula"] if isinstance(v, dict) and render == "FORMULA" else v)
                else:
                    row.append(_format_value(v))
            out.append(row)
        return out

    def _values_get(self, ss: StandInSpreadsheet, rng: str, query: dict[str, list[str]]) -> Any:
        sheet, r0, c0, r1, c1 = self._resolve(ss, rng)
        render = (query.get("valueRenderOption") or ["FORMATTED_VALUE"])[0]
        values = self._dense(sheet, raw=False, render=render, bounds=(r0, c0, r1, c1))
        out: dict[str, Any] = {"range": rng, "majorDimension": "ROWS"}
        if values:
            out["values"] = values
        return out
