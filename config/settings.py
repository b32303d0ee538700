"""Typed settings for every environment (pydantic-settings).

Read from environment variables with prefix ``VOC_`` and nested delimiter ``__``
(``VOC_DB__DSN``, ``VOC_S3__ENDPOINT_URL``) and from ``.env`` in the working directory.
Keys of other tools sharing that ``.env`` (Prefect's ``PREFECT_*``) are ignored.

Embedded defaults need no service: source = the shipped sample CSV, storage = ``./voc-data``,
review = XLSX workbooks in storage, Prefect ephemeral.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.dsn import dsn_form, dsn_secret_parts

__all__ = [
    "VocSettings",
    "DbSettings",
    "S3Settings",
    "ReviewSettings",
    "ModelSettings",
    "ServeSettings",
    "ENV_PREFIXES",
    "sample_csv_path",
    "get_settings",
]

ENV_PREFIXES: dict[str, str] = {"dev": "stat/voc-dev", "stg": "stat/voc-stg", "prd": "stat/voc"}
"""Storage prefix per environment: every key of an environment lives under its prefix (the
layout of the production buckets; :mod:`flows.storage_layout` builds the keys below it)."""


def sample_csv_path() -> Path:
    """The shipped real sample (Incheon Jung-gu complaints, see its README)."""
    return Path(str(resources.files("voc.datasets").joinpath("incheon_junggu_minwon/voc.csv")))


class DbSettings(BaseModel):
    """PostgreSQL connection and table mapping (used when the source is a ``postgresql://`` DSN)."""

    dsn: SecretStr | None = Field(None, description="postgresql://user:pass@host:5432/db; secret, never logged")
    pool_min: int = Field(1, description="Connections kept open by the pool")
    pool_max: int = Field(4, description="Upper bound of pooled connections")
    connect_timeout_s: int = Field(10, description="Seconds before a connection attempt fails")
    statement_timeout_s: float = Field(
        120.0,
        ge=0,
        description="Seconds one SQL statement may run before the server cancels it (PostgreSQL "
        "statement_timeout, set on every pooled connection); 0 = no limit. A cancelled statement "
        "is not retried",
    )
    voc_table: str = Field("voc", description="Table (or view) holding the VOC source rows")
    taxonomy_table: str = Field("voc_taxonomy", description="Taxonomy table")
    classification_table: str = Field("voc_classification", description="Tag output table")
    voc_columns: dict[str, str] = Field(
        default_factory=dict,
        description="Map from our VOC column names to the customer's, e.g. {'title': 'voc_title'}",
    )


class S3Settings(BaseModel):
    """S3 or S3-compatible storage (used when storage is ``s3://bucket[/root]``)."""

    endpoint_url: str | None = Field(
        None, description="Custom endpoint (MinIO, moto); falls back to AWS_ENDPOINT_URL when unset"
    )
    region_name: str | None = Field(None, description="AWS region")
    aws_access_key_id: SecretStr | None = Field(None, description="Access key; default AWS chain when unset")
    aws_secret_access_key: SecretStr | None = Field(None, description="Secret key")
    connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to open a connection to the endpoint")
    read_timeout_s: float = Field(
        20.0, gt=0, description="Seconds to wait for the endpoint's answer (each socket read)"
    )
    presign_expiry_s: int = Field(
        7 * 24 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="Lifetime of the presigned HTTPS links to dashboards in Prefect artifacts (SigV4 allows at most 7 days)",
    )
    botocore_attempts: int = Field(
        2,
        ge=1,
        description="HTTP attempts botocore makes per request, the first included (standard retry mode: "
        "connection errors, timeouts, 5xx and throttling are retried with jittered backoff); each attempt "
        "adds connect + read timeout to the hung-endpoint bound (flows.adapters.retries: 2 keeps a monthly "
        "run under 5 minutes with the default timeouts)",
    )


class ReviewSettings(BaseModel):
    """Where reviewers work: XLSX workbooks in storage (default) or Google Sheets."""

    backend: str = Field(
        "xlsx",
        description="Review backend, a name registered in flows/resources.py (xlsx: workbooks in storage; gsheets: "
        "Google Sheets); an unknown name stops a run before it reads anything",
    )
    service_account_json: SecretStr | None = Field(
        None, description="Google service-account JSON (the file's content); secret"
    )
    spreadsheet_key: str | None = Field(
        None, description="One configured spreadsheet with a worksheet per month; else one spreadsheet per month"
    )
    spreadsheet_title_template: str = Field("VOC 검수 {yyyymm}", description="Title of a per-month spreadsheet")
    share_with: list[str] = Field(default_factory=list, description="E-mails given edit access to new sheets")
    sheets_api_url: str | None = Field(
        None, description="Override of the Sheets API base URL (tests use a local stand-in)"
    )
    low_confidence_threshold: float | None = Field(
        None, description="Rows below this confidence are flagged 검토 우선; default: the model's held-out choice"
    )
    timeout_s: float = Field(
        30.0, gt=0, description="Seconds to wait for each Google Sheets / Drive HTTP request (connect and read)"
    )
    per_building: bool = Field(
        False,
        description="XLSX backend: one workbook per building ({prefix}/{yyyymm}/{building_id}/review_{building_id}_{yyyymm}.xlsx) "
        "instead of one per month; refresh reads them all. Google Sheets keeps one spreadsheet per month",
    )
    link_expiry_s: int = Field(
        7 * 24 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="Lifetime of the presigned HTTPS link to the month's review workbook (S3) in the month index, "
        "the run summary and the Prefect artifact; S3 SigV4 presigned URLs allow at most 7 days (604800 s)",
    )


class ModelSettings(BaseModel):
    """Which classifier the flows train and tag with."""

    kind: str = Field(
        "linear",
        description="Classifier kind, one of the kinds registered in voc.model_kinds (hybrid, linear, anchor, "
        "kobert); linear measured best on the real sample (docs/model-quality.md), hybrid adds taxonomy "
        "keywords (hand-curated taxonomies), anchor = the production recipe",
    )
    use_reply: bool = Field(True, description="Read the reply (batch tagging of a past month has it)")
    select_recipe: bool = Field(
        True,
        description="Choose the CPU recipe on rolling-origin temporal folds of the training rows (voc.recipes; "
        "never worse than the production baseline 'anchor'); false = the default recipe without selection "
        "(several times faster training)",
    )
    registration_variant: bool = Field(
        True,
        description="Also train the registration-time tagger (title + request) that `voc serve` answers "
        "reply-less requests with; false skips it where its training cost matters (doubles KoBERT fine-tuning)",
    )
    label_audit: bool = Field(
        True,
        description="Audit the training labels after fitting (confident learning, voc.label_audit: 30–60 s on "
        "1,000 VOCs, 2 cores) and write label_audit.csv / label_audit.html into the model version",
    )
    kobert_base: str = Field(
        "skt/kobert-base-v1",
        description="KoBERT base checkpoint (hub id or local directory); tests use a tiny local base",
    )
    kobert_epochs: int = Field(5, description="Maximum fine-tuning epochs (early stopping may end sooner)")
    kobert_batch_size: int = Field(32, description="Training batch size")
    kobert_max_length: int = Field(256, description="Tokens per text (KoBERT supports 512)")
    kobert_int8: bool = Field(
        True,
        description="After training, write an int8 ONNX Runtime copy for CPU workers (kept only if it agrees "
        "with the fp32 model on the held-out rows; needs onnxruntime, in the kobert extra)",
    )
    kobert_int8_min_agreement: float = Field(
        0.98, ge=0.0, le=1.0, description="Least held-out arg-max agreement of the int8 copy with fp32, per head"
    )
    kobert_runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="KoBERT inference: auto = int8 ONNX copy on CPU workers when the model has one, "
        "PyTorch (bf16/fp16 autocast) on GPU; torch = always PyTorch; onnx = always the int8 copy",
    )
    allow_keyword_only: bool = Field(
        False,
        description="Let full/tagging-only tag by taxonomy keywords when no model was trained although "
        "labelled history exists (otherwise such a run fails: 'run voc-train first')",
    )
    seed: int = Field(42, description="Random seed for splits and training")
    cache_dir: Path = Field(Path.home() / ".cache" / "voc" / "models", description="Local copy of model versions")

    @field_validator("kind", mode="after")
    @classmethod
    def _registered_kind(cls, v: str) -> str:
        from voc.model_kinds import kind_names  # the registry (no scikit-learn, no torch imported)

        if v not in kind_names():
            raise ValueError(f"unknown model kind {v!r}; expected one of {', '.join(kind_names())}")
        return v


