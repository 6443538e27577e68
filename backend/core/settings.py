"""Settings from the environment (prefix ``BACKLINE_``); the only thing that differs
between the embedded default and a scaled-out deployment."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BACKLINE_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    # Proxies whose X-Forwarded-For/-Proto `backline serve` believes (uvicorn's
    # forwarded_allow_ips): the client address rate limits of anonymous callers use.
    forwarded_allow_ips: str = "127.0.0.1"
    data_dir: Path = Path("var")

    # Empty means the embedded SQLite file under data_dir.
    database_url: str = ""
    # Empty means in-process broker and event bus.
    redis_url: str = ""
    redis_prefix: str = "backline"

    # Empty means a key generated once and kept in data_dir/secret.key.
    secret_key: str = ""
    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=30, ge=1)
    invite_hours: int = Field(default=72, ge=1)
    # How long a signed media URL (original, MP3, HLS) stays valid.
    stream_url_minutes: int = Field(default=360, ge=1)

    # Folders a LOCAL_FOLDER source may point into, ':'-separated; empty means
    # data_dir/library. Nothing outside them can be indexed, through symlinks neither.
    allowed_roots: str = ""
    # Encrypts stored WebDAV passwords; empty means derived from the secret key.
    source_key: str = ""

    # Embedded default: worker threads the api process runs actors in (0: none, e.g.
    # for a read-only replica). Ignored when Redis is set: `backline worker` runs them.
    worker_threads: int = Field(default=2, ge=0, le=64)

    # Watch the sources set to `watch` (one process does: see backend/library/watching.py).
    watch_sources: bool = True
    # How often a watched WebDAV share is looked at for changes.
    webdav_poll_seconds: float = Field(default=30.0, gt=0)

    # A websocket that sends no connection_init within this many seconds is closed (4408).
    ws_init_timeout_seconds: float = Field(default=10.0, gt=0)

    # Uploads and derived files: a folder (storage_dir, empty means data_dir/storage) or
    # an S3 bucket. Empty S3 keys mean boto's own lookup (environment, instance role).
    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path | None = None
    s3_endpoint_url: str = ""  # empty: AWS
    # The endpoint as browsers reach it, for presigned upload URLs; empty: s3_endpoint_url.
    s3_public_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1)
    # The API's address as players reach it (e.g. https://backline.example.org), for
    # signed media links; empty: the address each client used.
    public_url: str = ""
    # Media work: also transcode a loudness-normalised HLS rendition (two-pass loudnorm).
    transcode_normalized: bool = False

    # OAuth sign-in (backend/accounts/oauth). A provider is offered only when its client id
    # and secret are set; register <public URL>/auth/<provider>/callback with it.
    # oauth_redirects: comma-separated URL prefixes the SPA may be sent back to after a
    # sign-in; empty means the API's own origin (public_url, else the address used).
    oauth_redirects: str = ""
    google_client_id: str = ""
    google_client_secret: str = ""
    google_discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    github_client_id: str = ""
    github_client_secret: str = ""
    github_authorize_url: str = "https://github.com/login/oauth/authorize"
    github_token_url: str = "https://github.com/login/oauth/access_token"
    github_api_url: str = "https://api.github.com/"

    # Persisted queries (backend/graphql/persisted/). Automatic persisted queries live in
    # the database, or in Redis when redis_url is set: at most this many documents (the
    # least recently used go first), each at most this many bytes (a longer one still
    # runs, it is just not kept), and on Redis forgotten after this long unused.
    persisted_queries_max: int = Field(default=10_000, ge=1)
    persisted_query_max_bytes: int = Field(default=100_000, ge=1)
    persisted_queries_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    # The trusted documents manifest ({sha256 hex: document}, GraphQL Code Generator's
    # persisted-documents.json). Empty: frontend-contract/persisted-documents.json if it
    # exists. A configured file that is missing, or any entry whose hash does not match
    # its document, refuses startup.
    trusted_documents: str = ""
    # Run only the trusted documents (API tokens can be limited so one by one, too).
    persisted_only: bool = False
    # Cache-Control max-age of a query answered over GET without errors: shared caches may
    # keep an anonymous answer this long; one to a request with a token is private.
    http_get_max_age_seconds: int = Field(default=60, ge=0)
    http_get_private_max_age_seconds: int = Field(default=0, ge=0)

    # Abuse limits (backend/graphql/limits/), no looser than graphql-armor's defaults and
    # after GitHub's GraphQL limits. A document nested deeper, with more aliases,
    # directives or tokens, or costing more is refused before it runs (QUERY_TOO_COMPLEX).
    # Cost: the most objects the answer can hold; a connection's `first` (default 20)
    # multiplies what is under it. Trusted documents (frontend-contract's manifest) may
    # nest deeper: Relay's `nodes`/`edges { node }` levels put a version page with its
    # comments and their replies past 6.
    max_query_depth: int = Field(default=6, ge=1)
    max_trusted_query_depth: int = Field(default=12, ge=1)
    max_query_aliases: int = Field(default=15, ge=0)
    max_query_directives: int = Field(default=50, ge=0)
    max_query_tokens: int = Field(default=1000, ge=1)
    max_query_cost: int = Field(default=5000, ge=1)
    # The largest GraphQL request body that is not a multipart upload (max_upload_bytes).
    max_request_bytes: int = Field(default=1024**2, ge=1)
    # Rate limits: points per window; a request costs max(1, ceil(cost / 100)). Counted per
    # API token, else per user, else (signed out) per client address, an IPv6 /64 as one.
    # 0 turns a budget off. With redis_url the counts are shared by all api processes.
    rate_limit_points: int = Field(default=5000, ge=0)
    rate_limit_anonymous_points: int = Field(default=1000, ge=0)
    rate_limit_window_seconds: int = Field(default=3600, ge=1)

    # Startup refuses a database that is not at the newest migration; tests may relax it.
    require_migrated_database: bool = True

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'backline.db').resolve()}"

    @property
    def resolved_storage_dir(self) -> Path:
        return self.storage_dir or self.data_dir / "storage"

    @property
    def resolved_allowed_roots(self) -> list[Path]:
        roots = [Path(part) for part in self.allowed_roots.split(":") if part.strip()]
        return [root.resolve() for root in roots or [self.data_dir / "library"]]

    @cached_property
    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        key_file = self.data_dir / "secret.key"
        if key_file.exists():
            return key_file.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        key_file.touch(mode=0o600)
        key_file.write_text(key)
        return key


def get_settings() -> Settings:
    return Settings()
