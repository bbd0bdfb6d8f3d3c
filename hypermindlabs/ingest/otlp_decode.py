"""OTLP/HTTP trace bodies → plain span records, decoded with the official protobuf definitions.

Both encodings of the OTLP/HTTP specification are read with the ``opentelemetry-proto`` message
types: binary protobuf (``application/x-protobuf``) by ``ParseFromString``, OTLP/JSON
(``application/json``) by protobuf's own ``json_format`` after the one deviation OTLP/JSON makes
from the canonical protobuf JSON mapping (trace and span ids are hex, not base64). A body that is
not a valid ``ExportTraceServiceRequest`` raises :class:`OtlpBodyError`, which the endpoint
answers with 400; nothing of it is stored.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["OtlpBodyError", "SpanRecord", "SpanEvent", "decode_request", "decompress", "any_value"]

# Span.flags bits 8 and 9 (opentelemetry-proto SpanFlags): the parent's is-remote bit is known / set.
_FLAG_HAS_IS_REMOTE = 0x100
_FLAG_IS_REMOTE = 0x200
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


class OtlpBodyError(ValueError):
    """The body as a whole cannot be decoded: answered 400 with this message, nothing stored."""


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    time_unix_nano: int
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One decoded span with its resource and scope; ids as lower-case hex ('' when absent)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    parent_is_remote: bool
    name: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: int  # 0 unset, 1 ok, 2 error (opentelemetry-proto Status.StatusCode)
    status_message: str
    attributes: dict[str, Any]
    events: tuple[SpanEvent, ...]
    resource: dict[str, Any]
    scope_name: str


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate or identity), refusing output beyond ``limit`` bytes."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise OtlpBodyError(f"unsupported Content-Encoding {encoding[:32]!r}: send gzip or an uncompressed body")
    # A small compressed body can expand without bound: decompress incrementally up to the limit.
    wbits = 16 + zlib.MAX_WBITS if enc != "deflate" else zlib.MAX_WBITS
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpBodyError(f"body is not valid {enc}: {exc}") from exc
    if len(out) > limit or d.unconsumed_tail:
        raise OtlpBodyError(f"decompressed body is larger than {limit} bytes; send smaller batches")
    if not d.eof:
        raise OtlpBodyError(f"body is not valid {enc}: truncated stream")
    return out


def _parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpBodyError(f"malformed protobuf ExportTraceServiceRequest: {exc}") from exc
    return req


def _hex_to_b64(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        # Not hex: a one-byte id that the mapper rejects for this span alone, naming the field.
        raw = b"\xff"
    return base64.b64encode(raw).decode()


def _fix_ids(node: Any) -> None:
    # OTLP/JSON writes trace/span ids as hex strings where protobuf JSON expects base64 bytes.
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _ID_KEYS:
                node[k] = _hex_to_b64(v)
            elif isinstance(v, dict | list):
                _fix_ids(v)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, dict | list):
                _fix_ids(v)


def _parse_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpBodyError(f"malformed JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise OtlpBodyError("expected an OTLP/JSON ExportTraceServiceRequest object {\"resourceSpans\": [...]}")
    for key in ("resourceSpans", "resource_spans"):
        for rs in obj.get(key) or []:
            if isinstance(rs, dict):
                _fix_ids(rs)
    req = ExportTraceServiceRequest()
    try:
        # OTLP/HTTP: receivers ignore fields they do not know (newer senders).
        json_format.ParseDict(obj, req, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise OtlpBodyError(f"not an OTLP/JSON ExportTraceServiceRequest: {exc}") from exc
    return req


def any_value(v: Any) -> Any:
    """An ``AnyValue`` as plain JSON data (bytes as base64)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None  # pragma: no cover - a value kind newer than this code


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _hex(raw: bytes) -> str:
    return binascii.hexlify(raw).decode() if raw else ""


_PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf", "application/octet-stream")


def is_protobuf(content_type: str) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() in _PROTOBUF_TYPES


def decode_request(body: bytes, content_type: str) -> list[SpanRecord]:
    """Decode an OTLP/HTTP trace export body (already decompressed) into span records."""
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype in _PROTOBUF_TYPES:
        req = _parse_protobuf(body)
    elif ctype == "application/json" or ctype.endswith("+json"):
        req = _parse_json(body)
    else:
        raise OtlpBodyError(
            f"unsupported Content-Type {content_type[:64]!r}: send application/x-protobuf or application/json"
        )
    out: list[SpanRecord] = []
    for rs in req.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = ss.scope.name
            for sp in ss.spans:
                flags = sp.flags
                out.append(
                    SpanRecord(
                        trace_id=_hex(sp.trace_id),
                        span_id=_hex(sp.span_id),
                        parent_span_id=_hex(sp.parent_span_id),
                        parent_is_remote=bool(flags & _FLAG_HAS_IS_REMOTE and flags & _FLAG_IS_REMOTE),
                        name=sp.name,
                        start_time_unix_nano=sp.start_time_unix_nano,
                        end_time_unix_nano=sp.end_time_unix_nano,
                        status_code=int(sp.status.code),
                        status_message=sp.status.message,
                        attributes=_attrs(sp.attributes),
                        events=tuple(SpanEvent(e.name, e.time_unix_nano, _attrs(e.attributes)) for e in sp.events),
                        resource=resource,
                        scope_name=scope,
                    )
                )
    return out


def gzip_bytes(body: bytes) -> bytes:
    """gzip ``body`` (for tests and benchmarks that send compressed exports)."""
    return gzip.compress(body)