class ServeSettings(BaseModel):
    """The real-time tagging service (``voc serve``, flows/service/app.py)."""

    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer keys accepted by /v1/tag and /v1/tag:batch, as a JSON list "
        "(VOC_SERVE__API_KEYS='[\"key1\", \"key2\"]'); secrets, never logged. The service refuses to start without one",
    )
    admin_key: SecretStr | None = Field(
        None, description="Bearer key of POST /v1/admin/reload (also accepted for tagging); unset = no admin endpoint"
    )
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0: every interface)")
    port: int = Field(8000, ge=1, le=65535, description="TCP port")
    workers: int = Field(1, ge=1, description="uvicorn worker processes (each loads the model: ~1 per core)")
    reload_interval_s: float = Field(
        30.0, gt=0, description="Seconds between reads of models/champion.json; a new champion is swapped in atomically"
    )
    champion_read_deadline_s: float = Field(
        60.0, gt=0, description="Seconds within which one poll may retry a transient storage error"
    )
    max_body_bytes: int = Field(65_536, ge=1024, description="Largest request body of /v1/tag (bytes); larger → 413")
    max_batch: int = Field(256, ge=1, description="Most VOCs in one /v1/tag:batch request; more → 422")
    max_batch_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body of /v1/tag:batch (bytes); larger → 413"
    )
    write_through: bool = Field(
        False,
        description="Upsert each tag that has a voc_id into voc_classification (needs a PostgreSQL source: "
        "VOC_SOURCE=postgres + VOC_DB__DSN) as classify_source realtime / realtime_reply, under the priority rules",
    )
    db_statement_timeout_s: float = Field(
        5.0, gt=0, description="Seconds one write-through statement may run (PostgreSQL statement_timeout)"
    )
    reviewer_keys: SecretStr | None = Field(
        None,
        description="Reviewer keys of the upload page (GET/POST /review): a JSON map key → list of building ids, "
        "e.g. VOC_SERVE__REVIEWER_KEYS='{\"<key>\": [\"1\", \"2\"]}'; the browser sends the key as the HTTP Basic "
        "password (any user name). Secret, never logged; unset = no /review routes (404)",
    )
    max_upload_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body of POST /review/{yyyymm} (bytes); larger → 413"
    )

    @field_validator("reviewer_keys", mode="after")
    @classmethod
    def _reviewer_keys_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            reviewer_key_map(v)  # refuse a malformed map at start-up; messages never show a key
        return v

    def reviewer_buildings(self) -> dict[str, frozenset[str]]:
        """The reviewer keys (``reviewer_keys``) → the building ids each may review (empty: no page)."""
        return reviewer_key_map(self.reviewer_keys) if self.reviewer_keys is not None else {}


