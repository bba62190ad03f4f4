"""Schemathesis hooks for scripts/schemathesis.sh: the few rules of hookline's API that a JSON
Schema cannot state, applied to schema-valid (positive) requests only, so that a valid request
the server refuses is a real finding. Invalid (negative) requests are left as generated.

- An event's `partner_id`, and a bulk retry's, must name an existing partner: the fuzzer cannot
  know one, so it gets the partner the driver made (HOOKLINE_FUZZ_PARTNER_ID). The operator's
  event and recovery lookups name it in half of the cases (by the generated id's checksum), so
  answers with data are checked as well as the 404s of ids that name no partner.
- `routing_key_header` must differ from `routing_id_header` (default `Linq-Chat-Id`), also from
  the one already stored on a PUT: when a request sets either, it sets both, distinctly.
- A delivery log's `cursor` is opaque: only a `next_cursor` the API returned is accepted, which
  a generator cannot make. A non-empty one is replaced by a well-formed cursor (any position).
- `until` must be later than `since` (the log's query, recover, bulk retry): when it is not,
  the two are swapped, or `until` is dropped when they name the same microsecond.
- A test event's `event_type` must be one the subscription subscribes to, which the fuzzer
  cannot know: it is left out (the default, the first subscribed type).

One rule goes the other way, for invalid requests: the `target_url` pattern is documented as a
subset of the URLs accepted (any https URL a WHATWG parser reads), so a URL made invalid only
by breaking the pattern (`https://R.dev`, `https://r.dev/?a=b`) may be one the server rightly
accepts. A pattern-breaking `target_url` in an invalid request gets an `x` in front, which keeps
it outside the pattern and makes its scheme something other than `https`: refused for certain.

And one check replaces Schemathesis's `positive_data_acceptance` (scripts/schemathesis.sh
excludes it): a retry, recover or test of a subscription the stateful phase deactivated is a
valid request answered 400, as issue 11 binds. That one answer, in the envelope with code 1005
and the server's one "is inactive" message for that very subscription, passes; every other
answer is judged by the built-in check.
"""

import base64
import hashlib
import os
import re
import zlib

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

PARTNER_ID = os.environ["HOOKLINE_FUZZ_PARTNER_ID"]
DEFAULT_ID_HEADER = "Linq-Chat-Id"
FILLER_ID_HEADER = "X-Fuzz-Chat-Id"

SUBSCRIPTION = "/v3/webhook-subscriptions/{subscriptionId}"
LOG_LISTINGS = (SUBSCRIPTION + "/deliveries", "/admin/v1/deliveries", "/api/v1/webhook-logs")
WINDOW_BODIES = (SUBSCRIPTION + "/recover", "/admin/v1/deliveries/retry")
PARTNER_LOOKUPS = ("/admin/v1/events/{eventId}", "/admin/v1/recoveries/{recoveryId}")
INACTIVE_ANSWERS = (
    SUBSCRIPTION + "/deliveries/{eventId}/retry",
    SUBSCRIPTION + "/recover",
    SUBSCRIPTION + "/test",
)


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


def _well_formed_cursor(raw):
    """A cursor as `LogCursor::encode` makes it (hookline-core/src/delivery_log.rs), at a
    position drawn from the generated text, so the keyset query runs from anywhere."""
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()
    created_at = int.from_bytes(digest[:8], "big", signed=True)
    row = int.from_bytes(digest[8:16], "big", signed=True)
    return base64.urlsafe_b64encode(f"d1:{created_at}:{row}".encode()).rstrip(b"=").decode()


_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def _days_from_civil(year, month, day):
    """Days since 1970-01-01 (proleptic Gregorian; year 0 included, which `datetime` lacks)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _micros(text):
    """The instant of a date-time as the server reads it: whole microseconds (a leap second is
    the next second's start), or None for anything else."""
    match = _DATE_TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, sign, offset_hours, offset_minutes = match.groups()[6:]
    offset = 0 if sign is None else (1 if sign == "+" else -1) * (int(offset_hours) * 3600 + int(offset_minutes) * 60)
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    return seconds * 1_000_000 + int((fraction or "0")[:6].ljust(6, "0"))


def _window_in_order(values):
    """`until` later than `since` in a dict of either (the query or a body)."""
    since, until = _micros(values.get("since")), _micros(values.get("until"))
    if since is None or until is None or until > since:
        return
    if until < since:
        values["since"], values["until"] = values["until"], values["since"]
    else:
        del values["until"]


def _map_log_query(case, path):
    query = case.query
    if not isinstance(query, dict):
        return
    cursor = query.get("cursor")
    if isinstance(cursor, str) and cursor:
        query["cursor"] = _well_formed_cursor(cursor)
    if path != "/api/v1/webhook-logs":
        _window_in_order(query)


def _map_partner_lookup(case):
    query = case.query
    if not isinstance(query, dict):
        return
    partner = query.get("partner_id")
    if isinstance(partner, str) and zlib.crc32(partner.encode("utf-8", "surrogatepass")) % 2 == 0:
        query["partner_id"] = PARTNER_ID


def _map_positive_body(case, path, method):
    body = case.body
    if not isinstance(body, dict):
        return
    if path == "/admin/v1/events" and "partner_id" in body:
        body["partner_id"] = PARTNER_ID
    elif path == "/admin/v1/events/batch":
        for event in body.get("events") or []:
            if isinstance(event, dict) and "partner_id" in event:
                event["partner_id"] = PARTNER_ID
    elif path.startswith("/v3/webhook-subscriptions") and method in ("POST", "PUT"):
        _distinct_routing_headers(body, method == "PUT")
    if path == "/admin/v1/deliveries/retry" and "partner_id" in body:
        body["partner_id"] = PARTNER_ID
    if path in WINDOW_BODIES:
        _window_in_order(body)
    if path == SUBSCRIPTION + "/test":
        body.pop("event_type", None)


@schemathesis.hook
def map_case(context, case):
    operation = case.operation
    path, method = operation.path, operation.method.upper()
    if not _is_positive(case):
        if isinstance(case.body, dict) and path.startswith("/v3/webhook-subscriptions"):
            _refusable_target_url(case)
        return case
    if path in LOG_LISTINGS:
        _map_log_query(case, path)
    elif path in PARTNER_LOOKUPS:
        _map_partner_lookup(case)
    _map_positive_body(case, path, method)
    return case


def _is_inactive_answer(case, response):
    """The envelope of `ApiError::SubscriptionInactive` for the request's own subscription."""
    if case.operation.path not in INACTIVE_ANSWERS or response.status_code != 400:
        return False
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    subscription = (case.path_parameters or {}).get("subscriptionId")
    expected = f"webhook subscription '{subscription}' is inactive; "
    return error.get("code") == 1005 and str(error.get("message", "")).startswith(expected)


@schemathesis.check
def positive_data_acceptance_but_inactive(ctx, response, case):
    """`positive_data_acceptance`, except for the 400 of an inactive subscription."""
    if _is_positive(case) and _is_inactive_answer(case, response):
        return None
    return positive_data_acceptance(ctx, response, case)
