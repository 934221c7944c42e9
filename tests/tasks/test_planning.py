"""Tests of recodec.tasks.planning: shard cutting, dest keys, persisted plans."""

from pathlib import Path

from recodec.storage import SourceObject
from recodec.tasks.naming import NameClaims
from recodec.tasks.planning import cut_shards, dest_key_for, iter_shards, plan_job


def _objs(sizes: list[int]) -> list[SourceObject]:
    return [SourceObject(f"d/{i:03d}.png", s, "e") for i, s in enumerate(sizes)]


def test_cut_by_count_and_bytes() -> None:
    shards = list(cut_shards(iter(_objs([1] * 5)), ".jxl", 2, 10**9))
    assert [len(s.items) for s in shards] == [2, 2, 1]
    assert [s.shard_id for s in shards] == [0, 1, 2]
    shards = list(cut_shards(iter(_objs([6, 6, 3, 20])), ".jxl", 100, 10))
    assert [len(s.items) for s in shards] == [1, 2, 1]  # a single big image still gets a shard


def test_dest_keys_never_collide() -> None:
    claims = NameClaims()
    assert dest_key_for("a/x.png", ".jxl", claims).dest_key == "a/x.jxl"
    assert dest_key_for("a/x.jpg", ".jxl", claims).dest_key == "a/x.jpg.jxl"


def test_plan_is_persisted_and_reused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(5):
        (src / "f").mkdir(parents=True, exist_ok=True)
        (src / "f" / f"{i}.png").write_bytes(b"x" * (i + 1))
    dst = tmp_path / "dst"
    kw = dict(extension=".jxl", extensions=(".png",), shard_size=2, shard_bytes=10**9, job_info={})
    first = plan_job(str(src), str(dst), "k1", **kw)
    assert (first.shards, first.images, first.source_bytes, first.reused) == (3, 5, 15, False)
    (src / "f" / "9.png").write_bytes(b"new")  # appears after planning: not in this job's plan
    again = plan_job(str(src), str(dst), "k1", **kw)
    assert again.reused and again.images == 5
    keys = [i.key for s in iter_shards(str(dst), "k1", again.shards) for i in s.items]
    assert keys == [f"f/{i}.png" for i in range(5)]


def test_a_small_listing_is_spread_over_every_worker() -> None:
    from recodec.tasks.planning import cut_shards

    sources = [SourceObject(f"k{i:03d}.png", 10, "e") for i in range(10)]
    assert [len(s.items) for s in cut_shards(iter(sources), ".jxl", 64, 10**9, spread=4)] == [3, 3, 3, 1]
    assert [len(s.items) for s in cut_shards(iter(sources), ".jxl", 64, 10**9)] == [10]
    # A listing larger than spread x shard_size keeps the configured shard size.
    many = [SourceObject(f"k{i:03d}.png", 10, "e") for i in range(300)]
    assert {len(s.items) for s in cut_shards(iter(many), ".jxl", 64, 10**9, spread=4)} == {64, 300 - 4 * 64}
