"""One settings class for every component, read from the environment (the seed's names first).

A bad value fails at start-up, naming the variable: see `load_settings`.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class AuthMode(StrEnum):
    """IPS_AUTH: `token` (bearer tokens required) or `none` (no auth: an explicit choice)."""

    TOKEN = "token"
    NONE = "none"


# A list from the environment: a JSON list, or comma-separated words.
CommaList = Annotated[list[str], NoDecode]


def _comma_list(v: object) -> object:
    if isinstance(v, str):
        text = v.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return v


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Settings(BaseSettings):
    """Environment variable names are the field names upper-cased (e.g. SERVER_PORT)."""

    # hide_input_in_errors: a whole-model error would otherwise print every input, secrets included.
    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", hide_input_in_errors=True
    )

    # The seed's three.
    server_port: int = Field(default=8080, ge=1, le=65535)
    # The API's listen address: loopback unless a deployment opens it (compose, Kubernetes).
    server_host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
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
    # Benchmarks and tests only: the engine's own timers (the Unschedulable/NotReady grace, the
    # wait past a Job's deadline, the Job checks) run this many times faster, to match a kubesim
    # started with the same --time-scale. Never set it against a real cluster.
    engine_time_scale: float = Field(default=1.0, gt=0, le=1000)

    def engine_seconds(self, seconds: float) -> float:
        """A duration of the engine's, in wall seconds (ENGINE_TIME_SCALE)."""
        return seconds / self.engine_time_scale

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
        default=None, description="Comma-separated bearer tokens, each `TOKEN [read|write|admin]`."
    )
    ips_api_tokens_file: Path | None = None
    # Unset: tokens are required (a start-up error without any). `none` turns auth off, loudly.
    ips_auth: AuthMode | None = None
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # How long the API reuses a running task's view (GET /api/v1/tasks/{id}) and a list page
    # (GET /api/v1/tasks) it read from Temporal, in seconds. 0 keeps nothing; concurrent
    # identical GETs share one Temporal round trip either way (api/shared_reads.py).
    task_view_cache_seconds: float = Field(default=0.5, ge=0, le=60)

    # Policy: what a caller may ask for (docs/security.md). Enforced by the API (400/403/429).
    # Registry prefixes an image must start with (`docker.io/library`, `registry.example.com/`);
    # empty allows every registry.
    ips_allowed_registries: CommaList = Field(default_factory=list)
    # Pull Secrets a task may name (they live in K8S_NAMESPACE); empty allows none.
    ips_allowed_pull_secrets: CommaList = Field(default_factory=list)
    # `{"operator": "Exists"}` with no key tolerates every taint.
    ips_allow_keyless_tolerations: bool = False
    # Tolerating the control-plane taints (node-role.kubernetes.io/control-plane, .../master).
    ips_allow_control_plane: bool = False
    # imagePullPolicy Always: a registry pull on every node even when the image is there.
    ips_allow_always_pull: bool = False
    # Tasks running at once (all callers); a POST over it gets 429. 0 means no cap.
    ips_max_running_tasks: int = Field(default=20, ge=0, le=100000)
    # Schedules (/api/v1/schedules): the shortest interval between two runs, `every` or cron.
    ips_schedule_min_interval_seconds: int = Field(default=300, ge=1, le=86400 * 366)

    # Observability.
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    # Where the worker's two metrics ports listen: loopback unless a deployment opens them.
    metrics_host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
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

    @field_validator("ips_allowed_registries", "ips_allowed_pull_secrets", mode="before")
    @classmethod
    def _lists(cls, v: object) -> object:
        return _comma_list(v)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v


def secret_fields() -> set[str]:
    """Settings whose values must never be printed (SecretStr fields)."""
    return {
        name for name, info in Settings.model_fields.items() if "SecretStr" in str(info.annotation)
    }


def format_settings_error(err: ValidationError) -> str:
    """One line per problem naming the variable; a value is shown only for a non-secret field."""
    secrets = secret_fields()
    lines = ["invalid configuration:"]
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        var = "_".join(loc).upper() or "settings"
        value = e.get("input")
        shown = (
            loc
            and loc[0] not in secrets
            and isinstance(value, str | int | float)
            and len(str(value)) <= 200
        )
        lines.append(f"  {var}={value!r}: {e['msg']}" if shown else f"  {var}: {e['msg']}")
    return "\n".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; exits with a message naming the bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        print(format_settings_error(err), file=sys.stderr)
        raise SystemExit(2) from None
