"""Validators for what a task names: image references (the distribution/reference grammar)
and Kubernetes label keys, values and DNS-1123 names, and the same rules as OpenAPI schemas."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

# The distribution/reference grammar (github.com/distribution/reference, regexp.go).
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
# The tag grammar in ASCII (Python's \w would admit any Unicode letter).
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
# Only the digest algorithms runtimes verify (opencontainers/go-digest), each at its exact
# length in lowercase hex: an unbounded digest once made a 1 MB Job manifest per node.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST = "|".join(f"{alg}:[0-9a-f]{{{n}}}" for alg, n in DIGEST_HEX_LENGTHS.items())
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
# Always used with fullmatch: `$` would also accept a trailing newline.
IMAGE_REFERENCE_RE = re.compile(
    rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII
)
NAME_TOTAL_LENGTH_MAX = 255
# name (255) + ":" + tag (128) + "@sha512:" + 128 hex: nothing valid is longer.
IMAGE_REFERENCE_MAX = NAME_TOTAL_LENGTH_MAX + 1 + 128 + 1 + len("sha512:") + 128

_LABEL_NAME_RE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS1123_SUBDOMAIN_RE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)


def validate_image_reference(ref: str) -> str:
    """Reject what a container runtime would reject, with the rule in the message."""
    ref = ref.strip()
    if not ref:
        raise ValueError("image reference must not be empty")
    if len(ref) > IMAGE_REFERENCE_MAX:
        raise ValueError(
            f"image reference of {len(ref)} characters: at most {IMAGE_REFERENCE_MAX} allowed"
        )
    m = IMAGE_REFERENCE_RE.fullmatch(ref)
    if m is None:
        raise ValueError(
            f"{ref!r} is not a valid image reference "
            "(expected [registry[:port]/]name[:tag][@digest], lowercase name components, "
            "an ASCII tag, a sha256/sha384/sha512 digest of 64/96/128 lowercase hex)"
        )
    if len(m.group("name")) > NAME_TOTAL_LENGTH_MAX:
        raise ValueError(
            f"{ref!r}: repository name must be at most {NAME_TOTAL_LENGTH_MAX} characters"
        )
    return ref


def validate_label_key(key: str) -> str:
    prefix, sep, name = key.rpartition("/")
    if sep:
        if not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
            raise ValueError(
                f"label key {key!r}: prefix must be a DNS-1123 subdomain of at most 253 characters"
            )
    if not name or len(name) > 63 or not _LABEL_NAME_RE.fullmatch(name):
        raise ValueError(
            f"label key {key!r}: name must be 1-63 characters, alphanumeric at both ends, "
            "with '-', '_' or '.' between"
        )
    return key


def validate_label_value(value: str) -> str:
    if value == "":
        return value
    if len(value) > 63 or not _LABEL_NAME_RE.fullmatch(value):
        raise ValueError(
            f"label value {value!r}: must be at most 63 characters, alphanumeric at both ends, "
            "with '-', '_' or '.' between"
        )
    return value


def validate_dns1123_subdomain(name: str) -> str:
    if not name or len(name) > 253 or not _DNS1123_SUBDOMAIN_RE.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a valid DNS-1123 subdomain "
            "(lowercase alphanumerics, '-' and '.', at most 253 characters)"
        )
    return name


# The same rules in the OpenAPI schema (ECMA-262 regex: no named groups), so clients and
# schema-driven tools see them; validation itself stays in the validators above.
_IMAGE_PATTERN = r"^\s*" + re.sub(r"\(\?P<\w+>", "(", IMAGE_REFERENCE_RE.pattern) + r"\s*$"
_DNS1123_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 253,
    "pattern": f"^{_DNS1123_SUBDOMAIN_RE.pattern}$",
}
ImageRef = Annotated[
    str,
    AfterValidator(validate_image_reference),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": IMAGE_REFERENCE_MAX,
            "pattern": _IMAGE_PATTERN,
        }
    ),
]
NodeName = Annotated[
    str, AfterValidator(validate_dns1123_subdomain), WithJsonSchema(_DNS1123_SCHEMA)
]
SecretName = Annotated[
    str, AfterValidator(validate_dns1123_subdomain), WithJsonSchema(_DNS1123_SCHEMA)
]
