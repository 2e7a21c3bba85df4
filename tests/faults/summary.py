"""Count the outcomes in a fault log (``DATAUPLOADER_FAULT_LOG``) per fault: the figures of docs/reliability.md.

    python -m tests.faults.summary fault-log.jsonl

Trials that run inside one test (rclone killed, sync killed) are counted one by one; every other test counts
once per parametrised case.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict


def summarise(lines: list[str]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    seeds: set[int] = set()
    for line in lines:
        entry = json.loads(line)
        seeds.add(entry["seed"])
        if "fault" in entry:  # one trial inside an aggregate test
            outcome = "passed" if entry["outcome"] == "pass" else "failed"
            counts[f"trial {entry['fault']}"][outcome] += 1
        else:  # one pytest test (or parametrised case)
            test = re.sub(r"\[.*\]$", "", entry["test"].split("::", 1)[1])
            case = re.search(r"\[(.*)\]$", entry["test"])
            storage = re.match(r"^(local|webdav)-\d+$", case.group(1)) if case else None
            kind = storage.group(1) if storage else ""
            counts[f"{test}{'[' + kind + ']' if kind else ''}"][entry["outcome"]] += 1
    counts["(seeds)"] = Counter({str(s): 1 for s in sorted(seeds)})
    return counts


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as fh:
        counts = summarise(fh.readlines())
    for name in sorted(counts):
        c = counts[name]
        print(f"{name:70s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
