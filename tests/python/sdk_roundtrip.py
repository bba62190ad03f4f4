#!/usr/bin/env python3
"""Drive a running hookline server through the official linq-python SDK.

Env: HOOKLINE_BASE_URL (e.g. http://127.0.0.1:8080), HOOKLINE_API_KEY (partner A),
HOOKLINE_API_KEY_B (partner B). Prints one line per check; exits non-zero on the
first failure.
"""
import base64
import binascii
import json
import os
import sys
import uuid
from datetime import datetime

import linq

BASE_URL = os.environ["HOOKLINE_BASE_URL"].rstrip("/") + "/api/partner"
KEY_A = os.environ["HOOKLINE_API_KEY"]
KEY_B = os.environ["HOOKLINE_API_KEY_B"]

sent = []  # every HTTP request the SDK puts on the wire, retries included


def make_client(api_key):
    hooks = {"request": [lambda req: sent.append(f"{req.method} {req.url.path}")]}
    return linq.LinqAPIV3(
        api_key=api_key,
        base_url=BASE_URL,
        max_retries=2,
        http_client=linq.DefaultHttpxClient(event_hooks=hooks),
    )


def check(label, ok, detail=""):
    if not ok:
        sys.exit(f"FAIL {label}: {detail}")
    print(f"ok   {label}")


def expect_error(label, exc_cls, status, fn):
    """Call fn, require exc_cls with the given status and a Linq error body."""
    try:
        result = fn()
    except exc_cls as e:
        check(f"{label} -> {exc_cls.__name__}", e.status_code == status, f"status_code={e.status_code}")
        body = e.body
        check(
            f"{label}: error body has int code and str message",
            isinstance(body, dict) and isinstance(body.get("code"), int) and isinstance(body.get("message"), str),
            f"body={body!r}",
        )
        return e
    except linq.APIStatusError as e:
        sys.exit(f"FAIL {label}: expected {exc_cls.__name__}, got {type(e).__name__} {e.status_code}: {e.body!r}")
    sys.exit(f"FAIL {label}: expected {exc_cls.__name__}, call succeeded with {result!r}")


