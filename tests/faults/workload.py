"""The source trees the fault trials upload: many small files (several batches, both lanes busy) and a few
larger ones (a copy that takes long enough to be cut in the middle), with seeded content."""

from __future__ import annotations

import random
from pathlib import Path

from tests.conftest import write_tree
from tests.faults.trials import SEED


def batch_tree(root: Path, *, small: int = 150, large: int = 4, large_size: int = 1 << 20) -> Path:
    """``small`` files of 0–40 KiB in a few sub-folders plus ``large`` files of ``large_size`` bytes."""
    rng = random.Random(f"{SEED}:tree:{small}:{large}")
    files: dict[str, bytes] = {}
    for i in range(small):
        folder = ("", "a/", "a/b/", "c d/")[i % 4]
        files[f"{folder}f{i:03d}.dat"] = rng.randbytes(rng.randrange(0, 40 << 10))
    for i in range(large):
        files[f"large/L{i}.bin"] = rng.randbytes(large_size)
    return write_tree(root, files)


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())
