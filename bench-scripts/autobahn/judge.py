#!/usr/bin/env python3
"""Judges an Autobahn|Testsuite fuzzingclient report (reports/index.json).

wstest always exits 0, so the verdict comes from here. A case passes when its
`behavior` is OK, NON-STRICT or INFORMATIONAL and its `behaviorClose` is OK or
INFORMATIONAL. With --allow-unimplemented, UNIMPLEMENTED (an extension the
server does not offer, e.g. permessage-deflate in 12.* and 13.*) passes too.
When --log names the wstest log, every case wstest announced ("Cases = [...]")
must have a result: a missing case fails the run.

Prints a table of counts per case group, the failing cases with their
behaviour, and the slowest cases. Exit status: 0 all passed, 1 a case failed
or is missing, 2 the report could not be read or holds no result to judge.
"""

import argparse
import ast
import json
import os
import sys

GROUPS = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 handling",
    "7": "Close handling",
    "9": "Limits/performance",
    "10": "Misc",
    "12": "Compression (payloads)",
    "13": "Compression (parameters)",
}

PASS_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL"}
PASS_CLOSE = {"OK", "INFORMATIONAL"}
COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def case_key(case_id):
    return tuple(int(x) for x in case_id.split("."))


def announced_cases(log_path):
    """The case ids wstest printed as `Cases = [...]`, or None."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Cases = "):
                    return [str(c) for c in ast.literal_eval(line[len("Cases = "):].strip())]
    except (OSError, ValueError, SyntaxError):
        return None
    return None


def judge_case(result, allow_unimplemented):
    """(passed, behaviour column) for one case result."""
    behavior = result.get("behavior", "?")
    close = result.get("behaviorClose", "?")
    if behavior == "UNIMPLEMENTED" and allow_unimplemented:
        return True, "UNIMPLEMENTED"
    column = behavior if behavior in COLUMNS else "FAILED"
    return behavior in PASS_BEHAVIOR and close in PASS_CLOSE, column


def judge(index, agent=None, expected=None, allow_unimplemented=False, max_listed=None,
          out=sys.stdout):
    """Prints the summary; returns the number of failing or missing cases, or
    None when the report holds nothing to judge."""
    if not index:
        print("judge: the report holds no agent (did wstest reach the server?)", file=out)
        return None
    if agent is None:
        agents = sorted(index)
    elif agent in index:
        agents = [agent]
    else:
        print("judge: agent %r not in the report (agents: %s)" % (agent, ", ".join(sorted(index))), file=out)
        return None

    bad_total = 0
    for name in agents:
        results = index[name]
        table = {}
        failing = []
        lenient = []
        for case_id in sorted(results, key=case_key):
            r = results[case_id]
            ok, column = judge_case(r, allow_unimplemented)
            group = case_id.split(".")[0]
            row = table.setdefault(group, dict.fromkeys(COLUMNS + ["close!"], 0))
            row[column] += 1
            if r.get("behaviorClose", "?") not in PASS_CLOSE:
                row["close!"] += 1
            if not ok:
                failing.append((case_id, r))
            elif column != "OK":
                lenient.append("%s %s" % (case_id, column))
        missing = [c for c in (expected or []) if c not in results]

        print("Autobahn fuzzingclient report, agent %s: %d cases" % (name, len(results)), file=out)
        header = "%-4s %-26s" % ("", "group") + "".join("%15s" % c for c in COLUMNS) + "%13s" % "bad close"
        print(header, file=out)
        print("-" * len(header), file=out)
        totals = dict.fromkeys(COLUMNS + ["close!"], 0)
        for group in sorted(table, key=int):
            row = table[group]
            for k in totals:
                totals[k] += row[k]
            print("%-4s %-26s" % (group + ".*", GROUPS.get(group, "?"))
                  + "".join("%15d" % row[c] for c in COLUMNS) + "%13d" % row["close!"], file=out)
        print("-" * len(header), file=out)
        print("%-4s %-26s" % ("", "total") + "".join("%15d" % totals[c] for c in COLUMNS)
              + "%13d" % totals["close!"], file=out)

        slowest = sorted(results.items(), key=lambda kv: -kv[1].get("duration", 0))[:5]
        total_ms = sum(r.get("duration", 0) for r in results.values())
        print("case time: %.1f s in all; slowest: %s" % (
            total_ms / 1000.0,
            ", ".join("%s %d ms" % (c, r.get("duration", 0)) for c, r in slowest)), file=out)

        if lenient:
            print("passed, not strictly OK: %s" % ", ".join(lenient), file=out)
        if failing:
            print("\nFAILING cases (%d):" % len(failing), file=out)
            shown = failing if max_listed is None else failing[:max_listed]
            for case_id, r in shown:
                print("  %-10s behavior=%-14s behaviorClose=%-14s remoteCloseCode=%-6s %s" % (
                    case_id, r.get("behavior"), r.get("behaviorClose"),
                    r.get("remoteCloseCode"), r.get("reportfile", "")), file=out)
            if len(shown) < len(failing):
                print("  ... and %d more (--max-listed 0 lists them all)" % (len(failing) - len(shown)),
                      file=out)
        if missing:
            print("\nMISSING cases (%d, announced by wstest but without a result): %s" % (
                len(missing), " ".join(missing)), file=out)
        bad = len(failing) + len(missing)
        print("\nverdict for %s: %s" % (
            name, "PASS" if bad == 0 else "FAIL (%d failing, %d missing)" % (len(failing), len(missing))),
            file=out)
        bad_total += bad
    return bad_total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("index", nargs="?", default="target/autobahn/reports/index.json",
                   help="the report's index.json (default: %(default)s)")
    p.add_argument("--agent", help="judge only this agent (default: every agent in the report)")
    p.add_argument("--log", help="wstest's output, to check that every announced case has a result")
    p.add_argument("--allow-unimplemented", action="store_true",
                   help="count UNIMPLEMENTED (an extension the server does not offer) as a pass")
    p.add_argument("--max-listed", type=int, default=60,
                   help="list at most this many failing cases, 0 for all (default: %(default)s)")
    a = p.parse_args(argv)
    try:
        with open(a.index, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("judge: cannot read %s: %s" % (a.index, e), file=sys.stderr)
        return 2
    expected = None
    if a.log:
        expected = announced_cases(a.log)
        if expected is None:
            print("judge: no `Cases = [...]` line in %s; not checking for missing cases" % a.log,
                  file=sys.stderr)
    bad = judge(index, a.agent, expected, a.allow_unimplemented, a.max_listed or None)
    if bad is None:
        return 2
    if bad:
        print("report: %s" % os.path.join(os.path.dirname(a.index), "index.html"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
