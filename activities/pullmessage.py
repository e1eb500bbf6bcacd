"""The kubelet's pull messages: which image they name, and the code in their error part (pure).

The kubelet words them in pkg/kubelet/images/image_manager.go (EnsureImageExists, and
evalCRIPullErr for the waiting message):

- Event `Failed`:            `Failed to pull image "<image>": <error>`
- waiting `ErrImagePull`:    `<error>` (the runtime's error as is)
- waiting `ImagePullBackOff`: `Back-off pulling image "<image>"`, followed since Kubernetes
  1.30 by `: <ErrImagePull or other reason>: <error>` (the previous pull's error)
- registry unavailable:      `image pull failed for <image> because the registry is unavailable...`

The image is matched on its parsed reference (common/imageref.py), never as a substring. The
code (401, 404, 429, ...) is read from the error part only, after every URL, every quoted string
and every mention of the image's repository are blanked out: a runtime error quotes the
reference several times and a registry URL ends in the tag, so an image tagged `:401` or
`:404` must not read as Unauthorized or ImageNotFound. An index without the node's platform
(containerd `core/images/image.go`, `Manifest`: "no match for platform in manifest: not found")
is NoMatchingPlatform, not ImageNotFound: the image exists, only not for this node's os/arch.
"""

from __future__ import annotations

import re

from common.imageref import parse, same_image
from common.models import FailureReason

_PREFIXES = (
    re.compile(r'^Failed to pull image "(?P<image>[^"]*)"(?::\s*(?P<error>.*))?$', re.S),
    re.compile(r'^Back-off pulling image "(?P<image>[^"]*)"(?::\s*(?P<error>.*))?$', re.S),
    re.compile(
        r"^image pull failed for (?P<image>\S+) because (?P<error>.*)$",
        re.S,
    ),
)

# Order matters: a 429 body can mention authorization; an unauthorized pull can say "not found".
_CODES: tuple[tuple[re.Pattern[str], FailureReason], ...] = (
    # containerd's images.Manifest: the index has no entry for the node's os/arch, wrapped in
    # NotFound (`no match for platform in manifest: not found`). First: the registry served the
    # index, so in the kubelet's aggregate over credentials ([401, platform]) it is the cause.
    (re.compile(r"no match for platform in manifest", re.I), FailureReason.NO_MATCHING_PLATFORM),
    (
        re.compile(r"\b429\b|too ?many ?requests|code = ResourceExhausted", re.I),
        FailureReason.RATE_LIMITED,
    ),
    (
        re.compile(
            r"\b401\b|\b403\b|unauthori[sz]ed|code = (?:Unauthenticated|PermissionDenied)"
            r"|authentication required|pull access denied|authorization failed|no basic auth",
            re.I,
        ),
        FailureReason.UNAUTHORIZED,
    ),
    (
        re.compile(r"code = NotFound|\b404\b|manifest unknown|: not found\b|name unknown", re.I),
        FailureReason.IMAGE_NOT_FOUND,
    ),
)

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"']+", re.I)
_QUOTED = re.compile(r'"[^"]*"')
# A token that may be an image reference: what the reference grammar allows, then any
# trailing punctuation (`docker.io/library/nginx:401: not found`) is left in place.
_REF_TOKEN = re.compile(r"[A-Za-z0-9\[][A-Za-z0-9._\-/:@\[\]]*[A-Za-z0-9\]]")
_BLANK = "<image>"


def split_message(message: str) -> tuple[str | None, str]:
    """(the image the kubelet's wording names, the error part); (None, message) otherwise."""
    text = message.strip()
    for pattern in _PREFIXES:
        m = pattern.match(text)
        if m:
            return m.group("image"), m.group("error") or ""
    return None, text


def names_image(message: str, image: str) -> bool:
    """True when the message's kubelet wording names exactly this image (parsed, normalized)."""
    named, _ = split_message(message)
    return named is not None and same_image(named, image)


def _blank_image(text: str, image: str | None) -> str:
    parsed = parse(image) if image else None
    if parsed is None:
        return text

    def repl(m: re.Match[str]) -> str:
        token = m.group(0).rstrip(":")
        ref = parse(token)
        if ref is not None and ref.name == parsed.name:
            return _BLANK + m.group(0)[len(token) :]
        return m.group(0)

    return _REF_TOKEN.sub(repl, text)


def error_text(message: str, image: str | None = None) -> str:
    """The error part of a pull message with URLs, quoted strings and the image blanked."""
    named, error = split_message(message)
    text = _URL.sub(_BLANK, error)
    text = _QUOTED.sub(_BLANK, text)
    return _blank_image(text, image or named)


def reason_from_message(message: str, image: str | None = None) -> FailureReason | None:
    """The failure code carried in a runtime/registry message; None when it names none."""
    text = error_text(message, image)
    for pattern, reason in _CODES:
        if pattern.search(text):
            return reason
    return None
