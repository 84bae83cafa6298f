#!/usr/bin/env python3
"""Writes a benchmark report (Markdown) from one run directory of run.sh.

    report.py OUT_DIR RESULTS.md

Reads OUT_DIR/machine.env, OUT_DIR/records.tsv (one row per scenario,
system and round) and each row's raw output: the last line of a loadgen run
(one JSON object), wrk's JSON line (printed by bench-scripts/wrk/report.lua)
and the runner's own line (.runner: wall time, server and client CPU from
/proc and `times`). Every figure in the report comes from those files.
The TLS scenarios get their own sections like the others, then a summary
table (each system's figure and ringcast's ratio to it) and ringcast's cost
of TLS (its TLS figure over its plaintext one, from the same run).
Standard library only.
"""

import json
import os
import statistics
import sys

SYSTEMS = ["ringcast", "tokio-tungstenite", "fastwebsockets", "nginx-nchan"]

# scenario -> title, what it measures, figure key, figure label, better,
# work unit for "server CPU-s per million".
SCENARIOS = {
    "http": dict(
        title="HTTP keep-alive requests/s: GET /healthz",
        what="wrk, 1 thread, 100 keep-alive connections. ringcast and the Rust peers "
        "answer /healthz from code; nginx serves a 2-byte static file with one worker.",
        key="req_per_sec", label="requests/s", better="higher", work="requests"),
    "publish": dict(
        title="HTTP publish requests/s: POST /publish/bench (64 B, no subscribers)",
        what="wrk, 1 thread, 100 keep-alive connections, 64-byte bodies to a room nobody "
        "subscribes to: the cost of the publish path alone.",
        key="req_per_sec", label="publishes/s", better="higher", work="requests"),
    "echo-32x1": dict(
        title="WebSocket echo: 100 connections, 32 B text, 1 message in flight each",
        what="loadgen echo: masked client frames, every echo checked byte for byte; "
        "round-trip latency bound.",
        key="msgs_per_sec", label="messages/s", better="higher", work="messages"),
    "echo-32x8": dict(
        title="WebSocket echo: 100 connections, 32 B text, 8 messages in flight each",
        what="loadgen echo with 8 messages pipelined per connection: rewards servers "
        "that batch what one read produces into one write.",
        key="msgs_per_sec", label="messages/s", better="higher", work="messages"),
    "echo-16k": dict(
        title="WebSocket echo: 100 connections, 16 KiB binary, 1 in flight each",
        what="loadgen echo with 16 KiB binary messages: copy and masking cost.",
        key="msgs_per_sec", label="messages/s", better="higher", work="messages"),
    "fanout-ws": dict(
        title="Fan-out to WebSocket subscribers: one room, 64 B messages",
        what="loadgen fanout: all subscribers connected first, then one keep-alive "
        "publisher POSTs flat out (16 pipelined, paused while subscribers lag more "
        "than 32 messages on average). Deliveries/s over all subscribers; every "
        "subscriber checks order, loss and duplicates.",
        key="delivered_per_sec", label="deliveries/s", better="higher", work="messages"),
    "fanout-sse": dict(
        title="Fan-out to SSE subscribers: one room, 64 B messages",
        what="As the WebSocket fan-out, with Server-Sent Events subscribers.",
        key="delivered_per_sec", label="deliveries/s", better="higher", work="messages"),
    "fanout-ws-paced": dict(
        title="Fan-out latency, WebSocket: one room, 64 B messages at a steady 10/s",
        what="loadgen fanout with `--rate 10/s`: publishes paced well under most "
        "systems' capacity, so the latency is not queueing behind a flat-out "
        "publisher. It includes the single-threaded client's time to get round to "
        "every subscriber socket, the same for every system.",
        key="latency_p99_us", label="p99 publish-to-receive latency", better="lower",
        work="messages"),
    "fanout-sse-paced": dict(
        title="Fan-out latency, SSE: one room, 64 B messages at a steady 10/s",
        what="As the paced WebSocket fan-out, with SSE subscribers.",
        key="latency_p99_us", label="p99 publish-to-receive latency", better="lower",
        work="messages"),
    "idle-ws": dict(
        title="Idle WebSocket connections: server memory per connection",
        what="loadgen hold: N WebSocket connections complete their handshake (room "
        "subscribers) and stay idle; the server's RSS (VmRSS) and open fds are "
        "sampled before connecting and once a second while holding.",
        key="server_rss_per_conn", label="bytes RSS / connection", better="lower",
        work="connections"),
    "idle-sse": dict(
        title="Idle SSE connections: server memory per connection",
        what="As the WebSocket hold, with SSE subscribers.",
        key="server_rss_per_conn", label="bytes RSS / connection", better="lower",
        work="connections"),
    "churn-ws": dict(
        title="Connection churn: WebSocket open, handshake, close",
        what="loadgen churn: connections opened at a steady rate, each completing the "
        "handshake then a close handshake. The figure is the server's CPU cost per "
        "million connections; the drift columns compare the server's fds and RSS "
        "before and after (after waiting for it to settle).",
        key="server_cpu_s_per_million_conns", label="server CPU-s / million connections",
        better="lower", work="connections"),
    # TLS: every system serves the same certificate (bench-scripts/tls-cert.sh,
    # ECDSA P-256) on a TLS listener; loadgen trusts the test CA (rustls client).
    "fanout-wss": dict(
        title="TLS: fan-out to WebSocket subscribers over wss://, one room, 64 B messages",
        what="As the WebSocket fan-out, over TLS: subscribers on wss://, the publisher "
        "on https:// (one keep-alive connection). Every delivery is one TLS record "
        "(or part of one) per subscriber.",
        key="delivered_per_sec", label="deliveries/s", better="higher", work="messages", tls=True),
    "echo-wss-32x8": dict(
        title="TLS: WebSocket echo over wss://, 100 connections, 32 B text, 8 in flight each",
        what="As echo-32x8, over TLS: rewards servers that put what one read produces "
        "into one write, and so into few TLS records.",
        key="msgs_per_sec", label="messages/s", better="higher", work="messages", tls=True),
    "idle-wss": dict(
        title="TLS: idle WebSocket connections over wss://, server memory per connection",
        what="As idle-ws (same connection count), over TLS; the server's memory is "
        "sampled from `--sample-after` (run.sh: 2 s) after the last connection opened, "
        "past ringcast's parking delay (1 s), so the figure is the steady state of an "
        "idle TLS connection.",
        key="server_rss_per_conn", label="bytes RSS / connection", better="lower",
        work="connections", tls=True),
    "handshakes-tls": dict(
        title="TLS: full handshakes per second per core (wss:// connect, upgrade, close)",
        what="loadgen churn over TLS without session resumption: every connection is "
        "a full handshake (TLS 1.3, ECDHE, ECDSA P-256 certificate), then the "
        "WebSocket upgrade and a close. A handshake counts once its answer has "
        "arrived. Opened flat out, at most 64 in progress. The figure is completed "
        "handshakes per second of server CPU: the server runs on one core, so it is "
        "handshakes per second per core whether or not the one-core client kept the "
        "server busy (see loadgen CPU); handshakes/s is what the client reached.",
        key="tls_handshakes_per_server_cpu_s", label="handshakes / server CPU-second",
        better="higher", work="connections", tls=True),
    "https": dict(
        title="TLS: HTTPS keep-alive requests/s, GET /healthz",
        what="As the http scenario over TLS: wrk, 1 thread, 100 keep-alive "
        "connections (handshakes only at the start).",
        key="req_per_sec", label="requests/s", better="higher", work="requests", tls=True),
}

