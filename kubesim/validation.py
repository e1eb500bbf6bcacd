"""Admission: the defaults and validation rules of the real apiserver that clients notice."""

from __future__ import annotations

import re
from typing import Any

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


class Invalid(Exception):
    """422 Invalid: a list of (field, cause reason, message) like field.ErrorList."""

    def __init__(self, causes: list[tuple[str, str, str]]) -> None:
        super().__init__("; ".join(m for _, _, m in causes))
        self.causes = causes


# The API's default pod spec.terminationGracePeriodSeconds (core/v1 defaults).
DEFAULT_TERMINATION_GRACE_SECONDS = 30


def _go_quoted(v: Any) -> str:
    return '"' + str(v).replace('"', '\\"') + '"'


def _required(field: str, detail: str = "") -> tuple[str, str, str]:
    return (
        field,
        "FieldValueRequired",
        f"{field}: Required value" + (f": {detail}" if detail else ""),
    )


def _invalid(field: str, value: Any, detail: str) -> tuple[str, str, str]:
    return (field, "FieldValueInvalid", f"{field}: Invalid value: {_go_quoted(value)}: {detail}")


def check_name(name: Any, errs: list[tuple[str, str, str]], max_len: int = 253) -> None:
    if not name:
        errs.append(_required("metadata.name", "name or generateName is required"))
        return
    if not isinstance(name, str) or not _DNS1123_SUBDOMAIN.match(name):
        errs.append(_invalid("metadata.name", name, _SUBDOMAIN_MSG))
    elif len(name) > max_len:
        errs.append(_invalid("metadata.name", name, f"must be no more than {max_len} characters"))


def default_pull_policy(image: str) -> str:
    tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
    return "Always" if tagless or image.endswith(":latest") else "IfNotPresent"


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_SECONDS)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    for c in (*spec.get("initContainers", []), *spec.get("containers", [])):
        if isinstance(c, dict):
            c.setdefault("imagePullPolicy", default_pull_policy(str(c.get("image", ""))))
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})


def add_default_tolerations(spec: dict[str, Any], seconds: int = 300) -> None:
    """DefaultTolerationSeconds admission: tolerate not-ready/unreachable for 300 s."""
    tols = spec.setdefault("tolerations", [])
    if not isinstance(tols, list):
        return  # validation reports it
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(
            t.get("key") == key or (t.get("operator") == "Exists" and not t.get("key"))
            for t in tols
            if isinstance(t, dict)
        ):
            tols.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": seconds,
                }
            )


def validate_pod_spec(
    spec: Any, path: str, errs: list[tuple[str, str, str]], allowed_restart: tuple[str, ...]
) -> None:
    if not isinstance(spec, dict):
        errs.append(_required(path))
        return
    containers = spec.get("containers")
    if not containers or not isinstance(containers, list):
        errs.append(_required(f"{path}.containers"))
        containers = []
    names: set[str] = set()
    for kind, items in (
        ("initContainers", spec.get("initContainers") or []),
        ("containers", containers),
    ):
        for i, c in enumerate(items):
            cp = f"{path}.{kind}[{i}]"
            if not isinstance(c, dict):
                errs.append(_required(cp))
                continue
            name = c.get("name")
            if not name:
                errs.append(_required(f"{cp}.name"))
            elif not isinstance(name, str) or len(name) > 63 or not _DNS1123_LABEL.match(name):
                errs.append(_invalid(f"{cp}.name", name, _LABEL_MSG))
            elif name in names:
                errs.append(
                    (f"{cp}.name", "FieldValueDuplicate", f'{cp}.name: Duplicate value: "{name}"')
                )
            else:
                names.add(name)
            if not c.get("image"):
                errs.append(_required(f"{cp}.image"))
            policy = c.get("imagePullPolicy")
            if policy is not None and policy not in ("Always", "IfNotPresent", "Never"):
                errs.append(
                    (
                        f"{cp}.imagePullPolicy",
                        "FieldValueNotSupported",
                        f'{cp}.imagePullPolicy: Unsupported value: "{policy}": supported values: '
                        '"Always", "IfNotPresent", "Never"',
                    )
                )
    restart_policy = spec.get("restartPolicy")
    if restart_policy not in allowed_restart:
        supported = ", ".join(f'"{r}"' for r in allowed_restart)
        if restart_policy is None:
            errs.append(_required(f"{path}.restartPolicy", f"valid values: {supported}"))
        else:
            errs.append(
                (
                    f"{path}.restartPolicy",
                    "FieldValueNotSupported",
                    f'{path}.restartPolicy: Unsupported value: "{restart_policy}": '
                    f"supported values: {supported}",
                )
            )
    for i, t in enumerate(spec.get("tolerations") or []):
        op = t.get("operator", "Equal") if isinstance(t, dict) else None
        if op not in ("Equal", "Exists"):
            errs.append(
                (
                    f"{path}.tolerations[{i}].operator",
                    "FieldValueNotSupported",
                    f'{path}.tolerations[{i}].operator: Unsupported value: "{op}": '
                    'supported values: "Equal", "Exists"',
                )
            )
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not isinstance(ads, int) or ads <= 0):
        errs.append(
            _invalid(
                f"{path}.activeDeadlineSeconds", ads, "must be between 1 and 2147483647, inclusive"
            )
        )


def admit_pod(obj: dict[str, Any]) -> None:
    errs: list[tuple[str, str, str]] = []
    check_name(obj.get("metadata", {}).get("name"), errs)
    spec = obj.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("restartPolicy", "Always")
    validate_pod_spec(spec, "spec", errs, ("Always", "OnFailure", "Never"))
    if errs:
        raise Invalid(errs)
    assert isinstance(spec, dict)
    default_pod_spec(spec)
    add_default_tolerations(spec)


def admit_job(obj: dict[str, Any]) -> None:
    """batch/v1 defaults (backoffLimit 6, completions 1, parallelism 1) and validation."""
    errs: list[tuple[str, str, str]] = []
    md = obj.setdefault("metadata", {})
    check_name(md.get("name"), errs, max_len=63)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        errs.append(_required("spec.template"))
        raise Invalid(errs)
    for field in (
        "backoffLimit",
        "completions",
        "parallelism",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ):
        v = spec.get(field)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            errs.append(_invalid(f"spec.{field}", v, "must be greater than or equal to 0"))
    if spec.get("activeDeadlineSeconds") == 0:
        errs.append(_invalid("spec.activeDeadlineSeconds", 0, "must be greater than 0"))
    template = spec.get("template")
    if not isinstance(template, dict):
        errs.append(_required("spec.template"))
    else:
        validate_pod_spec(template.get("spec"), "spec.template.spec", errs, ("OnFailure", "Never"))
    if errs:
        raise Invalid(errs)
    assert isinstance(template, dict)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    default_pod_spec(template["spec"])


def admit_namespace(obj: dict[str, Any]) -> None:
    errs: list[tuple[str, str, str]] = []
    name = obj.get("metadata", {}).get("name")
    check_name(name, errs, max_len=63)
    if name and isinstance(name, str) and not _DNS1123_LABEL.match(name):
        errs.append(_invalid("metadata.name", name, _LABEL_MSG))
    if errs:
        raise Invalid(errs)
    obj.setdefault("spec", {"finalizers": ["kubernetes"]})
    obj["status"] = {"phase": "Active"}
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name


def admit_generic(obj: dict[str, Any]) -> None:
    errs: list[tuple[str, str, str]] = []
    check_name(obj.get("metadata", {}).get("name"), errs)
    if errs:
        raise Invalid(errs)
