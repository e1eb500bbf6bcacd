"""Decode the Kubernetes protobuf request bodies that kubectl's typed clients send.

kubectl >= 1.33 posts built-in objects (`kubectl create job`, `kubectl run`, `kubectl create
namespace`) as `application/vnd.kubernetes.protobuf`, with no JSON fallback. This is a small
schema-driven decoder for the fields those commands set; unknown fields are skipped, as proto2
allows. Field numbers follow k8s.io/api's generated.proto files.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"

# message -> field number -> (json name, type, repeated). Types: string, int, bool, bytes,
# map (string->string), qmap (string->Quantity), quantity, or another message name.
F = tuple[str, str, bool]
SCHEMA: dict[str, dict[int, F]] = {
    "Unknown": {
        1: ("typeMeta", "TypeMeta", False),
        2: ("raw", "bytes", False),
        3: ("contentEncoding", "string", False),
        4: ("contentType", "string", False),
    },
    "TypeMeta": {1: ("apiVersion", "string", False), 2: ("kind", "string", False)},
    "ObjectMeta": {
        1: ("name", "string", False),
        2: ("generateName", "string", False),
        3: ("namespace", "string", False),
        5: ("uid", "string", False),
        6: ("resourceVersion", "string", False),
        7: ("generation", "int", False),
        11: ("labels", "map", False),
        12: ("annotations", "map", False),
        13: ("ownerReferences", "OwnerReference", True),
        14: ("finalizers", "string", True),
    },
    "OwnerReference": {
        1: ("kind", "string", False),
        3: ("name", "string", False),
        4: ("uid", "string", False),
        5: ("apiVersion", "string", False),
        6: ("controller", "bool", False),
        7: ("blockOwnerDeletion", "bool", False),
    },
    "LabelSelector": {1: ("matchLabels", "map", False)},
    "Job": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "JobSpec", False)},
    "JobSpec": {
        1: ("parallelism", "int", False),
        2: ("completions", "int", False),
        3: ("activeDeadlineSeconds", "int", False),
        4: ("selector", "LabelSelector", False),
        5: ("manualSelector", "bool", False),
        6: ("template", "PodTemplateSpec", False),
        7: ("backoffLimit", "int", False),
        8: ("ttlSecondsAfterFinished", "int", False),
        9: ("completionMode", "string", False),
        10: ("suspend", "bool", False),
    },
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False)},
    "Pod": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False)},
    "Namespace": {1: ("metadata", "ObjectMeta", False)},
    "Secret": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", "bmap", False),
        3: ("type", "string", False),
        4: ("stringData", "map", False),
        5: ("immutable", "bool", False),
    },
    "PodSpec": {
        1: ("volumes", "Volume", True),
        2: ("containers", "Container", True),
        3: ("restartPolicy", "string", False),
        4: ("terminationGracePeriodSeconds", "int", False),
        5: ("activeDeadlineSeconds", "int", False),
        6: ("dnsPolicy", "string", False),
        7: ("nodeSelector", "map", False),
        8: ("serviceAccountName", "string", False),
        9: ("serviceAccount", "string", False),
        10: ("nodeName", "string", False),
        14: ("securityContext", "PodSecurityContext", False),
        15: ("imagePullSecrets", "LocalObjectReference", True),
        16: ("hostname", "string", False),
        19: ("schedulerName", "string", False),
        20: ("initContainers", "Container", True),
        21: ("automountServiceAccountToken", "bool", False),
        22: ("tolerations", "Toleration", True),
        24: ("priorityClassName", "string", False),
    },
    "PodSecurityContext": {
        1: ("seLinuxOptions", "Empty", False),
        2: ("runAsUser", "int", False),
        3: ("runAsNonRoot", "bool", False),
        5: ("fsGroup", "int", False),
        6: ("runAsGroup", "int", False),
        11: ("seccompProfile", "SeccompProfile", False),
    },
    "Empty": {},
    "Container": {
        1: ("name", "string", False),
        2: ("image", "string", False),
        3: ("command", "string", True),
        4: ("args", "string", True),
        5: ("workingDir", "string", False),
        7: ("env", "EnvVar", True),
        8: ("resources", "ResourceRequirements", False),
        9: ("volumeMounts", "VolumeMount", True),
        13: ("terminationMessagePath", "string", False),
        14: ("imagePullPolicy", "string", False),
        15: ("securityContext", "SecurityContext", False),
        16: ("stdin", "bool", False),
        17: ("stdinOnce", "bool", False),
        18: ("tty", "bool", False),
        20: ("terminationMessagePolicy", "string", False),
    },
    "EnvVar": {1: ("name", "string", False), 2: ("value", "string", False)},
    "ResourceRequirements": {1: ("limits", "qmap", False), 2: ("requests", "qmap", False)},
    "VolumeMount": {
        1: ("name", "string", False),
        2: ("readOnly", "bool", False),
        3: ("mountPath", "string", False),
        4: ("subPath", "string", False),
    },
    "Volume": {1: ("name", "string", False), 2: ("*", "VolumeSource", False)},
    "VolumeSource": {2: ("emptyDir", "EmptyDir", False)},
    "EmptyDir": {1: ("medium", "string", False), 2: ("sizeLimit", "quantity", False)},
    "SecurityContext": {
        1: ("capabilities", "Capabilities", False),
        2: ("privileged", "bool", False),
        4: ("runAsUser", "int", False),
        5: ("runAsNonRoot", "bool", False),
        6: ("readOnlyRootFilesystem", "bool", False),
        7: ("allowPrivilegeEscalation", "bool", False),
        8: ("runAsGroup", "int", False),
        11: ("seccompProfile", "SeccompProfile", False),
    },
    "Capabilities": {1: ("add", "string", True), 2: ("drop", "string", True)},
    "SeccompProfile": {1: ("type", "string", False), 2: ("localhostProfile", "string", False)},
    "LocalObjectReference": {1: ("name", "string", False)},
    "Toleration": {
        1: ("key", "string", False),
        2: ("operator", "string", False),
        3: ("value", "string", False),
        4: ("effect", "string", False),
        5: ("tolerationSeconds", "int", False),
    },
    "Quantity": {1: ("string", "string", False)},
    "MapEntry": {1: ("key", "string", False), 2: ("value", "string", False)},
    "QMapEntry": {1: ("key", "string", False), 2: ("value", "Quantity", False)},
    "BMapEntry": {1: ("key", "string", False), 2: ("value", "bytes", False)},
}


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    out: list[tuple[int, int, Any]] = []
    i = 0
    v: Any
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i : i + n], i + n
        elif wt == 1:
            v, i = buf[i : i + 8], i + 8
        elif wt == 5:
            v, i = buf[i : i + 4], i + 4
        else:
            raise ProtobufError(f"unsupported wire type {wt}")
        out.append((num, wt, v))
    return out


def decode_message(buf: bytes, msg: str) -> dict[str, Any]:
    schema = SCHEMA[msg]
    out: dict[str, Any] = {}
    for num, _wt, v in _fields(buf):
        spec = schema.get(num)
        if spec is None:
            continue
        name, typ, repeated = spec
        value: Any
        if typ == "string":
            value = bytes(v).decode()
            if not value and not repeated:
                continue  # Go's zero value: the JSON form would omit it
        elif typ == "bytes":
            value = bytes(v)
        elif typ == "int":
            value = v - (1 << 64) if v >= 1 << 63 else v
        elif typ == "bool":
            value = bool(v)
        elif typ in ("map", "qmap", "bmap"):
            entry = decode_message(
                v, {"map": "MapEntry", "qmap": "QMapEntry", "bmap": "BMapEntry"}[typ]
            )
            val = entry.get("value", "")
            if typ == "qmap":
                val = val.get("string", "0") if isinstance(val, dict) else "0"
            elif typ == "bmap":
                val = base64.b64encode(val or b"").decode()
            out.setdefault(name, {})[entry.get("key", "")] = val
            continue
        elif typ == "quantity":
            value = decode_message(v, "Quantity").get("string", "0")
        else:
            value = decode_message(v, typ)
            if name == "*":
                out.update(value)
                continue
        if repeated:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


def decode_object(body: bytes) -> dict[str, Any]:
    """A `k8s\\0`-prefixed runtime.Unknown envelope -> the JSON-shaped object."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    unknown = decode_message(body[len(MAGIC) :], "Unknown")
    tm = unknown.get("typeMeta", {})
    kind = tm.get("kind", "")
    if kind not in SCHEMA:
        raise ProtobufError(f"kubesim cannot decode protobuf for kind {kind!r}; send JSON")
    obj = decode_message(unknown.get("raw", b""), kind)
    obj["apiVersion"] = tm.get("apiVersion", "")
    obj["kind"] = kind
    return obj
