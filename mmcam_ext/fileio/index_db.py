"""The streaming index of a dump: one SQLite file per process.

While a run goes, each process appends its rows to its own
``index.sqlite`` (``index.rank1.sqlite`` for rank 1 of a DDP run) in the
dump folder. A row is committed only after the files it points to (its map
in the store, its descriptor) were handed to the operating system, so
after a kill at any point every committed row is complete; the rows of a
sample still in flight are simply absent. SQLite runs in WAL mode with
``synchronous=NORMAL``: a commit survives the death of the process (a
``SIGKILL``, the OOM killer, a preempted job) at the cost of one write,
without an ``fsync``; after a power loss the last commits may be lost, never
a half row. The store's arrays are ``fsync``-ed when the writer closes.

Tables (query them with any SQLite client)::

    rows(seq, dataset_index, img_path, gt, pred, ..., extra)   -- one row
        per (sample, target, method); the columns of INDEX_FIELDS, and
        'extra' (JSON) for columns of other output writers
    meta(key, value)          -- JSON values: phase, methods, classes,
                                 target_layers, model_fingerprint...
    expected(dataset_index, img_path)  -- samples the run set out to
                                 explain, where known (for 'missing')
    classes(idx, name)        -- the class names
    named_rows                -- view: rows + gt_name, pred_name

For example::

    sqlite3 index.sqlite "SELECT dataset_index, score FROM named_rows
                          WHERE misclassified AND pred_name = 'alarm'"

The final ``index.json``/``index.csv`` is written from these files when the
run ends (or by ``python -m mmcam_ext dump finish DUMP_DIR`` after a kill).
"""

import json
import sqlite3
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import InputError
from .cam_dump import INDEX_FIELDS

__all__ = ['IndexDB', 'shard_paths', 'read_shard', 'db_name', 'DB_GLOB']

#: Name pattern of the shards of one dump folder.
DB_GLOB = 'index*.sqlite'
_INT = {'dataset_index', 'gt', 'pred', 'target', 'raw_row', 'rank', 'desc_row'}
_REAL = {'score', 'target_score', 'center_energy'}
_BOOL = {'misclassified', 'blank'}


def db_name(suffix: str = '') -> str:
    """The shard file of a process (``suffix``: ``'.rank1'``)."""
    return f'index{suffix}.sqlite'


def _sql_type(name: str) -> str:
    if name in _INT or name in _BOOL:
        return 'INTEGER'
    return 'REAL' if name in _REAL else 'TEXT'


