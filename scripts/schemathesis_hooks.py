"""Schemathesis hooks for scripts/schemathesis.sh: the few rules of hookline's API that a JSON
Schema cannot state, applied to schema-valid (positive) requests only, so that a valid request
the server refuses is a real finding. Invalid (negative) requests are left as generated.

- An event's `partner_id` must name an existing partner: the fuzzer cannot know one, so it gets
  the partner the driver made (HOOKLINE_FUZZ_PARTNER_ID).
- `routing_key_header` must differ from `routing_id_header` (default `Linq-Chat-Id`), also from
  the one already stored on a PUT: when a request sets either, it sets both, distinctly.

One rule goes the other way, for invalid requests: the `target_url` pattern is documented as a
subset of the URLs accepted (any https URL a WHATWG parser reads), so a URL made invalid only
by breaking the pattern (`https://R.dev`, `https://r.dev/?a=b`) may be one the server rightly
accepts. A pattern-breaking `target_url` in an invalid request gets an `x` in front, which keeps
it outside the pattern and makes its scheme something other than `https`: refused for certain.
"""

import re

import os

import schemathesis

PARTNER_ID = os.environ["HOOKLINE_FUZZ_PARTNER_ID"]
DEFAULT_ID_HEADER = "Linq-Chat-Id"
FILLER_ID_HEADER = "X-Fuzz-Chat-Id"


def _is_positive(case):
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode.is_positive


def _header(value):
    """A routing header as the server reads it: blank or null is unset."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def _distinct_routing_headers(body, is_update):
    present = "routing_id_header" in body or "routing_key_header" in body
    if not present:
        return
    if is_update:
        # A PUT keeps what it does not send; send both so the stored ones cannot collide.
        body.setdefault("routing_id_header", None)
        body.setdefault("routing_key_header", None)
    id_header = _header(body.get("routing_id_header")) or DEFAULT_ID_HEADER
    key_header = _header(body.get("routing_key_header"))
    if key_header is not None and key_header.lower() == id_header.lower():
        if _header(body.get("routing_id_header")) is None or id_header.lower() == FILLER_ID_HEADER.lower():
            body["routing_key_header"] = None
        else:
            body["routing_id_header"] = FILLER_ID_HEADER


def _target_url_pattern(case):
    """The served document's TargetUrl pattern (crates/hookline/src/api/schema.rs)."""
    return re.compile(case.operation.schema.raw_schema["components"]["schemas"]["TargetUrl"]["pattern"])


def _refusable_target_url(case):
    url = case.body.get("target_url")
    if isinstance(url, str) and not _target_url_pattern(case).search(url):
        case.body["target_url"] = "x" + url


@schemathesis.hook
def map_case(context, case):
    if not isinstance(case.body, dict):
        return case
    if not _is_positive(case):
        if case.operation.path.startswith("/v3/webhook-subscriptions"):
            _refusable_target_url(case)
        return case
    operation = case.operation
    path, method = operation.path, operation.method.upper()
    if path == "/admin/v1/events" and "partner_id" in case.body:
        case.body["partner_id"] = PARTNER_ID
    elif path == "/admin/v1/events/batch":
        for event in case.body.get("events") or []:
            if isinstance(event, dict) and "partner_id" in event:
                event["partner_id"] = PARTNER_ID
    elif path.startswith("/v3/webhook-subscriptions") and method in ("POST", "PUT"):
        _distinct_routing_headers(case.body, method == "PUT")
    return case