def reviewer_key_map(value: SecretStr) -> dict[str, frozenset[str]]:
    """Parse ``VOC_SERVE__REVIEWER_KEYS`` (a JSON object: key → list of building ids).

    Returns
    -------
    dict
        Key → building ids (stripped; blank value → empty dict).

    Raises
    ------
    ValueError
        Not a JSON object; a blank key; a value that is not a non-empty list of non-empty strings
        or integers. The message names the entry by position, never the key.
    """
    import json

    text = value.get_secret_value().strip()
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"VOC_SERVE__REVIEWER_KEYS (not shown) is not JSON: {e.msg} at position {e.pos}") from None
    if not isinstance(raw, dict):
        raise ValueError("VOC_SERVE__REVIEWER_KEYS (not shown) must be a JSON object: key → list of building ids")
    out: dict[str, frozenset[str]] = {}
    for i, (key, ids) in enumerate(raw.items()):
        if not key.strip():
            raise ValueError(f"VOC_SERVE__REVIEWER_KEYS entry {i}: blank key")
        if not isinstance(ids, list) or not ids or not all(
            isinstance(b, (str, int)) and not isinstance(b, bool) and str(b).strip() for b in ids
        ):
            raise ValueError(
                f"VOC_SERVE__REVIEWER_KEYS entry {i} (key not shown): the value must be a non-empty list of building ids"
            )
        out[key] = frozenset(str(b).strip() for b in ids)
    return out


