#!/usr/bin/env python3
"""Checks that the top-level modules of src/ keep to their layers.

LAYERS lists every top-level module from the bottom up; a module may use
(`crate::X` in code outside its `#[cfg(test)]` blocks) only modules listed
before it, so there is no import cycle and the tree reads bottom-up.
Exits 1 naming each import that breaks the order, or each module that is
missing from the list.

usage: .ci/layers.py [SRC_DIR]
"""
import os
import re
import sys

# Bottom to top (see the layer overview in src/lib.rs).
LAYERS = [
    "assets",   # embedded pages and icons (no code)
    "config",   # settings: a leaf the others read
    "logging",  # the binary's logger
    "proto",    # pure wire formats: HTTP heads, SSE, WebSocket, JWT
    "io",       # runtime primitives: signals, clock, readiness, transport, buffers
    "hub",      # rooms: engine (order, ids, history), membership, delivery
    "auth",     # who may subscribe and publish
    "conn",     # connection drivers: HTTP, SSE, WebSocket session and handlers
    "client",   # the WebSocket client
    "app",      # endpoint table, static files, metrics, demos, dashboard
    "error",    # the library's error type
    "server",   # Server, ServerHandle, worker threads, accept, drain
    "cli",      # the binary's command line
]


def strip_tests(text):
    """Drops `#[cfg(test)] mod name { ... }` blocks (brace matching)."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def uses(text):
    text = re.sub(r"//[^\n]*", "", strip_tests(text))
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    names = set(re.findall(r"\bcrate::(\w+)", text))
    for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
        names |= set(re.findall(r"(?:^|,)\s*(\w+)", group))
    return names


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    modules = set()
    for name in os.listdir(src):
        if name.endswith(".rs") and name not in ("lib.rs", "main.rs"):
            modules.add(name[:-3])
        elif os.path.isdir(os.path.join(src, name)):
            modules.add(name)
    problems = [f"src/{m}: not in .ci/layers.py's LAYERS" for m in sorted(modules - set(LAYERS))]
    rank = {m: i for i, m in enumerate(LAYERS)}
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            top = os.path.relpath(path, src).split(os.sep)[0].removesuffix(".rs")
            if top not in rank:
                continue
            with open(path, encoding="utf-8") as fh:
                used = uses(fh.read())
            for other in sorted(used & modules):
                if other != top and other in rank and rank[other] >= rank[top]:
                    problems.append(f"{path}: {top} uses crate::{other}, which is not below it")
    for p in problems:
        print(p)
    print(f"layers: {len(modules)} modules, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
