#!/usr/bin/env python3
"""Checks that dependencies inside the hookline server crate run one way.

    hookline-core  <-  config, logging, telemetry  <-  store  <-  engine (delivery, publish, secrets,
                   account_events, payload_check, retention)
                   <-  api (api, error, extract, portal)  <-  app (app, bootstrap, main, lib, cli)

A module may use its own layer and the layers to its left, never one to its right. The check
reads every `crate::<module>` and `hookline::<module>` path in crates/hookline/src (use lines and
inline paths alike) and maps `<module>` to its layer; `super::` stays inside a module and is
fine. It fails (exit 1) listing each offending line, so CI catches an upward import the day it
is written. hookline-core cannot depend on the server at all: Cargo refuses the cycle.
"""
import pathlib
import re
import sys

LAYERS = [
    {"config", "logging", "telemetry"},
    {"store"},
    {"delivery", "publish", "secrets", "account_events", "payload_check", "retention"},
    {"api", "error", "extract", "portal"},
    {"app", "bootstrap", "main", "lib", "cli"},
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
PATH = re.compile(r"\b(?:crate|hookline)::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}`: the names directly inside the braces.
GROUP = re.compile(r"\b(?:crate|hookline)::\{([^}]*)\}")

src = pathlib.Path(__file__).resolve().parent.parent / "crates" / "hookline" / "src"
errors = []
for path in sorted(src.rglob("*.rs")):
    rel = path.relative_to(src)
    owner = rel.parts[0].removesuffix(".rs")
    if owner not in RANK:
        errors.append(f"{rel}: module '{owner}' has no layer in scripts/check-layers.py")
        continue
    # Unit tests may reach anywhere to build what they test: stop at the first test module.
    lines = path.read_text().split("#[cfg(test)]", 1)[0].splitlines()
    code = "\n".join(line.split("//", 1)[0] for line in lines)
    found = [(m.start(), {m.group(1)}) for m in PATH.finditer(code)]
    for m in GROUP.finditer(code):  # `use crate::{a, b::c}`, possibly over several lines
        names = {g.strip().split("::")[0] for g in m.group(1).split(",") if g.strip()}
        found.append((m.start(), names))
    for pos, targets in found:
        for target in targets:
            if target in ("self", "super") or target not in RANK:
                continue
            if RANK[target] > RANK[owner]:
                n = code.count("\n", 0, pos)
                errors.append(
                    f"{rel}:{n + 1}: {owner} (layer {RANK[owner]}) uses {target} "
                    f"(layer {RANK[target]}): {lines[n].strip()}"
                )

if errors:
    print("dependencies must run one way (see scripts/check-layers.py):")
    print("\n".join(errors))
    sys.exit(1)
print("layers: every crate:: path in crates/hookline/src points down or sideways")
