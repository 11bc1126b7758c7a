"""SQL files (DuckDB dialect), read by rxradar.engine."""
