from __future__ import annotations

from pathlib import Path

import pytest

from hccomics.datasets import gene_set, gene_sets, read_gmt
from hccomics.errors import DataValidationError, OptionError


def test_bundled_collections() -> None:
    wp, h = gene_sets("wikipathways"), gene_sets("hallmark")
    assert len(h) == 50 and len(wp) == 509
    pi3k = wp["WP4172"]
    assert (pi3k.size, pi3k.collection, pi3k.version) == (345, "WikiPathways human", "2019")
    assert {"IL6", "IL6R", "IL7", "IL7R", "AKT1", "PIK3CA", "PTEN", "MTOR"} <= set(pi3k.genes)
    assert h["HALLMARK_PI3K_AKT_MTOR_SIGNALING"].size == 105
    assert pi3k.to_record() == {"name": "WP4172", "collection": "WikiPathways human", "version": "2019", "size": 345}


def test_duplicate_definitions(tmp_path: Path) -> None:
    gmt = tmp_path / "x.gmt"
    gmt.write_text("A\td\tG1\tG2\nA\td\tG2\tG1\nB\td\tG3\nB\td\tG4\n")
    with pytest.raises(DataValidationError, match="'B' appears twice with different genes"):
        read_gmt(gmt)
    sets = read_gmt(gmt, on_duplicate="union", version="1")
    assert sets["A"].genes == ("G1", "G2") and sets["B"].genes == ("G3", "G4")
    # the bundled WP75 has two revisions, merged
    assert gene_set("WP75").size >= 104


def test_bad_gmt_and_names(tmp_path: Path) -> None:
    gmt = tmp_path / "bad.gmt"
    gmt.write_text("ONLY_NAME\n")
    with pytest.raises(DataValidationError, match="bad.gmt:1"):
        read_gmt(gmt)
    with pytest.raises(OptionError, match="did you mean 'WP4172'"):
        gene_set("wp4172")
    with pytest.raises(OptionError, match="did you mean 'hallmark'"):
        gene_sets("halmark")
