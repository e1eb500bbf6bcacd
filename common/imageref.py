"""Image references compared the way the container runtime names them (pure; one normalizer).

Parsing follows github.com/distribution/reference through `docker-image-py`:

- `ParseNormalizedNamed` (normalize.go) fills in `docker.io` and `library/`, and turns the
  legacy `index.docker.io` into `docker.io`: `nginx` -> `docker.io/library/nginx`;
- `ParseDockerRef` (normalize.go) drops the tag when a digest is present, because the digest
  alone names the content: containerd pulls `nginx:1.25@sha256:...` as, and records it under,
  `docker.io/library/nginx@sha256:...`, which is what the kubelet lists in `status.images`;
- `TagNameOnly` (helpers.go) adds `:latest` when there is neither tag nor digest.

Every comparison of two references in IPS (already-warm nodes, Events to containers, the
reference inside a runtime message) goes through `canonical()`, never through substrings.
`common.models.validate_image_reference` stays the API's validator: the client ships that
module alone, with pydantic and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from docker_image.digest import InvalidDigest
from docker_image.reference import InvalidReference, Reference


@dataclass(frozen=True)
class ParsedRef:
    """One reference after normalization: `domain/path`, and its tag and digest if given."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """The repository: `docker.io/library/nginx`."""
        return f"{self.domain}/{self.path}"

    def canonical(self) -> str:
        """`name@digest` when there is a digest, else `name:tag` (`:latest` by default)."""
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or 'latest'}"


@lru_cache(maxsize=4096)
def parse(ref: str) -> ParsedRef | None:
    """The normalized reference, or None when `ref` is not a valid reference."""
    try:
        named = Reference.parse_normalized_named(ref.strip())
    except (InvalidReference, InvalidDigest, ValueError):
        return None
    return ParsedRef(
        domain=named.domain(),
        path=named.path(),
        tag=named["tag"] or None,
        digest=named["digest"] or None,
    )


def normalize(ref: str) -> str:
    """The canonical form (`nginx` -> `docker.io/library/nginx:latest`); an invalid reference
    is returned stripped, so it still compares equal to itself and to nothing else."""
    parsed = parse(ref)
    return parsed.canonical() if parsed else ref.strip()


def same_image(a: str, b: str) -> bool:
    """True when both name the same image: `nginx` and `docker.io/library/nginx:latest` do,
    `nginx:1` and `nginx:1.25` do not."""
    return normalize(a) == normalize(b)


def same_repository(a: str, b: str) -> bool:
    """True when both are in the same repository, whatever their tags or digests."""
    pa, pb = parse(a), parse(b)
    return pa is not None and pb is not None and pa.name == pb.name
