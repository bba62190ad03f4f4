#!/usr/bin/env python3
"""Verify captured hookline webhook deliveries the way Linq customers do.

stdin: JSON lines {"secret": "whsec_...", "headers": {name: value}, "body": "<raw body>"}.
Each line is checked with standardwebhooks.Webhook.verify, with linq's
client.webhooks.unwrap, and against the legacy X-Webhook-Signature
(hex HMAC-SHA256 keyed with the full secret string over "<X-Webhook-Timestamp>.<body>").
Prints "ok <webhook-id>" per line; exits 1 on the first failure or on empty input.

`python verify_delivery.py --self-test` checks this script against freshly signed
vectors (and the fixed vector of CONTRACT.md section 3.5) without a server.
"""
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid

import linq
import standardwebhooks

# Never used for HTTP: unwrap only verifies locally.
CLIENT = linq.LinqAPIV3(api_key="dummy", base_url="http://127.0.0.1:9")


def legacy_signature(secret, timestamp, body):
    return hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()


def verify(secret, headers, body):
    """Return the webhook-id; raise on any verification failure."""
    lower = {k.lower(): v for k, v in headers.items()}
    standardwebhooks.Webhook(secret).verify(body, headers)
    CLIENT.webhooks.unwrap(body, headers=headers, key=secret)
    for name in ("x-webhook-timestamp", "x-webhook-signature"):
        if name not in lower:
            raise ValueError(f"missing legacy header {name}")
    expected = legacy_signature(secret, lower["x-webhook-timestamp"], body)
    if not hmac.compare_digest(lower["x-webhook-signature"], expected):
        raise ValueError(f"X-Webhook-Signature {lower['x-webhook-signature']!r} != expected {expected!r}")
    return lower["webhook-id"]


def main(lines):
    count = 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            webhook_id = verify(rec["secret"], rec["headers"], rec["body"])
        except Exception as e:
            sys.exit(f"FAIL line {n}: {type(e).__name__}: {e}")
        print(f"ok {webhook_id}")
        count += 1
    if count == 0:
        sys.exit("FAIL: no deliveries on stdin")


def sign(secret, msg_id, ts, body):
    """Build delivery headers the way hookline must (CONTRACT.md section 3)."""
    key = base64.b64decode(secret[len("whsec_"):])
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": f"v1,{sig}",
            "X-Webhook-Event": "message.received", "X-Webhook-Timestamp": str(ts),
            "X-Webhook-Signature": legacy_signature(secret, ts, body)}


def self_test():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw7Jxx2Oll+OE="
    msg_id = "2915e81c-5068-4796-ace2-21d2c94ad298"
    body = ('{"api_version":"v3","webhook_version":"2026-02-03","event_type":"message.received",'
            '"event_id":"2915e81c-5068-4796-ace2-21d2c94ad298","created_at":"2026-02-05T19:31:13.736444093Z",'
            '"trace_id":"8af9171a45022df2eb74ba4e4c83be0f","partner_id":"your-partner-id","data":'
            '{"id":"89e3566e-1d13-49e5-a8ee-48490d5bfeb7","direction":"inbound","parts":'
            '[{"type":"text","value":"Hello!"}],"service":"iMessage"}}')
    # Fixed vector (its timestamp is too old for standardwebhooks, so raw HMAC only).
    fixed = sign(secret, msg_id, 1770319873, body)
    if (fixed["webhook-signature"], fixed["X-Webhook-Signature"]) != (
            "v1,mbTcIuiGZBt8phWNPD97yL8uTB2xRDD3bNnn6jD3RR0=",
            "34f8ad6573b7c642dc1ad0d7f7d78c728a62511ecb32b74095c30e565ebfa563"):
        sys.exit(f"FAIL self-test: fixed vector mismatch {fixed}")
    print("ok fixed vector (CONTRACT.md 3.5)")

    # Fresh vectors through the real verifiers, with header names in odd case.
    fresh_secret = "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()
    fresh_id = str(uuid.uuid4())
    headers = {k.upper() if k.startswith("webhook") else k.lower(): v
               for k, v in sign(fresh_secret, fresh_id, int(time.time()), body).items()}
    good = json.dumps({"secret": fresh_secret, "headers": headers, "body": body})
    main([good])
    bad_cases = {
        "tampered body": {"secret": fresh_secret, "headers": headers, "body": body.replace("Hello!", "Hello?")},
        "wrong secret": {"secret": secret, "headers": headers, "body": body},
        "bad legacy sig": {"secret": fresh_secret, "body": body,
                           "headers": {**headers, "x-webhook-signature": "00" * 32}},
    }
    for name, rec in bad_cases.items():
        try:
            verify(rec["secret"], rec["headers"], rec["body"])
        except Exception:
            print(f"ok rejects {name}")
            continue
        sys.exit(f"FAIL self-test: {name} was accepted")
    print("verify_delivery self-test passed")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
    else:
        main(sys.stdin)
