#!/usr/bin/env python3
"""Writes crates/hookline-core/src/payload/catalogue.json: every event type hookline knows, with a
JSON Schema (draft 2020-12) of its `data` in the 2026-02-03 format and an example.

Run it with the test suite's virtualenv (linq-python 0.65.0, tests/python/requirements.txt):

    PY=$(ls -d $CARGO_TARGET_DIR/tmp/pyenv-*/bin/python | head -1)
    $PY scripts/gen-event-catalogue.py ../shared/CONTRACT.md

Where the data comes from:
- Schemas: each event's `data` model in linq-python 0.65.0 (`linq.types.<type>_webhook_event`),
  the source CONTRACT.md §4.3-§4.4 takes its field sets from, exported by pydantic and rewritten
  so a validator can name the failing field: a discriminated union (`parts[]`) becomes an enum of
  its tags plus one if/then per tag, and "X or null" becomes a type list or an if/else, instead
  of anyOf/oneOf (whose only message is "not valid under any of the schemas").
- Examples: CONTRACT.md §4.4 for the 25 seed types (the variants it describes in words are
  built as it says); for the others, the smallest object the schema accepts.
- `call.*`: no SDK, spec or page defines their `data` (CONTRACT.md §4.4): any object.
The output is checked in; the server embeds it (include_str!) and reads it once.
"""
import copy
import importlib
import json
import pathlib
import re
import sys

from pydantic import BaseModel, TypeAdapter

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/hookline-core/src/payload/catalogue.json"
ALL = re.findall(r'"([a-z_.]+)"', (ROOT / "crates/hookline-core/src/event_type.rs").read_text()
                 .split("pub const ALL", 1)[1].split("];", 1)[0])
assert len(ALL) == 75
SEED = ALL[:8] + ALL[17:24] + ALL[26:29] + ALL[32:39]  # CONTRACT.md §2.7: the seed's 25
assert len(SEED) == 25 and "chat.background_updated" not in SEED
MESSAGE_2025 = ["message.sent", "message.received", "message.read", "message.delivered"]
ACCOUNT_FAMILIES = ("api_token.", "environment.", "webhook_subscription.", "team_member.")
ACCOUNT_SINGLES = {"contact_card.created", "contact_card.updated", "contact_card.deleted",
                   "zero_day_retention.updated", "phone_number.forwarding_updated"}
SCHEMA_WORDS = ("description", "title", "default", "discriminator")


def family(t):
    if t.startswith(ACCOUNT_FAMILIES) or t in ACCOUNT_SINGLES:
        return "account"
    return t.split(".")[0]


