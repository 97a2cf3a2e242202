"""Room directory of the embedded backend: one SQLite file in the data directory.

SQLite calls run on one dedicated thread (so the event loop never waits on disk and
the connection is only ever used by the thread that made it). The embedded log is
single-process (its data directory is locked), so rooms read once are cached.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from barrage.server.log.base import (
    LogUnavailableError,
    RoomDirectory,
    RoomExistsError,
    RoomInfo,
    RoomNotFoundError,
    RoomQuery,
)

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    room_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    creator_user_id TEXT NOT NULL,
    create_time_ms INTEGER NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    close_time_ms INTEGER NOT NULL DEFAULT 0
)
"""
# Columns added by UpdateRoom (a file made before them gains them on open).
_METADATA_COLUMNS = (
    ("cover_url", "TEXT NOT NULL DEFAULT ''"),
    ("labels", "TEXT NOT NULL DEFAULT '[]'"),  # a JSON array of strings
    ("announcement", "TEXT NOT NULL DEFAULT ''"),
)
_COLUMNS = "room_id, title, creator_user_id, create_time_ms, closed, close_time_ms, cover_url, labels, announcement"

_Row = tuple[str, str, str, int, int, int, str, str, str]


def _row_to_info(row: _Row) -> RoomInfo:
    labels = tuple(str(label) for label in json.loads(row[7]))
    return RoomInfo(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], labels, row[8])


class EmbeddedRoomDirectory(RoomDirectory):
    """Durable room metadata in `<data dir>/rooms.sqlite3`.

    open() and close() are called by the EmbeddedLog that owns the data directory
    (see open_embedded), so a Backend has one lifecycle: log.start() / log.close().
    """

    def __init__(self, db_path: str) -> None:
        self._db_path = db_path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._cache: dict[str, RoomInfo] = {}
        self._failures = 0
        """Calls failed in a row: one line is logged when it starts, one when it ends."""

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="barrage-rooms")
        self._cache.clear()
        await self._call(self._open_db)

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._call(self._close_db)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def create(self, info: RoomInfo) -> RoomInfo:
        if not info.room_id:
            raise ValueError("room_id must not be empty")
        created = await self._call(lambda: self._insert(info))
        self._cache[info.room_id] = created
        return created

    async def get(self, room_id: str) -> RoomInfo:
        cached = self._cache.get(room_id)
        if cached is not None:
            return cached
        info = await self._call(lambda: self._select(room_id))
        if info is None:
            raise RoomNotFoundError(room_id)
        self._cache[room_id] = info
        return info

    async def close_room(self, room_id: str, close_time_ms: int) -> RoomInfo:
        info = await self._call(lambda: self._mark_closed(room_id, close_time_ms))
        if info is None:
            self._cache.pop(room_id, None)
            raise RoomNotFoundError(room_id)
        self._cache[room_id] = info
        return info

    async def update(self, info: RoomInfo) -> RoomInfo:
        updated = await self._call(lambda: self._update(info))
        if updated is None:
            self._cache.pop(info.room_id, None)
            raise RoomNotFoundError(info.room_id)
        self._cache[info.room_id] = updated
        return updated

    async def list_rooms(self, query: RoomQuery) -> list[RoomInfo]:
        return await self._call(lambda: self._list(query))

    async def _call(self, fn: Callable[[], _T]) -> _T:
        if self._executor is None:
            raise RuntimeError("room directory is not open (start the log first)")
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.Error as e:
            # A full disk, an I/O error, a locked or damaged file: the directory did not
            # answer, which callers report as LOG_UNAVAILABLE (retry later), not UNKNOWN.
            self._failures += 1
            if self._failures == 1:
                _log.error("room directory %s failed: %s (further failures are counted)", self._db_path, e)
            raise LogUnavailableError(f"room directory failed: {e}") from e
        if self._failures:
            _log.warning("room directory %s answers again after %d failed call(s)", self._db_path, self._failures)
            self._failures = 0
        return result

    # --- on the directory thread ---

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("room directory is not open")
        return self._conn

    def _open_db(self) -> None:
        conn = sqlite3.connect(self._db_path, isolation_level=None)
        # WAL + synchronous=FULL: a committed create/close survives power loss.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(_SCHEMA)
        have = {row[1] for row in conn.execute("PRAGMA table_info(rooms)")}
        for name, decl in _METADATA_COLUMNS:
            if name not in have:
                conn.execute(f"ALTER TABLE rooms ADD COLUMN {name} {decl}")
        self._conn = conn

    def _close_db(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _insert(self, info: RoomInfo) -> RoomInfo:
        try:
            self._db().execute(
                f"INSERT INTO rooms ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.room_id,
                    info.title,
                    info.creator_user_id,
                    info.create_time_ms,
                    int(info.closed),
                    info.close_time_ms,
                    info.cover_url,
                    json.dumps(list(info.labels)),
                    info.announcement,
                ),
            )
        except sqlite3.IntegrityError as e:
            raise RoomExistsError(info.room_id) from e
        return info

    def _select(self, room_id: str) -> RoomInfo | None:
        row = self._db().execute(f"SELECT {_COLUMNS} FROM rooms WHERE room_id = ?", (room_id,)).fetchone()
        return None if row is None else _row_to_info(row)

    def _mark_closed(self, room_id: str, close_time_ms: int) -> RoomInfo | None:
        # Idempotent: the first close's time stands.
        self._db().execute(
            "UPDATE rooms SET closed = 1, close_time_ms = ? WHERE room_id = ? AND closed = 0",
            (close_time_ms, room_id),
        )
        return self._select(room_id)

    def _update(self, info: RoomInfo) -> RoomInfo | None:
        self._db().execute(
            "UPDATE rooms SET title = ?, cover_url = ?, labels = ?, announcement = ? WHERE room_id = ? AND closed = 0",
            (info.title, info.cover_url, json.dumps(list(info.labels)), info.announcement, info.room_id),
        )
        return self._select(info.room_id)

    def _list(self, query: RoomQuery) -> list[RoomInfo]:
        # Ordered by the primary key: a page is an index range scan from the token on.
        where = ["room_id > ?"]
        args: list[object] = [query.after]
        if query.closed is not None:
            where.append("closed = ?")
            args.append(int(query.closed))
        if query.owner:
            where.append("creator_user_id = ?")
            args.append(query.owner)
        if query.label:
            where.append("EXISTS (SELECT 1 FROM json_each(rooms.labels) WHERE json_each.value = ?)")
            args.append(query.label)
        sql = f"SELECT {_COLUMNS} FROM rooms WHERE {' AND '.join(where)} ORDER BY room_id LIMIT ?"
        rows = self._db().execute(sql, (*args, query.limit)).fetchall()
        return [_row_to_info(row) for row in rows]
