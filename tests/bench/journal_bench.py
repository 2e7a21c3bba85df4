"""Journal at scale: one dataset of 1,000,000 files (the size the journal is designed for).

    python tests/bench/journal_bench.py [--files 1000000]

Measures what an upload does with the journal: merge a scan (new dataset, then an unchanged re-scan), page
through pending files and move them through states in batches, and count by state. Prints JSON with seconds and
the process's peak RSS: memory must stay flat (the merge runs in SQL, paging is by id).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.journal import DISCOVERED, REGISTERED, UPLOADING, Journal
from tests.conftest import journal_dataset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    n = ap.parse_args().files
    out: dict[str, float | int] = {"files": n}
    with tempfile.TemporaryDirectory() as d, Journal(Path(d) / "journal.sqlite") as j:
        rec = journal_dataset(j, "big")

        def rows():  # type: ignore[no-untyped-def]
            return (
                (f"d{i // 1000:04d}/f{i:07d}.raw", f"/src/d{i // 1000:04d}/f{i:07d}.raw", 4096, i)
                for i in range(n)
            )

        t = time.perf_counter()
        j.stage_scan(rows())
        j.merge_scan(rec.id)
        out["first_scan_merge_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        j.stage_scan(rows())
        r = j.merge_scan(rec.id)
        out["unchanged_rescan_merge_s"] = round(time.perf_counter() - t, 2)
        assert r.new == 0 and r.changed == 0
        t = time.perf_counter()
        after = 0
        while True:
            page = j.files_in_state(rec.id, (DISCOVERED, UPLOADING), after_id=after, limit=2000)
            if not page:
                break
            after = page[-1].id
            j.update_files([(f.id, {"state": UPLOADING, "writing": 1}) for f in page])
            j.update_files([(f.id, {"state": REGISTERED, "writing": 0, "sha256": "0" * 64}) for f in page])
        out["page_and_two_state_changes_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        c = j.counts(rec.id)
        out["count_by_state_s"] = round(time.perf_counter() - t, 3)
        assert c.done == n
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
