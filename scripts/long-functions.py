#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 80 lines) and source files longer than
600 lines, under crates/*/src and crates/*/tests. A function runs from its `fn` line to the
closing brace at the same indentation (rustfmt's layout), so the count includes its doc-less
signature and body. Exit 1 if any is found: the size rule of README's Architecture section."""
import pathlib
import re
import sys

FN_LIMIT = int(sys.argv[1]) if len(sys.argv) > 1 else 80
FILE_LIMIT = 600
FN = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
root = pathlib.Path(__file__).resolve().parent.parent
found = []
for path in sorted(root.glob("crates/*/src/**/*.rs")) + sorted(root.glob("crates/*/tests/**/*.rs")):
    lines = path.read_text().splitlines()
    rel = path.relative_to(root)
    if len(lines) > FILE_LIMIT:
        found.append(f"{rel}: file of {len(lines)} lines")
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        # A declaration without a body (a trait's required method), however many lines its
        # signature takes, ends with `;` before any `{`.
        k = i
        while not lines[k].rstrip().endswith(("{", ";")) and k + 1 < len(lines):
            k += 1
        if lines[k].rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j] == indent + "}":
                if j - i + 1 > FN_LIMIT:
                    found.append(f"{rel}:{i + 1}: fn {m.group(7)} is {j - i + 1} lines")
                break
print("\n".join(found) if found else f"no function over {FN_LIMIT} lines, no file over {FILE_LIMIT}")
sys.exit(1 if found else 0)
