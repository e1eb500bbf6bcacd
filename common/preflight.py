"""The preflight contract: what the registry said about each image (pure models).

The models live in `common/`, not next to the client in `activities/registry.py`, so the
workflow can hold them without importing an HTTP library (import-linter forbids httpx there).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from common.models import SecretName, WireModel

ACTIVITY_RESOLVE_IMAGES = "resolve_images"


class PreflightError(StrEnum):
    """How resolving one image failed. NotFound and Unauthorized fail the task; Unreachable
    (no answer, TLS failure, 5xx, 429) means: pull without preflight, with a warning."""

    NOT_FOUND = "NotFound"
    UNAUTHORIZED = "Unauthorized"
    UNREACHABLE = "Unreachable"


class ImagePlatform(WireModel):
    """One platform an image offers, with the manifest that serves it and its layers' size."""

    os: str
    architecture: str
    variant: str | None = None
    digest: str = Field(description="The platform's image manifest.")
    compressed_size: int = Field(ge=0, description="Sum of the manifest's layer sizes, bytes.")


class ResolvedImage(WireModel):
    """One image as the registry resolved it, or why it could not."""

    image: str = Field(description="As the task asked for it.")
    digest: str | None = Field(default=None, description="Of the index or the single manifest.")
    media_type: str | None = None
    platforms: list[ImagePlatform] = Field(default_factory=list)
    error: PreflightError | None = None
    message: str = Field(default="", description="The registry's own words when it refused.")

    @property
    def pinned(self) -> str | None:
        """`name@sha256:...` (the reference with its tag replaced by the digest)."""
        if self.digest is None:
            return None
        name = self.image.split("@", 1)[0]
        slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > slash:
            name = name[:colon]
        return f"{name}@{self.digest}"


class ResolveImagesInput(WireModel):
    """Resolve every image of a task, with the task's pull secrets (in K8S_NAMESPACE)."""

    task_id: str
    images: list[str] = Field(min_length=1)
    image_pull_secrets: list[SecretName] = Field(default_factory=list)


class ResolveImagesResult(WireModel):
    images: list[ResolvedImage]
    warnings: list[str] = Field(
        default_factory=list, description="E.g. a pull secret that could not be read."
    )
