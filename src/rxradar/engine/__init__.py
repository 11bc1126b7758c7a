"""The one place that knows which engine runs: everything else hands it SQL and gets Arrow back.

SQL lives in ``rxradar/sql/*.sql`` (DuckDB dialect, written once); values are bound parameters.
Canonical tables are views over the workspace's live Parquet files, whose list is bound through
a DuckDB variable rather than formatted into the SQL text.

Every statement that does real work is logged at DEBUG level with its time (``rxradar -vv``):
named by its SQL file, table or output file, never by what it read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from rxradar.schema import TABLES, Table

log = logging.getLogger(__name__)
STEP = "%s: %.2f s"  # how each step is logged: its label and seconds

# zstd at level 1: on the benchmark's 1,000,000 dispensations it writes about 15% faster than
# the default level 3 and the file is no larger (43 MB against 45 MB).
PARQUET = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1"
# Rows a partitioned write holds per partition before writing them out. DuckDB's default is
# 524,288. The analysis writes its fills in 39 partitions, so on 2 threads that holds about 41M
# rows in memory, which spill. At 131,072 rows (about one row group), writing the large state's
# 92M staged fills took 63-70 s, against 78-83 s at the default (alternating runs, same data).
PARTITION_FLUSH_ROWS = 131_072


class EngineError(RuntimeError):
    """The engine refused a statement or could not read its input."""


@cache
def sql_text(name: str) -> str:
    """Text of ``rxradar/sql/<name>.sql``."""
    return files("rxradar.sql").joinpath(f"{name}.sql").read_text()


class Engine:
    """A DuckDB connection with the workspace's canonical tables registered as views."""

    def __init__(self, *, memory_limit: str = "6GB", threads: int = 0, temp_directory: Path | None = None):
        config: dict[str, Any] = {"memory_limit": memory_limit, "preserve_insertion_order": False,
                                  "partitioned_write_flush_threshold": PARTITION_FLUSH_ROWS}
        if threads:
            config["threads"] = threads
        if temp_directory is not None:
            temp_directory.mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = str(temp_directory)
        self._con = duckdb.connect(config=config)
        # The engine's own progress bar would print over the CLI's (and fill a caller's stderr pipe).
        self._con.sql("SET enable_progress_bar = false")

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running SQL -----------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None,
              **tables: pa.Table) -> pa.Table:
        """Run one statement with bound ``params``; keyword Arrow tables are visible by name."""
        return self._query(_first_line(sql), sql, params, tables)

    def _query(self, label: str, sql: str, params: Sequence[Any] | Mapping[str, Any] | None,
               tables: Mapping[str, pa.Table]) -> pa.Table:
        for name, table in tables.items():
            self._con.register(name, table)
        try:
            return self._sql(label, lambda: self._con.sql(sql, params=params or None).to_arrow_table())
        finally:
            for name in tables:
                self._con.unregister(name)

    def _sql(self, label: str, statement: Callable[[], Any]) -> Any:
        """Run ``statement`` (a call into the engine), log its time under ``label``, and turn the
        engine's errors into EngineError."""
        start = time.perf_counter()
        try:
            return statement()
        except duckdb.Error as exc:
            raise EngineError(str(exc)) from exc
        finally:
            log.debug(STEP, label, time.perf_counter() - start)

    def run(self, name: str, params: Sequence[Any] | Mapping[str, Any] | None = None,
            **tables: pa.Table) -> pa.Table:
        """Run the SQL file ``rxradar/sql/<name>.sql``."""
        return self._query(name, sql_text(name), params, tables)

    def execute(self, name: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        """Run the statements of ``rxradar/sql/<name>.sql`` for their effect."""
        self._sql(name, lambda: self._con.sql(sql_text(name), params=params or None))

    def materialize(self, name: str, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Keep a query's result as temporary table ``name`` (spilled to disk when large)."""
        self._sql(f"table {name}",
                  lambda: self._con.sql(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params=params or None))

    def insert(self, name: str, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Append a query's result to table ``name`` (columns by position)."""
        self._sql(f"rows into {name}", lambda: self._con.sql(f"INSERT INTO {name} {sql}", params=params or None))

    def stage(self, name: str, sql: str, path: Path, params: Mapping[str, Any] | None = None) -> None:
        """Write a query's result to Parquet at ``path`` and make ``name`` a view over it: for
        intermediate results too large to hold in memory (a Parquet scan is cheap)."""
        self.copy_to_parquet(sql, path, params)
        self.view_over(name, [path])

    def view_over(self, name: str, paths: Sequence[Path | str], *, temporary: bool = True,
                  partitioned: bool = False) -> None:
        """View ``name`` over Parquet files, their list bound through a variable (never formatted
        into the SQL); files written at different times may differ in columns (union by name).
        With ``partitioned``, ``<column>=<value>`` folders (:meth:`copy_partitioned`) become a
        column, and a filter on it reads only the matching files."""
        self._con.sql(f"SET VARIABLE {name}__files = ?", params=[[str(p) for p in paths]])
        # Defining the view reads every file's footer: real work, timed, with many files.
        self._sql(f"view {name}: {len(paths)} file{'' if len(paths) == 1 else 's'}", lambda: self.define_view(
            name, f"SELECT * FROM read_parquet(getvariable('{name}__files'), union_by_name = true, "
                  f"hive_partitioning = {str(partitioned).lower()})", temporary=temporary))

    def define_view(self, name: str, sql: str, *, temporary: bool = True) -> None:
        self._con.sql(f"CREATE OR REPLACE {'TEMP ' if temporary else ''}VIEW {name} AS {sql}")

    def copy_partitioned(self, sql: str, folder: Path, column: str) -> None:
        """Write a query's result as Parquet files under ``folder/<column>=<value>/``, without the
        column itself in the files."""
        self._sql(f"write {folder.name}/ by {column}",
                  lambda: self._con.sql(f"COPY ({sql}) TO $folder ({PARQUET}, PARTITION_BY ({column}))",
                                        params={"folder": str(folder)}))

    def create_table(self, name: str, schema: pa.Schema) -> None:
        """An empty temporary table ``name`` with these columns (filled by :meth:`append`)."""
        self.query(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM __empty", __empty=schema.empty_table())

    def append(self, name: str, rows: pa.Table) -> None:
        """Add Arrow rows to temporary table ``name`` (the engine keeps them, spilling when large)."""
        self.query(f"INSERT INTO {name} SELECT * FROM __append", __append=rows)

    def function(self, name: str, fn: Callable[[pa.Array], pa.Array], params: list[str], returns: str) -> None:
        """A scalar SQL function computed in Python on Arrow vectors (nulls included), until
        :meth:`remove_function`."""
        self._con.create_function(name, fn, params, returns, type="arrow", null_handling="special")

    def remove_function(self, name: str) -> None:
        self._con.remove_function(name)

    def drop(self, name: str) -> None:
        self._con.sql(f"DROP TABLE IF EXISTS {name}")

    def set_variables(self, **values: Any) -> None:
        """Session variables read by SQL files with ``getvariable('name')``."""
        for name, value in values.items():
            self._con.sql(f"SET VARIABLE {name} = ?", params=[value])

    def register(self, name: str, table: pa.Table) -> None:
        self._con.register(name, table)

    def unregister(self, name: str) -> None:
        self._con.unregister(name)

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self._sql(_first_line(sql), lambda: self._con.sql(sql, params=params or None).fetchall())
        return rows[0][0] if rows else None

    # -- workspace tables --------------------------------------------------------------------
    def attach_tables(self, live_files: Mapping[str, list[str]], reference: Mapping[str, pa.Table]) -> None:
        """Create a view per canonical table over its Parquet files, plus reference tables.

        A table with no files yet is an empty view with the canonical schema, so every query
        works on a new workspace.
        """
        for name, table in reference.items():
            self._con.register(f"ref_{name}", table)
        for name, spec in TABLES.items():
            paths = live_files.get(name, [])
            self._view_over_files(f"{name}_records", spec, paths)
        self._con.sql(sql_text("canonical_views"))

    def _view_over_files(self, view: str, spec: Table, paths: list[str]) -> None:
        if paths:
            self.view_over(view, paths, temporary=False)
        else:
            self._con.register(f"{view}__empty", spec.schema.empty_table())
            self.define_view(view, f"SELECT * FROM {view}__empty", temporary=False)

    def copy_to_parquet(self, sql: str, path: Path, params: Mapping[str, Any] | None = None) -> None:
        """Write a query's result (``params`` bound by name) to one Parquet file."""
        self._copy(f"write {path.name}", sql, path, params)

    def copy_sql_to_parquet(self, name: str, path: Path) -> None:
        """Write the result of ``rxradar/sql/<name>.sql`` to a Parquet file."""
        self._copy(f"write {name}", sql_text(name), path, None)

    def _copy(self, label: str, sql: str, path: Path, params: Mapping[str, Any] | None) -> None:
        self._sql(label, lambda: self._con.sql(f"COPY ({sql}) TO $out_path ({PARQUET})",
                                               params={**(params or {}), "out_path": str(path)}))

    def rows_by_ingest(self, path: Path) -> dict[int, int]:
        """Rows per ingest_id in a Parquet file (read from the file's own column)."""
        rows = self._sql(f"rows by ingest of {path.name}",
                         lambda: self._con.sql("SELECT ingest_id, count(*) FROM read_parquet($p) GROUP BY ingest_id",
                                               params={"p": str(path)}).fetchall())
        return {int(i): int(n) for i, n in rows}

    def copy_to_csv(self, sql: str, path: Path, params: Sequence[Any] | None = None) -> None:
        self._sql(f"write {path.name}", lambda: self._con.sql(f"COPY ({sql}) TO ? (FORMAT csv, HEADER true)",
                                                               params=[*(params or []), str(path)]))


def _first_line(sql: str) -> str:
    """What a statement is called in the log: its first line (a comment, in the SQL files), cut short."""
    line = sql.strip().split("\n", 1)[0]
    return line if len(line) <= 60 else line[:57] + "..."

