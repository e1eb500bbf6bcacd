"""One settings class for every component, read from the environment (the seed's names first).

A bad value fails at start-up, naming the variable: see `load_settings`.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Settings(BaseSettings):
    """Environment variable names are the field names upper-cased (e.g. SERVER_PORT)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # The seed's three.
    server_port: int = Field(default=8080, ge=1, le=65535)
    k8s_namespace: str = Field(default="default", min_length=1, max_length=63)
    # Must be a statically linked busybox: dynamically linked helpers break on Alpine and
    # distroless images (kube-fledged #176, #246). The musl build is static.
    worker_image: str = "busybox:1.37.0-musl"

    # Temporal.
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "ips-prewarm"
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_api_key: SecretStr | None = None
    # Unset: TLS is on when a cert, a CA or an API key is set. True: TLS with the system roots
    # (a server certificate from a public CA). Same names as the `temporal` CLI's variables.
    temporal_tls: bool | None = None
    temporal_tls_server_name: str | None = None

    # Kubernetes.
    kubeconfig: Path | None = Field(default=None, description="Unset means in-cluster config.")
    k8s_qps: float = Field(default=20.0, gt=0, le=10000)
    k8s_burst: int = Field(default=40, ge=1, le=100000)
    job_ttl_seconds: int = Field(default=600, ge=0, le=86400)
    priority_class_name: str | None = None
    unschedulable_grace_seconds: int = Field(default=60, ge=0, le=3600)

    # Registries (preflight). Loopback registries may always use plain HTTP.
    insecure_registries: list[str] = Field(
        default_factory=list,
        description="JSON list of host or host:port allowed over plain HTTP (non-loopback).",
    )
    registry_ca_file: Path | None = Field(
        default=None, description="PEM bundle trusted for registry TLS, besides the system roots."
    )

    # API.
    ips_api_tokens: SecretStr | None = Field(
        default=None, description="Comma-separated bearer tokens; unset means auth is off."
    )
    ips_api_tokens_file: Path | None = None
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    # Observability.
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    # The Temporal SDK's own Prometheus metrics (worker only; 0 disables).
    temporal_metrics_port: int = Field(default=9091, ge=0, le=65535)
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = Field(
        default=LogFormat.JSON, validation_alias=AliasChoices("IPS_LOG_FORMAT", "LOG_FORMAT")
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together (mTLS client pair)"
            )
        if self.temporal_tls is False and (self.temporal_tls_cert or self.temporal_tls_ca):
            raise ValueError("TEMPORAL_TLS=false contradicts TEMPORAL_TLS_CERT/TEMPORAL_TLS_CA")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    def api_tokens(self) -> list[str]:
        """Tokens from IPS_API_TOKENS and IPS_API_TOKENS_FILE (one a line, # comments)."""
        tokens: list[str] = []
        if self.ips_api_tokens is not None:
            tokens += [t.strip() for t in self.ips_api_tokens.get_secret_value().split(",")]
        if self.ips_api_tokens_file is not None:
            for line in self.ips_api_tokens_file.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    tokens.append(line)
        return [t for t in tokens if t]


def format_settings_error(err: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for e in err.errors():
        var = "_".join(str(p) for p in e["loc"]).upper() or "?"
        lines.append(f"  {var}={e.get('input')!r}: {e['msg']}")
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; exits with a message naming the bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        print(format_settings_error(err), file=sys.stderr)
        raise SystemExit(2) from None