def strip(node):
    """Drops annotations (descriptions, titles, defaults, `additionalProperties: true`)."""
    if isinstance(node, list):
        return [strip(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in ("properties", "$defs"):
            out[k] = {name: strip(s) for name, s in v.items()}
        elif k in SCHEMA_WORDS or (k == "additionalProperties" and v is True):
            continue
        else:
            out[k] = strip(v)
    return out


def is_null(s):
    return s == {"type": "null"}


def rewrite(node):
    """anyOf-with-null and discriminated oneOf become forms that fail at the field."""
    if isinstance(node, list):
        return [rewrite(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "properties" in node:
        node = dict(node, properties={k: rewrite(v) for k, v in node["properties"].items()})
    if "$defs" in node:
        node = dict(node, **{"$defs": {k: rewrite(v) for k, v in node["$defs"].items()}})
    node = {k: (rewrite(v) if k not in ("properties", "$defs") else v) for k, v in node.items()}
    alts = node.get("anyOf")
    if alts and len(alts) == 2 and any(is_null(a) for a in alts):
        other = next(a for a in alts if not is_null(a))
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if set(other) <= {"type", "format", "enum", "const", "items"} and isinstance(other.get("type"), str):
            merged = dict(other, type=[other["type"], "null"])
            if "enum" in merged:
                merged["enum"] = merged["enum"] + [None]
            if "const" in merged:
                merged["enum"] = [merged.pop("const"), None]
            return dict(rest, **merged)
        return dict(rest, **{"if": {"type": "null"}, "else": other})
    for union in ("oneOf", "anyOf"):
        if union in node and all(set(a) == {"$ref"} for a in node[union]):
            rest = {k: v for k, v in node.items() if k != union}
            return dict(rest, **{"$tagged": [a["$ref"] for a in node[union]]})
    return node


def resolve_tags(schema, defs):
    """`$tagged` (from a discriminated union) → enum of tags + one if/then per tag."""
    if isinstance(schema, list):
        return [resolve_tags(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: resolve_tags(v, defs) for k, v in schema.items()}
    refs = schema.pop("$tagged", None)
    if refs is None:
        return schema
    tags = []
    branches = []
    targets = [defs[ref.split("/")[-1]] for ref in refs]
    if not all("const" in t.get("properties", {}).get("type", {}) for t in targets):
        return dict(schema, anyOf=[{"$ref": r} for r in refs])
    for ref, target in zip(refs, targets):
        tag = target["properties"]["type"]["const"]
        tags.append(tag)
        branches.append({"if": {"properties": {"type": {"const": tag}}}, "then": {"$ref": ref}})
    return dict(schema, type="object", required=["type"],
                properties={"type": {"enum": tags}}, allOf=branches)


def data_schema(event_type):
    module = importlib.import_module("linq.types." + event_type.replace(".", "_") + "_webhook_event")
    cls = next(v for k, v in vars(module).items()
               if k.endswith("WebhookEvent") and isinstance(v, type) and issubclass(v, BaseModel))
    s = strip(TypeAdapter(cls.model_fields["data"].annotation).json_schema())
    s = rewrite(s)
    defs = s.get("$defs", {})
    s = resolve_tags(s, defs)
    return cls.__name__, s


def merge_defs(types):
    """One `$defs` for the catalogue: same-named definitions that are equal are shared, others
    get the type's class name as a prefix."""
    shared = {}
    for entry in types:
        local = entry["schema"].pop("$defs", {})
        prefix = (entry["model"] or "").removesuffix("WebhookEvent")
        renames = {}
        for name, d in local.items():
            if name in shared and shared[name] != d or name == "Data":
                renames[name] = prefix + name
        text = json.dumps(entry["schema"])
        local_text = json.dumps(local)
        for old, new in renames.items():
            text = text.replace(f'"#/$defs/{old}"', f'"#/$defs/{new}"')
            local_text = local_text.replace(f'"#/$defs/{old}"', f'"#/$defs/{new}"')
        entry["schema"] = json.loads(text)
        for name, d in json.loads(local_text).items():
            shared[renames.get(name, name)] = d
    return shared


def contract_examples(contract):
    text = pathlib.Path(contract).read_text()
    section = text.split("### 4.4", 1)[1].split("### 4.5", 1)[0]
    examples = {}
    for block in re.findall(r"```json\n(.*?)```", section, re.S):
        try:
            body = json.loads(block)
        except json.JSONDecodeError:
            continue  # the call.* envelope with "…" placeholders
        examples[body["event_type"]] = body["data"]
    sent = examples["message.sent"]
    examples["message.delivered"] = dict(sent, delivered_at="2026-02-05T19:52:22.291Z", read_at=None)
    examples["message.read"] = dict(sent, delivered_at="2026-02-05T19:52:22.291Z",
                                    read_at="2026-02-05T19:13:58.177Z")
    examples["reaction.removed"] = examples["reaction.added"]
    added = examples["participant.added"]
    removed = {k: v for k, v in added.items() if k != "added_at"}
    removed["removed_at"] = added["added_at"]
    removed["participant"] = dict(added["participant"], status="removed", left_at=added["added_at"])
    examples["participant.removed"] = removed
    examples["chat.group_icon_updated"] = dict(
        examples["chat.group_name_updated"],
        old_value="https://cdn.linqapp.com/icons/old.png", new_value="https://cdn.linqapp.com/icons/new.png")
    examples["chat.group_icon_update_failed"] = examples["chat.group_name_update_failed"]
    examples["chat.typing_indicator.stopped"] = examples["chat.typing_indicator.started"]
    for t in SEED:
        if t.startswith("call."):
            examples[t] = {}
    missing = [t for t in SEED if t not in examples]
    assert not missing, missing
    return examples


def minimal(schema, defs):
    """The smallest instance of `schema`: required fields only, first enum value."""
    while "$ref" in schema:
        schema = dict(defs[schema["$ref"].split("/")[-1]], **{k: v for k, v in schema.items() if k != "$ref"})
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    t = schema.get("type", "object")
    t = t[0] if isinstance(t, list) else t
    if t == "object":
        props = schema.get("properties", {})
        return {k: minimal(props.get(k, {}), defs) for k in schema.get("required", [])}
    if t == "array":
        return [minimal(schema["items"], defs) for _ in range(schema.get("minItems", 0))]
    if t == "string":
        return "2026-02-05T20:00:00Z" if schema.get("format") == "date-time" else "string"
    return {"integer": 0, "number": 0, "boolean": False, "null": None}[t]


def main():
    examples = contract_examples(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/CONTRACT.md")
    types = []
    for t in ALL:
        entry = {"event_type": t, "family": family(t), "seed": t in SEED}
        if t.startswith("call."):
            entry.update(model=None, schema={"type": "object"})
        else:
            entry["model"], entry["schema"] = data_schema(t)
        types.append(entry)
    defs = merge_defs(types)
    for entry in types:
        entry["example"] = examples[entry["event_type"]] if entry["seed"] else minimal(entry["schema"], defs)
        entry["versions"] = ["2026-02-03"] if entry["event_type"] == "message.edited" else ["2026-02-03", "2025-01-01"]
        entry["converted_for_2025_01_01"] = entry["event_type"] in MESSAGE_2025
    doc = {
        "source": "linq-python 0.65.0 data models (scripts/gen-event-catalogue.py); examples: CONTRACT.md §4.4",
        "$defs": dict(sorted(defs.items())),
        "event_types": types,
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"{OUT}: {len(types)} event types, {len(defs)} shared definitions, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
