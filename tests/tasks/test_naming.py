"""Output names: no two sources of a job may ever share an output name (issue #9, item 2)."""

from __future__ import annotations

import itertools

import pytest

from types import SimpleNamespace

from recodec.formats.bandpack import BANDPACK_SUFFIX
from recodec.job import Job
from recodec.storage import SourceObject
from recodec.tasks.naming import NameClaims, Naming, possible_suffixes
from recodec.tasks.planning import PlanItem, copy_key, cut_shards


def output_key(item: PlanItem, container: str, ext: str, planned_ext: str) -> str:
    """The key the shard step writes an output under (``Job.output_key`` with the plan's names)."""
    job = SimpleNamespace(plan_extension=planned_ext)
    return Job.output_key(job, item.key, item.dest_key, container, ext, item.keep_key)  # type: ignore[arg-type]


def _plan(keys: list[str], naming: Naming, **kw: int) -> list[PlanItem]:
    objs = (SourceObject(k, 1, "e") for k in sorted(keys))
    return [i for s in cut_shards(objs, naming, 1000, 10**12) for i in s.items]


def _every_output(item: PlanItem, naming: Naming) -> set[str]:
    """Every name the compress step could write for ``item``, folded as a case-insensitive FS sees it."""
    out = {copy_key(item)} if naming.copy_unchanged else set()
    for ext in {s.removesuffix(BANDPACK_SUFFIX) for s in naming.suffixes}:
        for container in (("raw", "geotiff") if naming.geotiff_possible else ("raw",)):
            key = output_key(item, container, ext, naming.extension)
            out |= {key, key + BANDPACK_SUFFIX}
    return {k.casefold() for k in out}


def _assert_disjoint(items: list[PlanItem], naming: Naming) -> None:
    owners: dict[str, str] = {}
    for item in items:
        for name in _every_output(item, naming):
            assert owners.setdefault(name, item.key) == item.key, f"{item.key} and {owners[name]} share {name}"


GEOTIFF = Naming(".tif", possible_suffixes([".tif"]), geotiff_possible=True)
JXL_AUTO = Naming(".jxl", possible_suffixes([".jxl", ".tif"]), geotiff_possible=True)
PNG_COPY = Naming(".png", possible_suffixes([".png"]), geotiff_possible=False, copy_unchanged=True)
MULTI = Naming("", possible_suffixes([".jxl", ".avif", ".tif", ".jpg"]), geotiff_possible=True)


def test_geotiff_kept_key_and_converted_png_do_not_share_a_name() -> None:
    # The case: a.png -> a.tif (GeoTIFF container) and a.tif keeping its key.
    items = _plan(["d/a.png", "d/a.tif"], GEOTIFF)
    _assert_disjoint(items, GEOTIFF)
    png, tif = items
    assert png.dest_key == "d/a.tif" and tif.keep_key == ""  # first in listing order wins the name
    assert output_key(tif, "geotiff", ".tif", ".tif") != "d/a.tif"


def test_copy_unchanged_does_not_meet_a_converted_output() -> None:
    # a.jpg -> a.png by the png codec, while an unchanged a.png is copied verbatim.
    items = _plan(["a.jpg", "a.png"], PNG_COPY)
    _assert_disjoint(items, PNG_COPY)
    assert items[0].dest_key == "a.png" and copy_key(items[1]) != "a.png"


def test_case_insensitive_names_are_one_name() -> None:
    items = _plan(["A.png", "a.PNG", "a.png", "A.JPG"], JXL_AUTO)
    _assert_disjoint(items, JXL_AUTO)


@pytest.mark.parametrize("naming", [GEOTIFF, JXL_AUTO, PNG_COPY, MULTI], ids=["geotiff", "jxl", "copy", "multi"])
def test_every_plan_of_hostile_names_is_collision_free(naming: Naming) -> None:
    # Every combination of stems, doubled extensions and case that can meet another's output.
    stems = ["a", "A", "a.png", "a.tif", "a.jxl", "a~1", "a.jpg~1"]
    exts = [".png", ".tif", ".TIF", ".jpg", ".tiff"]
    keys = sorted({f"f/{s}{e}" for s, e in itertools.product(stems, exts)})
    items = _plan(keys, naming)
    assert len(items) == len(keys)
    _assert_disjoint(items, naming)


def test_claims_survive_spilling_to_disk() -> None:
    # Interleaved folders with only 2 kept in memory: the spilled claims still count.
    claims = NameClaims(folders_in_memory=2)
    from recodec.tasks.planning import dest_key_for

    assert dest_key_for("x/a.png", ".jxl", claims).dest_key == "x/a.jxl"
    for i in range(5):
        dest_key_for(f"y{i}/b.png", ".jxl", claims)
    assert dest_key_for("x/A.jpg", ".jxl", claims).dest_key == "x/A.jpg.jxl"
    claims.close()