def main():
    a = make_client(KEY_A)
    b = make_client(KEY_B)
    target = f"https://example.com/hook-{uuid.uuid4().hex}"
    events = ["message.sent", "message.received"]
    phones = ["+12025551234"]

    # --- create ---------------------------------------------------------------
    sent.clear()
    sub = a.webhook_subscriptions.create(target_url=target, subscribed_events=events, phone_numbers=phones)
    check("create: exactly one HTTP request", sent == ["POST /api/partner/v3/webhook-subscriptions"], f"{sent}")
    check("create: id", isinstance(sub.id, str) and sub.id, f"{sub.id!r}")
    check("create: is_active is True", sub.is_active is True, f"{sub.is_active!r}")
    check("create: target_url echoed", sub.target_url == target, f"{sub.target_url!r}")
    check("create: subscribed_events", list(sub.subscribed_events) == events, f"{sub.subscribed_events!r}")
    check("create: phone_numbers", sub.phone_numbers == phones, f"{sub.phone_numbers!r}")
    check("create: created_at/updated_at are datetimes",
          isinstance(sub.created_at, datetime) and isinstance(sub.updated_at, datetime),
          f"{sub.created_at!r} {sub.updated_at!r}")
    secret = sub.signing_secret
    check("create: signing_secret starts with whsec_", isinstance(secret, str) and secret.startswith("whsec_"), f"{secret!r}")
    try:
        key = base64.b64decode(secret[len("whsec_"):], validate=True)  # standard alphabet only
    except (binascii.Error, ValueError) as e:
        sys.exit(f"FAIL create: signing_secret is not standard base64: {secret!r} ({e})")
    check("create: signing_secret decodes to 32 bytes", len(key) == 32, f"{len(key)} bytes")

    # --- list / retrieve ------------------------------------------------------
    raw = a.webhook_subscriptions.with_raw_response.list()
    listed = raw.parse()
    check("list: contains the new id", sub.id in [s.id for s in listed.subscriptions], "id missing")
    check("list: raw body has no signing_secret", "signing_secret" not in raw.text(), raw.text()[:300])
    check("list: raw body is {subscriptions: [...]}", isinstance(json.loads(raw.text()).get("subscriptions"), list), "")

    raw = a.webhook_subscriptions.with_raw_response.retrieve(sub.id)
    got = raw.parse()
    check("retrieve: raw body has no signing_secret", "signing_secret" not in raw.text(), raw.text()[:300])
    check("retrieve: same subscription",
          (got.id, got.target_url, list(got.subscribed_events), got.phone_numbers, got.is_active)
          == (sub.id, target, events, phones, True), f"{got!r}")

    # --- update ---------------------------------------------------------------
    upd = a.webhook_subscriptions.update(sub.id, is_active=False)
    check("update is_active=False: is_active False", upd.is_active is False, f"{upd.is_active!r}")
    check("update is_active=False: other fields unchanged",
          (upd.id, upd.target_url, list(upd.subscribed_events), upd.phone_numbers, upd.created_at)
          == (sub.id, target, events, phones, sub.created_at), f"{upd!r}")
    check("update: updated_at is a datetime >= created_at",
          isinstance(upd.updated_at, datetime) and upd.updated_at >= upd.created_at, f"{upd.updated_at!r}")

    upd = a.webhook_subscriptions.update(sub.id, phone_numbers=None)
    check("update phone_numbers=None: filter cleared", upd.phone_numbers in (None, []), f"{upd.phone_numbers!r}")
    check("update phone_numbers=None: is_active still False", upd.is_active is False, f"{upd.is_active!r}")
    got = a.webhook_subscriptions.retrieve(sub.id)
    check("retrieve after updates: persisted", got.phone_numbers in (None, []) and got.is_active is False, f"{got!r}")

    # --- event types ----------------------------------------------------------
    ev = a.webhook_events.list()
    check("webhook_events.list: has message.sent and call.no_answer",
          {"message.sent", "call.no_answer"} <= set(ev.events), f"{ev.events!r}")
    check("webhook_events.list: doc_url is a string", isinstance(ev.doc_url, str), f"{ev.doc_url!r}")

    # --- errors ---------------------------------------------------------------
    expect_error("bogus api key", linq.AuthenticationError, 401,
                 lambda: make_client("bogus-" + uuid.uuid4().hex).webhook_subscriptions.list())
    expect_error("retrieve random uuid", linq.NotFoundError, 404,
                 lambda: a.webhook_subscriptions.retrieve(str(uuid.uuid4())))
    expect_error("partner B retrieves partner A's subscription", linq.NotFoundError, 404,
                 lambda: b.webhook_subscriptions.retrieve(sub.id))
    check("partner B list does not show A's subscription",
          sub.id not in [s.id for s in b.webhook_subscriptions.list().subscriptions], "leaked")
    expect_error("create with http:// target_url", linq.BadRequestError, 400,
                 lambda: a.webhook_subscriptions.create(target_url="http://example.com/x", subscribed_events=events))

    sent.clear()
    e = expect_error("create with duplicate target_url", linq.ConflictError, 409,
                     lambda: a.webhook_subscriptions.create(target_url=target, subscribed_events=events))
    check("duplicate create: x-should-retry: false", e.response.headers.get("x-should-retry") == "false",
          f"{dict(e.response.headers)}")
    check("duplicate create: SDK did not retry (1 request)", len(sent) == 1, f"{len(sent)} requests: {sent}")

    # --- delete ---------------------------------------------------------------
    check("delete returns None", a.webhook_subscriptions.delete(sub.id) is None, "")
    expect_error("retrieve after delete", linq.NotFoundError, 404, lambda: a.webhook_subscriptions.retrieve(sub.id))
    check("list after delete: id gone", sub.id not in [s.id for s in a.webhook_subscriptions.list().subscriptions], "")

    print("sdk_roundtrip: all checks passed")


if __name__ == "__main__":
    main()
