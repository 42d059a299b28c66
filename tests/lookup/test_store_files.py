"""The lookup store's files: DATA_DIR/lookup.sqlite links to a store file of its own per build (lookup-<n>
.sqlite) in WAL mode, so that a daily update's commit never locks the readers out and a new build never
meets the -wal and -shm files of the previous one under its name. Real stores built by the real loader and
by `mirror store`, real SQLite locks, a real read-only mount."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess

import pytest
from conftest import mount_tmpfs, private_mirror, run_mirror, umount

from mirror.catalog.build import connect
from mirror.core import datadir
from mirror.lookup.store import LookupStore, store_path
from mirror.serve.documents import get_document, iter_documents

pytestmark = pytest.mark.lookup_store


def _some_sirens(data, n: int = 20) -> list[str]:
    con = connect(data)
    try:
        return [
            r[0] for r in con.execute(f"SELECT siren FROM unites_legales ORDER BY siren LIMIT {n}").fetchall()
        ]
    finally:
        con.close()


def _views(data, ids: list[str]) -> list[tuple]:
    con = connect(data)
    try:
        return [(status, body) for _i, status, body in iter_documents(con, ids, "v3")]
    finally:
        con.close()


def _store_read(store: LookupStore, siren: str):
    return store.read(
        lambda s: s.db.execute("SELECT 1 FROM lookup_unites_legales WHERE siren = ?", [siren]).fetchone()
    )


def test_each_build_is_a_file_of_its_own_in_wal_mode_behind_the_link(loaded_stock, tmp_path):
    """The link names the build's file; `mirror store --rebuild` switches it to a new file and removes the
    previous one with its side files, while a reader opened on it goes on reading it until it reopens."""
    data = private_mirror(loaded_stock, tmp_path / "data")
    link = store_path(data)
    first = os.readlink(link)
    assert link.is_symlink() and first.startswith("lookup-") and first.endswith(".sqlite")
    db = sqlite3.connect(link)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    sirens = _some_sirens(data)
    old_reader = LookupStore(data)
    assert _store_read(old_reader, sirens[0]) == (1,)

    rebuilt = run_mirror("store", "--rebuild", data_dir=data, env={"MIRROR_LOOKUP_STORE": "on"})
    assert rebuilt.returncode == 0, rebuilt.stderr
    second = os.readlink(link)
    assert second != first and second.startswith("lookup-")
    assert {p.name for p in data.glob("lookup*.sqlite*")} == {"lookup.sqlite", second}
    assert old_reader.replaced() and _store_read(old_reader, sirens[0]) == (1,)  # its unlinked file
    old_reader.close()
    assert [get_document(data, s) for s in sirens] == _views(data, sirens)  # reopened on the new file


def test_readers_are_not_locked_out_while_a_writer_holds_the_store(loaded_stock, tmp_path):
    """A writer holding the store's exclusive lock (as a daily update does while it commits): a reader that
    does not wait at all still reads the store. With the rollback journal stores had before, it was
    locked out until the commit ended (about 100 ms at 100,000 units)."""
    data = private_mirror(loaded_stock, tmp_path / "data")
    sirens = _some_sirens(data)
    writer = sqlite3.connect(store_path(data), isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("DELETE FROM lookup_unites_legales WHERE siren = ?", [sirens[0]])
    try:
        reader = LookupStore(data)
        reader.set_busy_timeout(0)
        assert _store_read(reader, sirens[0]) == (1,)  # the committed state, not the writer's
        reader.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_leftover_store_files_are_removed_and_a_plain_store_keeps_its_journal(loaded_stock, tmp_path):
    """A crash between naming a built file and switching the link leaves a file nobody links to; a plain
    lookup.sqlite replaced by the link leaves its side files: the next writer removes them. A plain store
    (built before the link) keeps its -journal, which can be a hot journal SQLite needs."""
    data = private_mirror(loaded_stock, tmp_path / "data")
    current = os.readlink(store_path(data))
    for name in ("lookup-1.sqlite", "lookup-1.sqlite-wal", "lookup.sqlite-journal", "lookup.sqlite-shm"):
        (data / name).write_bytes(b"left over")
    assert sorted(datadir.clean_leftovers(data)) == [
        "lookup-1.sqlite",
        "lookup-1.sqlite-wal",
        "lookup.sqlite-journal",
        "lookup.sqlite-shm",
    ]
    assert (data / current).is_file() and store_path(data).resolve() == (data / current).resolve()

    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copyfile(data / current, plain / "lookup.sqlite")
    (plain / "lookup.sqlite-journal").write_bytes(b"maybe hot")
    (plain / "lookup-7.sqlite").write_bytes(b"left over")
    assert datadir.clean_leftovers(plain) == ["lookup-7.sqlite"]
    assert (plain / "lookup.sqlite-journal").exists()


def test_a_store_on_read_only_media_still_answers(loaded_stock, tmp_path):
    """A mirror on a read-only file system, its store closed cleanly (no -shm, no -wal): SQLite cannot
    open a WAL database read-only there; the store opens it as immutable and answers."""
    mnt = tmp_path / "ro"
    mount_tmpfs(mnt, "256m")
    try:
        data = private_mirror(loaded_stock, mnt / "data")
        for side in data.glob("lookup-*.sqlite-*"):  # a clean close removes them
            side.unlink()
        sirens = _some_sirens(data)
        expected = _views(data, sirens)
        r = subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True)
        if r.returncode != 0:
            pytest.skip("cannot remount the tmpfs read-only")
        store = LookupStore(data)
        assert store.begin() and not store.lagging
        store.end()
        assert _store_read(store, sirens[0]) == (1,)
        store.close()
        assert [get_document(data, s) for s in sirens] == expected
    finally:
        umount(mnt)


def test_a_store_built_before_wal_mode_is_named_by_status_and_replaced_by_a_rebuild(loaded_stock, tmp_path):
    """A plain lookup.sqlite in rollback-journal mode (as every store was before the link layout) still
    answers; `mirror status` says its readers pause during updates; `mirror store --rebuild` replaces it
    with the link layout, removing the plain file's side files and nothing else."""
    data = private_mirror(loaded_stock, tmp_path / "data")
    link = store_path(data)
    target = data / os.readlink(link)
    db = sqlite3.connect(target)
    assert db.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    db.close()
    link.unlink()
    target.rename(link)  # the plain file of a store built before
    (data / "lookup.sqlite-shm").write_bytes(b"")  # side files a WAL-mode open of the plain file could leave
    sirens = _some_sirens(data)
    assert [get_document(data, s) for s in sirens] == _views(data, sirens)

    env = {"MIRROR_LOOKUP_STORE": "on"}
    before = json.loads(run_mirror("status", "--json", data_dir=data, env=env).stdout)
    assert before["lookup_store"]["current"] and not before["lookup_store"]["wal"]
    assert any("built before WAL mode" in w for w in before["warnings"]), before["warnings"]

    rebuilt = run_mirror("store", "--rebuild", data_dir=data, env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert link.is_symlink()
    assert {p.name for p in data.glob("lookup*.sqlite*")} == {"lookup.sqlite", os.readlink(link)}
    after = json.loads(run_mirror("status", "--json", data_dir=data, env=env).stdout)
    assert after["lookup_store"]["current"] and after["lookup_store"]["wal"]
    assert not any("WAL" in w for w in after["warnings"]), after["warnings"]
    assert [get_document(data, s) for s in sirens] == _views(data, sirens)
