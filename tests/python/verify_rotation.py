#!/usr/bin/env python3
"""Check captured hookline deliveries against a signing secret with the Standard Webhooks
reference verifier (the `standardwebhooks` package), expecting acceptance or rejection.

stdin: JSON lines {"secret": "whsec_...", "headers": {name: value}, "body": "<raw body>",
"expect": true|false}. Prints "ok <n> accepted|rejected" per line as expected; exits 1 at the
first line whose outcome differs, or on empty input.
"""
import json
import sys

import standardwebhooks


def main(lines):
    count = 0
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        try:
            standardwebhooks.Webhook(rec["secret"]).verify(rec["body"], rec["headers"])
            accepted = True
        except standardwebhooks.WebhookVerificationError:
            accepted = False
        if accepted != rec["expect"]:
            sys.exit(f"FAIL line {n}: accepted={accepted}, expected {rec['expect']}")
        print(f"ok {n} {'accepted' if accepted else 'rejected'}")
        count += 1
    if count == 0:
        sys.exit("FAIL: no deliveries on stdin")


if __name__ == "__main__":
    main(sys.stdin)