# The plaintext scenario each TLS one is compared with, and the figure: the
# cost of TLS for ringcast (TLS ÷ plaintext, lower is cheaper).
TLS_VS_PLAIN = [
    ("fanout-wss", "fanout-ws", "server_cpu_per_million",
     "server CPU per delivered message (CPU-s / M deliveries)"),
    ("echo-wss-32x8", "echo-32x8", "server_cpu_per_million",
     "server CPU per echoed message (CPU-s / M messages)"),
    ("idle-wss", "idle-ws", "server_rss_per_conn", "server memory per idle connection (bytes RSS)"),
    ("https", "http", "server_cpu_per_million", "server CPU per request (CPU-s / M requests)"),
    ("fanout-wss", "fanout-ws", "delivered_per_sec", "deliveries/s"),
    ("echo-wss-32x8", "echo-32x8", "msgs_per_sec", "echoed messages/s"),
    ("https", "http", "req_per_sec", "requests/s"),
]
HTTP_LIKE = ("http", "publish", "https")

STATUS_TEXT = {
    "not-yet": "not yet",
    "n/a": "n/a (no such endpoint)",
    "not-built": "not built",
    "no-server": "server did not start",
    "no-wrk": "wrk missing",
    "timeout": "timed out",
    "no-tls": "n/a (no TLS mode)",
}