class IndexDB:
    """One process's shard of the streaming index.

    Used from one thread (the writer's): SQLite connections are not shared
    between threads.

    Args:
        path (str | Path): The ``.sqlite`` file (created with its tables).
    """

    def __init__(self, path: Any) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path))
        self.db.execute('PRAGMA journal_mode=WAL')
        self.db.execute('PRAGMA synchronous=NORMAL')
        cols = ', '.join(f'"{n}" {_sql_type(n)}' for n in INDEX_FIELDS)
        self.db.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS rows(
                seq INTEGER PRIMARY KEY, {cols}, extra TEXT);
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS expected(
                dataset_index INTEGER PRIMARY KEY, img_path TEXT);
            CREATE TABLE IF NOT EXISTS classes(
                idx INTEGER PRIMARY KEY, name TEXT);
            CREATE VIEW IF NOT EXISTS named_rows AS
                SELECT r.*, g.name AS gt_name, p.name AS pred_name
                FROM rows r LEFT JOIN classes g ON g.idx = r.gt
                LEFT JOIN classes p ON p.idx = r.pred;
            """
        )
        self.db.commit()
        names = ', '.join(f'"{n}"' for n in INDEX_FIELDS)
        marks = ', '.join('?' for _ in range(len(INDEX_FIELDS) + 1))
        self._insert = f'INSERT INTO rows({names}, extra) VALUES ({marks})'

    def add(self, rows: Iterable[Dict[str, Any]]) -> None:
        """Insert rows (visible to readers at the next :meth:`commit`)."""
        values = []
        for row in rows:
            extra = {k: v for k, v in row.items() if k not in INDEX_FIELDS}
            values.append(
                tuple(_to_sql(row.get(n)) for n in INDEX_FIELDS)
                + (json.dumps(extra) if extra else None,)
            )
        self.db.executemany(self._insert, values)

    def set_meta(self, meta: Dict[str, Any]) -> None:
        """Store meta values (JSON) and the class names; committed now."""
        self.db.executemany(
            'INSERT OR REPLACE INTO meta VALUES (?, ?)',
            [(k, json.dumps(v)) for k, v in meta.items()],
        )
        classes = meta.get('classes')
        if classes:
            self.db.executemany(
                'INSERT OR REPLACE INTO classes VALUES (?, ?)',
                list(enumerate(map(str, classes))),
            )
        self.db.commit()

    def expect(
        self, indices: Sequence[int], paths: Optional[Sequence[str]] = None
    ) -> None:
        """Record the samples this run sets out to explain; committed."""
        paths = paths if paths is not None else [''] * len(indices)
        self.db.executemany(
            'INSERT OR REPLACE INTO expected VALUES (?, ?)',
            [(int(i), str(p)) for i, p in zip(indices, paths)],
        )
        self.db.commit()

    def commit(self) -> None:
        """Make the rows added so far visible and durable."""
        self.db.commit()

    def close(self) -> None:
        """Commit and close (a checkpoint folds the WAL into the file)."""
        self.db.commit()
        self.db.close()


def _to_sql(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, 'item'):  # NumPy scalars
        return value.item()
    return value


def shard_paths(folder: Any) -> List[Path]:
    """The index shards of a dump folder, rank order."""
    return sorted(Path(folder).glob(DB_GLOB), key=_rank_of)


def _rank_of(path: Path) -> Tuple[int, str]:
    middle = path.name[len('index') : -len('.sqlite')]
    digits = middle.replace('.rank', '')
    return (int(digits) if digits.isdigit() else 0), path.name


def read_shard(
    path: Any,
) -> Tuple[Dict[str, Any], List[Dict[str, Any]], Dict[int, str]]:
    """Meta, committed rows and expected samples of one shard.

    Reads what was committed, also from a shard whose process was killed
    (SQLite recovers its write-ahead log).

    Args:
        path (str | Path): The ``.sqlite`` file.

    Returns:
        tuple: ``(meta, rows, expected)``: rows as dicts with the
        :data:`INDEX_FIELDS` typed (bools as bools) plus other writers'
        columns; ``expected`` maps dataset index to image path.

    Raises:
        InputError: The file is not a CAM index SQLite database.
    """
    try:
        return _read_shard(sqlite3.connect(str(path)))
    except sqlite3.DatabaseError as exc:
        raise InputError(
            f'{path} is not a readable CAM index ({exc}). Move it out of '
            'the dump folder to read the other shards.'
        ) from exc


def _read_shard(
    db: sqlite3.Connection,
) -> Tuple[Dict[str, Any], List[Dict[str, Any]], Dict[int, str]]:
    """See :func:`read_shard`; closes ``db``."""
    try:
        meta = {k: json.loads(v) for k, v in db.execute('SELECT * FROM meta')}
        names = list(INDEX_FIELDS) + ['extra']
        cols = ', '.join(f'"{n}"' for n in names)
        rows = []
        for values in db.execute(f'SELECT {cols} FROM rows ORDER BY seq'):
            row = dict(zip(names, values))
            extra = row.pop('extra')
            for key in _BOOL:
                row[key] = bool(row[key]) if row[key] is not None else False
            row.update(json.loads(extra) if extra else {})
            rows.append(row)
        expected = dict(db.execute('SELECT * FROM expected'))
    finally:
        db.close()
    return meta, rows, expected
