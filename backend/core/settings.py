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