def read_env(path):
    env = {}
    try:
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    env[k] = v
    except OSError:
        pass
    return env


def last_json(path, want_tool=None):
    """The last line of `path` that parses as a JSON object (optionally with tool=...)."""
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if want_tool is None or obj.get("tool") == want_tool:
            return obj
    return None


def metrics(scenario, raw):
    """One row's figures, merged from the tool's and the runner's lines."""
    tool = last_json(raw)
    runner = last_json(raw + ".runner")
    if tool is None:
        return None
    m = dict(tool)
    # CPU that neither the server nor the client used on cores 0 and 1 while
    # the tool ran: other processes on the machine (in % of one core).
    if runner and runner.get("cores_busy_s") is not None and runner.get("wall_s"):
        ours = (runner.get("server_cpu_s") or 0) + (runner.get("client_cpu_s") or 0)
        m["other_load_pct"] = max(0.0, 100.0 * (runner["cores_busy_s"] - ours) / runner["wall_s"])
    if scenario in HTTP_LIKE:
        wall = m.get("duration_s") or (runner or {}).get("wall_s")
        if runner:
            srv = runner.get("server_cpu_s")
            if wall:
                m["loadgen_cpu_pct"] = 100.0 * runner["client_cpu_s"] / runner["wall_s"]
                if srv is not None:
                    m["server_cpu_pct"] = 100.0 * srv / runner["wall_s"]
            m["server_cpu_s"] = srv
            if m.get("requests") and srv is not None:
                m["server_cpu_per_million"] = srv / (m["requests"] / 1e6)
        m["errors"] = sum(m.get(k, 0) for k in (
            "errors_connect", "errors_read", "errors_write", "errors_status", "errors_timeout"))
    else:
        for k in ("server_cpu_s_per_million_msgs", "server_cpu_s_per_million_conns"):
            if m.get(k) is not None:
                m["server_cpu_per_million"] = m[k]
    return m


def num(v, digits=0):
    if v is None:
        return "—"
    if isinstance(v, (int, float)):
        if abs(v) >= 1000 and digits == 0:
            return f"{v:,.0f}"
        return f"{v:,.{digits}f}"
    return str(v)


def us(v):
    if v is None:
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f} s"
    if v >= 1e3:
        return f"{v / 1e3:.2f} ms"
    return f"{v:.0f} µs"


def size(v):
    if v is None:
        return "—"
    a = abs(v)
    if a >= 1 << 20:
        return f"{v / (1 << 20):.1f} MiB"
    if a >= 1 << 10:
        return f"{v / (1 << 10):.1f} KiB"
    return f"{v:.0f} B"


def extra_columns(scenario):
    if scenario == "handshakes-tls":
        return ["handshakes/s", "full, resumed", "version, suite", "TLS handshake p50 / p99",
                "failed"], lambda m: [
            num(m.get("tls_handshakes_per_sec")),
            f"{num(m.get('tls_full'))}, {num(m.get('tls_resumed'))}",
            f"{m.get('tls_version') or '?'}, {m.get('tls_suite') or '?'}",
            f"{us(m.get('tls_handshake_p50_us'))} / {us(m.get('tls_handshake_p99_us'))}",
            num(m.get("failed"))]
    if scenario in HTTP_LIKE:
        return ["p50 / p99 latency", "errors"], lambda m: [
            f"{us(m.get('latency_p50_us'))} / {us(m.get('latency_p99_us'))}",
            num(m.get("errors"))]
    if scenario.startswith("echo"):
        return ["RTT p50 / p99 / p99.9", "checked: mismatched, missing"], lambda m: [
            f"{us(m.get('rtt_p50_us'))} / {us(m.get('rtt_p99_us'))} / {us(m.get('rtt_p999_us'))}",
            f"{num(m.get('echoes_checked'))}: {num(m.get('mismatches'))}, {num(m.get('missing'))}"]
    if scenario.startswith("fanout"):
        return ["subscribers", "publishes/s", "latency p50 / p99 / p99.9",
                "missing, dup, out-of-order, dropped"], lambda m: [
            num(m.get("subs_open")),
            num(m.get("publishes_per_sec")),
            f"{us(m.get('latency_p50_us'))} / {us(m.get('latency_p99_us'))} / {us(m.get('latency_p999_us'))}",
            f"{num(m.get('missing'))}, {num(m.get('duplicates'))}, {num(m.get('out_of_order'))}, "
            f"{num(m.get('subs_dropped'))}"]
    if scenario.startswith("idle"):
        return ["connections held", "RSS before → held", "fds / connection"], lambda m: [
            num(m.get("conns_open")),
            f"{size(m.get('server_rss_before'))} → {size(m.get('server_rss_held'))}",
            num(m.get("server_fds_per_conn"), 2)]
    if scenario.startswith("churn"):
        return ["cycles (per s)", "fd drift", "RSS drift (peak)", "handshake p99", "failed"], lambda m: [
            f"{num(m.get('cycles'))} ({num(m.get('cycles_per_sec'))})",
            num(m.get("server_fd_drift")),
            f"{size(m.get('server_rss_drift'))} ({size(m.get('server_rss_peak'))})",
            us(m.get("handshake_p99_us")),
            num(m.get("failed"))]
    return [], lambda m: []


