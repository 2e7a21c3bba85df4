"""Registration in the local catalogue: a page whose outcome was lost is sent again, never listed twice."""

from __future__ import annotations

from pathlib import Path

from engine.catalogue.base import DatasetSpec
from engine.catalogue.local import LocalCatalogue
from engine.journal import REGISTERED, VERIFIED, DatasetRecord, Journal
from engine.registration import _entry, register_verified
from tests.conftest import journal_dataset


def _verified(journal: Journal, n: int) -> DatasetRecord:
    rec = journal_dataset(journal)
    journal.stage_scan((f"f{i}.dat", f"/src/f{i}.dat", i, 1_000_000_000 * i) for i in range(n))
    journal.merge_scan(rec.id)
    files = journal.files_in_state(rec.id, ("discovered",), limit=n)
    journal.update_files([(f.id, {"state": VERIFIED, "sha256": f"{f.id:064x}"}) for f in files])
    return rec


def test_local_registration_keeps_no_intents_and_a_lost_page_is_sent_again_once(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    catalogue = LocalCatalogue(tmp_path / "catalogue.db")
    rec = _verified(journal, 5)
    cid = catalogue.create_dataset(DatasetSpec(name="ds", investigation=None, location="/s/ds"))
    rec = journal.update_dataset(rec.id, catalogue_id=cid)
    # The catalogue took the page, then the process died before the journal heard back.
    lost = journal.files_in_state(rec.id, (VERIFIED,), limit=3)
    catalogue.append_files(cid, [_entry(f) for f in lost])

    assert register_verified(journal, catalogue, rec) == 5

    assert journal.registering(rec.id) == []  # the local catalogue needs no intents
    assert [f.state for f in journal.iter_files(rec.id)] == [REGISTERED] * 5
    listed = catalogue.files(cid)
    assert sorted(e.path for e in listed) == [f"f{i}.dat" for i in range(5)]  # each path once
    assert {e.path: e.sha256 for e in listed} == {f.rel: f.sha256 for f in journal.iter_files(rec.id)}
    journal.close()
    catalogue.close()
