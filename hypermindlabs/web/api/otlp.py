"""``POST /v1/traces``: OTLP/HTTP trace export, protobuf or JSON, optionally gzip (docs/otlp.md).

Answers as the OTLP/HTTP specification says: 200 with an ``ExportTraceServiceResponse`` in the
request's encoding (``partial_success`` with ``rejected_spans`` and a message naming each rejected
span's field when some spans were invalid); 400 with a ``google.rpc.Status`` when the body cannot be
decoded (nothing stored); 429 or 503 with ``Retry-After`` when the store cannot take the batch now,
which exporters retry.
"""

from __future__ import annotations

import logging
import threading

import orjson
from flask import Blueprint, Response, current_app, g, request
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from sqlalchemy.exc import OperationalError

from hypermindlabs.ingest.otlp import OtlpBodyError, attribute_keys, decode_request, decompress, ingest_spans
from hypermindlabs.ingest.otlp_decode import is_protobuf
from hypermindlabs.web.responses import settings, store

bp = Blueprint("api_otlp", __name__)
log = logging.getLogger(__name__)
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"


def _is_json(content_type: str) -> bool:
    ctype = content_type.split(";", 1)[0].strip().lower()
    return ctype == _JSON or ctype.endswith("+json")


def _status(http: int, code: int, message: str, as_json: bool, *, field: str | None = None) -> Response:
    if as_json:
        # google.rpc.Status in JSON, plus the project's {"error", "field"} so every 4xx reads alike.
        body: dict[str, object] = {"code": code, "message": message, "error": message}
        if field is not None:
            body["field"] = field
        resp = Response(orjson.dumps(body), status=http, mimetype=_JSON)
    else:
        resp = Response(status_pb2.Status(code=code, message=message).SerializeToString(), status=http,
                        mimetype=_PROTOBUF)  # fmt: skip
    return resp


def otlp_status(http: int, message: str, content_type: str) -> Response:
    """An OTLP error answer (RESOURCE_EXHAUSTED for 429, else UNAVAILABLE) in the request's encoding."""
    code = code_pb2.RESOURCE_EXHAUSTED if http == 429 else code_pb2.UNAVAILABLE
    return _status(http, code, message, _is_json(content_type))


def _retry(http: int, message: str, as_json: bool) -> Response:
    resp = _status(http, code_pb2.UNAVAILABLE if http == 503 else code_pb2.RESOURCE_EXHAUSTED, message, as_json)
    resp.headers["Retry-After"] = str(settings().otlp_retry_after_s)
    return resp


def _gate() -> threading.BoundedSemaphore:
    ext = current_app.extensions
    if "hypermind.otlp_gate" not in ext:
        ext["hypermind.otlp_gate"] = threading.BoundedSemaphore(max(1, settings().otlp_max_concurrent))
    return ext["hypermind.otlp_gate"]


@bp.post("/v1/traces")
def post_traces() -> Response:
    ctype = request.content_type or ""
    as_json = _is_json(ctype)
    cfg = settings()
    if not as_json and not is_protobuf(ctype):
        # OTLP/HTTP: an unsupported Content-Type is 415; the sender's encoding is unknown, so JSON.
        return _status(415, code_pb2.INVALID_ARGUMENT, f"unsupported Content-Type {ctype[:64]!r}: send "
                       "application/x-protobuf or application/json", True, field="Content-Type")  # fmt: skip
    try:
        encoding = request.headers.get("Content-Encoding", "")
        body = decompress(request.get_data(cache=False), encoding, cfg.max_body_bytes)
        spans = decode_request(body, ctype)
    except OtlpBodyError as exc:
        return _status(400, code_pb2.INVALID_ARGUMENT, str(exc), as_json, field="body")
    if len(spans) > cfg.max_batch_events:
        return _status(
            400, code_pb2.INVALID_ARGUMENT, f"at most {cfg.max_batch_events} spans per export; lower the exporter's "
            "max export batch size", as_json, field="body",
        )  # fmt: skip
    gate = _gate()
    if not gate.acquire(blocking=False):
        return _retry(429, "too many exports in progress; retry after the indicated delay", as_json)
    try:
        result = ingest_spans(
            store(), spans, attribute_keys(cfg), now_ns=g.now_ns, root_timeout_s=cfg.otlp_root_timeout_s
        )
    except OperationalError as exc:
        # Locked, unreachable or full database: transient from the exporter's point of view.
        log.warning("otlp: store cannot take the export now: %s", str(exc).splitlines()[0][:200])
        return _retry(503, "the event store cannot take this export now; retry after the indicated delay", as_json)
    finally:
        gate.release()
    resp = ExportTraceServiceResponse()
    if result.rejected_spans:
        resp.partial_success.rejected_spans = result.rejected_spans
        resp.partial_success.error_message = result.message()
    if as_json:
        return Response(json_format.MessageToJson(resp, indent=None), status=200, mimetype=_JSON)
    return Response(resp.SerializeToString(), status=200, mimetype=_PROTOBUF)