def figure_text(scenario, v):
    if v is None:
        return "—"
    if scenario.endswith("-paced"):
        return us(v)
    if scenario.startswith("idle"):
        return f"{v:,.0f} ({size(v)})"
    if scenario.startswith("churn"):
        return f"{v:,.1f}"
    if scenario == "handshakes-tls":
        return f"{v:,.0f}"
    return num(v)


def choose(sc, spec, runs):
    """The row shown for one system: the median round by the figure; else a
    round whose tool still reported (figure missing); else the first."""
    with_json = []
    for r in runs:
        m = metrics(sc, r["raw"]) if r["raw"] else None
        if m is not None:
            with_json.append((m.get(spec["key"]), r, m))
    with_fig = sorted((t for t in with_json if t[0] is not None), key=lambda t: t[0])
    if with_fig:
        _, r, m = with_fig[(len(with_fig) - 1) // 2]
        return dict(status=r["status"], m=m, cmd=r["cmd"], all=[t[0] for t in with_fig])
    if with_json:
        _, r, m = with_json[0]
        return dict(status=r["status"], m=m, cmd=r["cmd"], all=[])
    r = runs[0]
    return dict(status=r["status"], m=None, cmd=r["cmd"], all=[])


def status_text(status, m):
    if status == "ok":
        return "ok"
    if status == "exit-1":
        return "checks failed"
    if status.startswith("exit-"):
        err = (m or {}).get("error")
        return f"error ({status})" + (f": {err}" if err else "")
    return STATUS_TEXT.get(status, status)


def ok_metrics(chosen, system):
    """A system's chosen row's figures, if the row passed its checks."""
    c = (chosen or {}).get(system)
    if not c or c["status"] != "ok" or c["m"] is None:
        return None
    return c["m"]


def fig_cell(sc, chosen, system, key):
    c = (chosen or {}).get(system)
    if not c:
        return "—"
    m = ok_metrics(chosen, system)
    if m is None:
        return status_text(c["status"], c["m"])
    return figure_text(sc, m.get(key))


def tls_summary(w, chosen_by_sc):
    """The TLS table (each system's figure, ringcast's ratio to it) and
    ringcast's cost of TLS (TLS over plaintext, same run)."""
    tls_scs = [sc for sc, spec in SCENARIOS.items() if spec.get("tls") and sc in chosen_by_sc]
    if not tls_scs:
        return
    # Peers with a TLS mode (a system whose every TLS row says it has none
    # is left out).
    peers = [s for s in SYSTEMS if s != "ringcast"
             and any(s in chosen_by_sc[sc] and chosen_by_sc[sc][s]["status"] != "no-tls"
                     for sc in tls_scs)]
    w("## TLS at the edge: summary")
    w("")
    w("Each TLS scenario's figure per system (the sections above have the details), "
      "and *ringcast ÷ system* as in the other tables. The tokio-tungstenite peer "
      "serves TLS through tokio-rustls (rustls 0.23, ring), nginx through OpenSSL; "
      "fastwebsockets has no TLS mode; nginx + nchan has no WebSocket echo.")
    w("")
    cols = ["scenario", "figure", "ringcast"]
    for p in peers:
        cols += [p, f"ringcast ÷ {p}"]
    w("| " + " | ".join(cols) + " |")
    w("|" + "|".join(["---"] * len(cols)) + "|")
    for sc in tls_scs:
        spec = SCENARIOS[sc]
        chosen = chosen_by_sc[sc]
        key = spec["key"]
        rc = ok_metrics(chosen, "ringcast")
        rc_fig = rc.get(key) if rc else None
        cells = [f"`{sc}`", f"{spec['label']} ({spec['better']} is better)",
                 fig_cell(sc, chosen, "ringcast", key)]
        for p in peers:
            cells.append(fig_cell(sc, chosen, p, key))
            pm = ok_metrics(chosen, p)
            pf = pm.get(key) if pm else None
            cells.append(f"{rc_fig / pf:.2f}×" if rc_fig and pf else "—")
        w("| " + " | ".join(cells) + " |")
    w("")

    w("### What TLS costs ringcast: TLS ÷ plaintext")
    w("")
    w("ringcast's figure in each TLS scenario over its figure in the plaintext "
      "scenario of the same run (same sizes, same client). For CPU and memory, "
      "1.40× means TLS costs 40 % more per unit of work; for throughput, 0.70× "
      "means TLS reaches 70 % of the plaintext rate.")
    w("")
    w("| measure | plaintext | TLS | TLS ÷ plaintext |")
    w("|---|---|---|---|")
    shown = 0
    for tls_sc, plain_sc, key, label in TLS_VS_PLAIN:
        if tls_sc not in chosen_by_sc:
            continue
        pm = ok_metrics(chosen_by_sc.get(plain_sc), "ringcast")
        tm = ok_metrics(chosen_by_sc.get(tls_sc), "ringcast")
        pv = pm.get(key) if pm else None
        tv = tm.get(key) if tm else None
        if key == "server_rss_per_conn":
            fmt = lambda v: "—" if v is None else f"{v:,.0f} ({size(v)})"  # noqa: E731
        elif key == "server_cpu_per_million":
            fmt = lambda v: num(v, 3)  # noqa: E731
        else:
            fmt = num
        if pm is None:
            pcell = f"— (`{plain_sc}` not in this run, or not ok)"
        else:
            pcell = f"{fmt(pv)} (`{plain_sc}`)"
        if tm is None:
            c = (chosen_by_sc.get(tls_sc) or {}).get("ringcast")
            tcell = f"— ({status_text(c['status'], c['m']) if c else 'not run'})"
        else:
            tcell = f"{fmt(tv)} (`{tls_sc}`)"
        ratio = f"{tv / pv:.2f}×" if tv is not None and pv else "—"
        w(f"| {label} | {pcell} | {tcell} | {ratio} |")
        shown += 1
    if not shown:
        w("| — | — | — | — |")
    w("")


def main():
    out_dir, results = sys.argv[1], sys.argv[2]
    env = read_env(os.path.join(out_dir, "machine.env"))
    rows = {}
    with open(os.path.join(out_dir, "records.tsv")) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 6:
                continue
            sc, system, rnd, status, raw, cmd = parts[:6]
            server = parts[6] if len(parts) > 6 else ""
            if cmd and server:
                cmd = f"{server}` then `{cmd}"
            rows.setdefault(sc, {}).setdefault(system, []).append(
                dict(round=int(rnd), status=status, raw=raw, cmd=cmd))

    quick = env.get("mode") == "quick"
    lines = []
    w = lines.append
    w("# ringcast benchmark results" + (" (quick run)" if quick else ""))
    w("")
    w("Written by `bench-scripts/run.sh%s` from the raw outputs in `%s` "
      "(every figure below is copied from a tool's output by `bench-scripts/report.py`)."
      % (" --quick" if quick else "", os.path.relpath(out_dir, os.path.dirname(os.path.abspath(results)))))
    if quick:
        w("A quick run uses short durations and fewer connections: a smoke test, "
          "not figures to quote.")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| date (UTC) | {env.get('date_utc', '?')} |")
    dirty = " (with uncommitted changes)" if env.get("dirty") == "yes" else ""
    w(f"| git commit | `{env.get('commit', '?')}`{dirty} |")
    w(f"| machine | {env.get('nproc', '?')} cores (`nproc`), {env.get('cpu_model', '?')}, "
      f"{env.get('memory', '?')} memory |")
    w(f"| kernel | {env.get('kernel', '?')} |")
    w(f"| load average | {env.get('loadavg_start', '?')} at the start, "
      f"{env.get('loadavg_end', '?')} at the end (1, 5, 15 min) |")
    w(f"| pinning | server on core 0 (`taskset -c 0`), load generator / wrk on core 1 "
      f"(`taskset -c 1`); every server runs 1 worker thread |")
    w(f"| fd limit | {env.get('nofile', '?')} |")
    w(f"| tools | loadgen (bench-scripts/loadgen), {env.get('wrk', 'wrk')} |")
    if env.get("tls_cert"):
        w(f"| TLS | every system serves one certificate (bench-scripts/tls-cert.sh: "
          f"{env.get('tls_cert')}, signed by a test CA); loadgen is a rustls 0.23 client "
          f"(ring), wrk uses {env.get('openssl', 'OpenSSL')} |")
    w(f"| rounds | {env.get('rounds', '1')} per scenario, systems alternating; "
      f"the median round is shown |")
    w(f"| run time | {env.get('elapsed_s', '?')} s |")
    w("")
    w("How to read: each table has one row per system. *ringcast ÷ system* divides "
      "ringcast's figure by that system's: with *higher is better*, above 1 means "
      "ringcast is ahead; with *lower is better*, below 1 means ringcast is ahead. "
      "*loadgen CPU* is the load generator's (or wrk's) own CPU time over the "
      "measured window, in % of one core: near 100 % the client, not the server, "
      "was the limit. *server CPU-s / M* is the server's CPU-seconds (utime + stime "
      "from /proc) per million units of work (requests, messages delivered, "
      "connections). *other load* is process time on cores 0 and 1 (user, system, steal) "
      "that was neither the server's nor the client's during the run: other processes "
      "on the machine, "
      "in % of one core: where it is high, the throughput figures of that row are "
      "depressed, and the CPU-s / M figures are the fairer comparison.")
    w("")

    chosen_by_sc = {}
    for sc, spec in SCENARIOS.items():
        if sc not in rows:
            continue
        chosen = {system: choose(sc, spec, runs) for system, runs in rows[sc].items()}
        chosen_by_sc[sc] = chosen
        # Ratios only against a ringcast row that passed its checks.
        rc_row = chosen.get("ringcast", {})
        rc = rc_row.get("m") if rc_row.get("status") == "ok" else None
        rc_fig = rc.get(spec["key"]) if rc else None
        heads, extra = extra_columns(sc)
        # The generic cost column, unless the figure already is that cost.
        cost_col = not spec["key"].startswith("server_cpu_s_per_million")
        w(f"## {spec['title']}")
        w("")
        w(spec["what"])
        w("")
        w(f"Figure: **{spec['label']}** ({spec['better']} is better).")
        w("")
        cols = ["system", spec["label"]] + heads + ["loadgen CPU", "server CPU"] + (
            [f"server CPU-s / M {spec['work']}"] if cost_col else []) + [
            "other load", "ringcast ÷ system", "status", "commands (server, then load)"]
        w("| " + " | ".join(cols) + " |")
        w("|" + "|".join(["---"] * len(cols)) + "|")
        order = [x for x in SYSTEMS if x in chosen] + [x for x in chosen if x not in SYSTEMS]
        for system in order:
            c = chosen[system]
            m = c["m"]
            status = status_text(c["status"], m)
            cmd = f"`{c['cmd']}`" if c["cmd"] else "—"
            if m is None:
                n_dash = len(heads) + 4 + cost_col
                w("| " + " | ".join([system, status] + ["—"] * n_dash + [status, cmd]) + " |")
                continue
            fig = m.get(spec["key"])
            fig_cell = figure_text(sc, fig)
            if len(c["all"]) > 1:
                fig_cell += " (rounds: " + ", ".join(figure_text(sc, v) for v in c["all"]) + ")"
            if system != "ringcast" and rc_fig and fig:
                ratio = f"{rc_fig / fig:.2f}×"
            else:
                ratio = "—"
            pct = lambda k: f"{m[k]:.0f} %" if m.get(k) is not None else "—"  # noqa: E731
            cells = [system, fig_cell] + extra(m) + [pct("loadgen_cpu_pct"), pct("server_cpu_pct")] + (
                [num(m.get("server_cpu_per_million"), 3)] if cost_col else []) + [
                pct("other_load_pct"), ratio, status, cmd]
            w("| " + " | ".join(cells) + " |")
        w("")

    tls_summary(w, chosen_by_sc)

    text = "\n".join(lines).rstrip() + "\n"
    tmp = results + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, results)


if __name__ == "__main__":
    main()
