#!/usr/bin/env python3
"""Parse hookline deliveries with linq-python's typed event models, strictly.

stdin: one raw delivery body (JSON text) per line. Each body is validated with
`<Type>WebhookEvent.model_validate_json(body, strict=True)`, the class picked by its
event_type (linq.types.<event_type with dots as underscores>_webhook_event). call.* events have
no model in the SDK (CONTRACT.md §4.4): their envelope is checked field by field instead.
Prints "ok <event_type>" per line; exits 1 on the first failure or on empty input.
"""
import importlib
import json
import sys

from pydantic import BaseModel

ENVELOPE = ["api_version", "webhook_version", "event_type", "event_id", "created_at", "trace_id",
            "partner_id", "data"]


def model_for(event_type):
    module = importlib.import_module("linq.types." + event_type.replace(".", "_") + "_webhook_event")
    return next(v for k, v in vars(module).items()
                if k.endswith("WebhookEvent") and isinstance(v, type) and issubclass(v, BaseModel))


def main():
    n = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        event_type = json.loads(line)["event_type"]
        if event_type.startswith("call."):
            body = json.loads(line)
            assert list(body) == ENVELOPE and isinstance(body["data"], dict), body
        else:
            model = model_for(event_type)
            event = model.model_validate_json(line, strict=True)
            assert event.event_type == event_type, (event.event_type, event_type)
        print("ok", event_type)
        n += 1
    if n == 0:
        sys.exit("no input")


if __name__ == "__main__":
    main()
