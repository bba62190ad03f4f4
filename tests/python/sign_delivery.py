#!/usr/bin/env python3
"""Sign deliveries with implementations hookline did not write, for hookline-verify to check.

stdin: JSON lines {"secret": "whsec_...", "id": "<webhook-id>", "timestamp": <unix s>, "body": "<raw body>"}.
stdout: one JSON object of headers per line: webhook-id/-timestamp/-signature from
standardwebhooks.Webhook(secret).sign, and X-Webhook-Timestamp/-Signature from Python's hmac
(hex HMAC-SHA256 keyed with the full secret string over "<timestamp>.<body>", CONTRACT.md 3.3).
"""
import hashlib
import hmac
import json
import sys
from datetime import datetime, timezone

import standardwebhooks

for line in sys.stdin:
    if not line.strip():
        continue
    rec = json.loads(line)
    secret, msg_id, ts, body = rec["secret"], rec["id"], rec["timestamp"], rec["body"]
    signature = standardwebhooks.Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), body)
    legacy = hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    print(json.dumps({"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature,
                      "X-Webhook-Timestamp": str(ts), "X-Webhook-Signature": legacy}))
