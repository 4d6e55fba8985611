"""Bundled, versioned gene-set collections (MSigDB Hallmark, WikiPathways) and GMT reading."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from hccomics._options import check_option
from hccomics.errors import DataValidationError

logger = logging.getLogger(__name__)

__all__ = ["GeneSet", "COLLECTIONS", "gene_sets", "gene_set", "read_gmt"]


@dataclass(frozen=True)
class GeneSet:
    """One gene set with the collection and version it came from.

    Attributes
    ----------
    name
        Identifier in its collection (``"WP4172"``, ``"HALLMARK_PI3K_AKT_MTOR_SIGNALING"``).
    genes
        HGNC symbols, unique, in file order.
    collection, version
        Where the set comes from; set sizes differ between releases.
    description
        The GMT description field.
    """

    name: str
    genes: tuple[str, ...]
    collection: str
    version: str
    description: str = ""
    size: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", len(self.genes))

    def __contains__(self, gene: object) -> bool:
        return gene in set(self.genes)

    def to_record(self) -> dict[str, object]:
        """Return the provenance fields (no genes) to store next to a result."""
        return {"name": self.name, "collection": self.collection, "version": self.version, "size": self.size}


# name -> (file, collection label, version)
COLLECTIONS: dict[str, tuple[str, str, str]] = {
    "hallmark": ("h.all.v7.5.1.symbols.gmt", "MSigDB Hallmark", "7.5.1"),
    "wikipathways": ("wikipathways_2019_human.symbols.gmt", "WikiPathways human", "2019"),
}


def read_gmt(
    path: str | Path,
    *,
    collection: str | None = None,
    version: str = "unknown",
    on_duplicate: Literal["error", "union"] = "error",
) -> dict[str, GeneSet]:
    """Read a GMT file (``name<TAB>description<TAB>gene...``) into gene sets.

    Duplicate genes inside a set are dropped, and a set repeated with the same
    genes is kept once.

    Parameters
    ----------
    path
        The GMT file.
    collection
        Label recorded with each set; defaults to the file name.
    version
        Release recorded with each set.
    on_duplicate
        What to do when a set name appears twice with different genes:
        ``"error"`` (default) or ``"union"`` (merge the gene lists, logged).
    """
    check_option("on_duplicate", on_duplicate, ("error", "union"))
    path = Path(path)
    collection = collection or path.stem
    sets: dict[str, GeneSet] = {}
    problems = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3:
            problems.append(f"{path}:{lineno}: expected name, description and at least one gene, found {len(parts)} field(s)")
            continue
        name, desc, genes = parts[0], parts[1], tuple(dict.fromkeys(g.strip() for g in parts[2:] if g.strip()))
        if name in sets and set(sets[name].genes) != set(genes):
            if on_duplicate == "error":
                problems.append(
                    f"{path}:{lineno}: gene set {name!r} appears twice with different genes; "
                    "pass on_duplicate='union' to merge them"
                )
                continue
            logger.info("%s:%d: merging the second definition of gene set %r", path, lineno, name)
            genes = tuple(dict.fromkeys(sets[name].genes + genes))
        elif name in sets:
            continue
        sets[name] = GeneSet(name, genes, collection, version, desc)
    if problems:
        raise DataValidationError(f"{path} is not a valid GMT file", problems)
    return sets


@lru_cache(maxsize=None)
def _bundled(name: str) -> dict[str, GeneSet]:
    fname, label, version = COLLECTIONS[name]
    with resources.as_file(resources.files("hccomics.datasets") / "data" / fname) as p:
        # the 2019 WikiPathways snapshot lists WP75 twice (two revisions): merged
        return read_gmt(p, collection=label, version=version, on_duplicate="union")


def gene_sets(collection: str = "wikipathways") -> dict[str, GeneSet]:
    """Return a bundled collection as ``{set name: GeneSet}``.

    Parameters
    ----------
    collection
        ``"wikipathways"`` (WikiPathways human 2019, 509 distinct sets) or ``"hallmark"``
        (MSigDB Hallmark 7.5.1, 50 sets). Provenance: ``datasets/data/PROVENANCE.md``.

    Examples
    --------
    >>> wp = gene_sets("wikipathways")
    >>> wp["WP4172"].size, wp["WP4172"].collection, wp["WP4172"].version
    (345, 'WikiPathways human', '2019')
    >>> "IL6" in wp["WP4172"] and "IL7" in wp["WP4172"]
    True
    """
    check_option("collection", collection, COLLECTIONS)
    return dict(_bundled(collection))


def gene_set(name: str) -> GeneSet:
    """Return one bundled set by name, searching every bundled collection.

    Examples
    --------
    >>> gene_set("HALLMARK_PI3K_AKT_MTOR_SIGNALING").size
    105
    """
    for coll in COLLECTIONS:
        sets = _bundled(coll)
        if name in sets:
            return sets[name]
    every = [n for c in COLLECTIONS for n in _bundled(c)]
    check_option("gene set", name, every)
    raise AssertionError("unreachable")  # check_option raised