class VocSettings(BaseSettings):
    """All settings. ``VOC_ENV`` picks the storage prefix (dev → stat/voc-dev)."""

    model_config = SettingsConfigDict(
        env_prefix="VOC_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,  # a refused value (a DSN with a password) is never repeated
    )

    env: Literal["dev", "stg", "prd"] = Field("dev", description="Environment; chooses the storage prefix")
    source: str = Field(
        default_factory=lambda: str(sample_csv_path()),
        description=(
            "VOC source: a CSV path in the VOC schema, a PostgreSQL DSN without password (postgresql://user@host/db "
            "or libpq keywords 'host=… dbname=…'), or 'postgres' to use VOC_DB__DSN (keeps the password out of "
            "logs and flow-run parameters); a DSN with a password is refused (config/dsn.py)"
        ),
    )
    source_encoding: Literal["utf-8", "cp949", "euc-kr"] = Field(
        "utf-8",
        description="Encoding of a CSV source (VOC_SOURCE_ENCODING): UTF-8 with or without BOM by default, "
        "cp949/euc-kr for Korean Excel/Windows exports; bytes invalid in it stop the run (never replaced)",
    )
    storage: str = Field("./voc-data", description="Output root: a local directory or s3://bucket[/root]")
    public_base_url: str | None = Field(
        None,
        description="Base URL under which the storage root is served to browsers (e.g. https://voc.internal/files); "
        "dashboard and review-workbook links in Prefect artifacts (and the month index's links on S3) become "
        "{public_base_url}/{key}. Unset: presigned HTTPS links for S3, "
        "file:// links for a local directory",
    )
    taxonomy_path: Path | None = Field(
        None, description="Taxonomy CSV; default: the DB table (postgres source) or the shipped/derived one"
    )
    building_workers: int = Field(
        4,
        ge=1,
        description="Buildings in flight at once with the thread runner "
        "(I/O overlaps; the CPU part runs one building at a time per process)",
    )
    task_runner: str = Field(
        "thread",
        description="Where the per-building tasks run (VOC_TASK_RUNNER): 'thread' (threads of the flow process), "
        "'dask' (a local Dask cluster of worker processes, VOC_DASK_WORKERS of them) or the address of an existing "
        "Dask scheduler, 'tcp://host:8786'",
    )
    dask_workers: int = Field(
        0, ge=0, description="Worker processes of the local Dask cluster (task_runner='dask'); 0 = one per CPU core"
    )
    db: DbSettings = Field(default_factory=DbSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)

    @field_validator("source", "storage")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v or not str(v).strip():
            raise ValueError("must not be empty")
        return str(v).strip()

    @field_validator("source")
    @classmethod
    def _no_secret_in_source(cls, v: str) -> str:
        parts = dsn_secret_parts(v)
        if parts:
            raise ValueError(
                f"VOC_SOURCE: refusing a PostgreSQL DSN that contains a secret ({', '.join(parts)}; value not shown): "
                "the source is written to logs and run states. Put the DSN in VOC_DB__DSN (a secret, never logged) "
                "and set VOC_SOURCE=postgres, or drop the password and keep it in ~/.pgpass (PGPASSFILE)"
            )
        return v

    @field_validator("task_runner")
    @classmethod
    def _runner(cls, v: str) -> str:
        v = str(v).strip()
        if v in ("thread", "dask") or v.startswith(("tcp://", "tls://")):
            return v
        raise ValueError(f"must be 'thread', 'dask' or a Dask scheduler address 'tcp://host:8786', got {v!r}")

    @property
    def prefix(self) -> str:
        """Storage prefix of this environment."""
        return ENV_PREFIXES[self.env]

    @property
    def source_is_postgres(self) -> bool:
        """``postgres`` (``VOC_DB__DSN``), a ``postgresql://`` URL, or a libpq keyword string
        (``host=db dbname=voc``) that is not the path of an existing file."""
        form = dsn_form(self.source)
        return self.source == "postgres" or form == "uri" or (form == "keywords" and not Path(self.source).is_file())

    @property
    def source_dsn(self) -> str | None:
        """``source`` when it is itself a DSN (URL or keywords; never with a password: refused on
        validation), else None (``postgres``: the DSN is ``db.dsn``; a CSV path)."""
        return self.source if self.source_is_postgres and self.source != "postgres" else None


def get_settings(**overrides: object) -> VocSettings:
    """Settings from env/.env with explicit overrides (CLI flags) applied on top."""
    clean: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}  # pydantic validates each value
    return VocSettings(**clean)
