#!/usr/bin/env python3
"""Bronze merge of a tributary lake with DuckDB.

Where it sits: downstream of the lake, beside any warehouse. It reads only
the files the manifests (<lake>/<source>/_manifests/*.json, in seq order)
list and applies the merge rule every manifest states, with the same SQL the
README prints. The Rust reference implementation is src/merge.rs; the
integration test tests/lake_merge.rs checks both give the same rows.

Usage:
    python3 scripts/lake_merge.py --lake <root dir> --source <name> --out <dir>
    python3 scripts/lake_merge.py --lake <root dir> --source <name> --print
    python3 scripts/lake_merge.py --lake <root dir> --source <name> --sql public.orders

--out writes <out>/<namespace.table>.parquet per table (data columns only).
Requires the DuckDB wheel: pip install duckdb
"""

import argparse
import json
import os
import sys

MANIFEST_VERSION = 2

# The merge rule as one query. Placeholders:
#   {changes}    every change of the table with the latest column names: one
#                SELECT per group of files written with the same columns,
#                renamed columns renamed back to their latest name and dropped
#                ones excluded, combined with UNION ALL BY NAME (a column
#                missing from a group is NULL there), e.g.
#                SELECT * RENAME ("b" AS "b2") FROM read_parquet(['a.parquet'])
#   {key}        key column list, e.g. "tenant", "id"  (tables without a key: _pos)
#   {columns}    one select item per data column: key columns as-is, every
#                other column as arg_max_null(col, CASE WHEN list_contains(_unchanged, 'col') THEN NULL ELSE _pos END);
#                a column holding a struct is then cast to its latest type (see STRUCT_CAST)
SQL_TEMPLATE = """\
WITH changes AS (
    {changes}
),
live AS (
    -- a truncate removes every row of the table with a smaller _pos
    SELECT * FROM changes
    WHERE _op <> 't'
      AND _pos > coalesce((SELECT max(_pos) FROM changes WHERE _op = 't'), '')
),
segments AS (
    -- per key, only changes after its latest delete count
    SELECT *, max(CASE WHEN _op = 'd' THEN _pos END) OVER (PARTITION BY {key}) AS _last_delete
    FROM live
)
SELECT
    {columns}
FROM segments
WHERE _last_delete IS NULL OR _pos > _last_delete
GROUP BY {key}
ORDER BY {key}"""

# arg_max_null takes the value of the row with the largest _pos even when that
# value is NULL (a real NULL written by the source), but skips rows whose
# ordering argument is NULL: that is how a column listed in _unchanged keeps
# the latest earlier value. Plain arg_max would also skip NULL values.
MERGED_VALUE = "arg_max_null({col}, CASE WHEN list_contains(_unchanged, {lit}) THEN NULL ELSE _pos END)"

# Struct columns (nested documents) evolve: files may hold a struct with fewer,
# more or reordered fields than the latest schema. read_parquet(union_by_name)
# and UNION ALL BY NAME merge them into one struct of every field ever
# written, in first-seen order; DuckDB casts structs by field name (absent
# fields NULL, extra ones dropped), so casting the merged value to the latest
# type gives the latest fields in the latest order, as src/merge.rs does.
STRUCT_CAST = "CAST({value} AS {type})"

# Lake types (ColumnType's serde tag) as DuckDB types.
DUCKDB_TYPES = {
    "bool": "BOOLEAN",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "text": "VARCHAR",
    "binary": "BLOB",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
}


def duckdb_type(data_type):
    """The DuckDB type of a lake type as the manifests serialise it."""
    kind = data_type["type"]
    if kind == "list":
        return duckdb_type(data_type["element"]) + "[]"
    if kind == "struct":
        fields = ", ".join(ident(f["name"]) + " " + duckdb_type(f["data_type"]) for f in data_type["fields"])
        return f"STRUCT({fields})"
    if kind == "decimal":
        # Parquet has no negative scales, so none reach a delta file.
        return f"DECIMAL({data_type['precision']}, {max(data_type['scale'], 0)})"
    if kind not in DUCKDB_TYPES:
        sys.exit(f"unknown lake type {kind!r} in a manifest: upgrade this script")
    return DUCKDB_TYPES[kind]


def has_struct(data_type):
    """Whether a lake type holds a struct (itself, or as a list's element)."""
    kind = data_type["type"]
    return kind == "struct" or (kind == "list" and has_struct(data_type["element"]))


def ident(name):
    return '"' + name.replace('"', '""') + '"'


def literal(text):
    return "'" + text.replace("'", "''") + "'"


def current_name(written, latest):
    """The latest name of a column written as `written` (None: dropped since).

    Columns are matched by id when both sides have ids (a rename keeps the
    id; a column dropped and added again gets a new one), else by name.
    """
    by_id = written.get("id") is not None and any(c.get("id") is not None for c in latest)
    for column in latest:
        if (column.get("id") == written.get("id")) if by_id else (column["name"] == written["name"]):
            return column["name"]
    return None


def changes_sql(table):
    """Every change of the table under its latest column names."""
    latest = table["columns"]
    groups = {}
    for path, written in table["files"]:
        exclude, rename = [], []
        for column in written:
            now = current_name(column, latest)
            if now is None:
                exclude.append(column["name"])
            elif now != column["name"]:
                rename.append((column["name"], now))
        groups.setdefault((tuple(exclude), tuple(rename)), []).append(path)
    selects = []
    for (exclude, rename), paths in groups.items():
        star = "*"
        if exclude:
            star += " EXCLUDE (" + ", ".join(ident(c) for c in exclude) + ")"
        if rename:
            # _unchanged names columns as they were written: rename them too.
            cases = " ".join(f"WHEN {literal(a)} THEN {literal(b)}" for a, b in rename)
            star += f" REPLACE (list_transform(_unchanged, lambda c: CASE c {cases} ELSE c END) AS _unchanged)"
            star += " RENAME (" + ", ".join(f"{ident(a)} AS {ident(b)}" for a, b in rename) + ")"
        files = "[" + ", ".join(literal(p) for p in paths) + "]"
        selects.append(f"SELECT {star} FROM read_parquet({files}, union_by_name = true)")
    return "\n    UNION ALL BY NAME\n    ".join(selects)


def merge_sql(table):
    """The merge query of one table (as gathered by read_tables)."""
    keys = table["key_columns"]
    items = []
    for column in table["columns"]:
        name = column["name"]
        value = ident(name) if name in keys else MERGED_VALUE.format(col=ident(name), lit=literal(name))
        if has_struct(column["data_type"]):
            value = STRUCT_CAST.format(value=value, type=duckdb_type(column["data_type"]))
        items.append(value if value == ident(name) else f"{value} AS {ident(name)}")
    return SQL_TEMPLATE.format(
        changes=changes_sql(table),
        key=", ".join(ident(k) for k in keys) if keys else "_pos",
        columns=",\n    ".join(items),
    )


def read_tables(lake, source):
    """Tables of a source from its manifests: latest columns and key, every file."""
    directory = os.path.join(lake, source, "_manifests")
    if not os.path.isdir(directory):
        sys.exit(f"no manifests in {directory}: check --lake and --source")
    names = sorted(n for n in os.listdir(directory) if n.endswith(".json") and n[:-5].isdigit())
    tables = {}
    for expected, name in enumerate(names, start=1):
        if int(name[:-5]) != expected:
            sys.exit(f"manifest {expected} of {source} is missing: the manifest log must be gapless")
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            manifest = json.load(f)
        if manifest["manifest_version"] > MANIFEST_VERSION:
            sys.exit(f"{name} has manifest version {manifest['manifest_version']}; upgrade this script")
        for entry in manifest["tables"]:
            table = tables.setdefault(entry["table"], {"files": [], "seen": set(), "last_pos": ""})
            # The latest schema is that of the newest changes (one flush may
            # hold several shapes of a table, listed by fingerprint).
            if entry["last_pos"] >= table["last_pos"]:
                table["columns"] = entry["columns"]
                table["key_columns"] = entry["key_columns"]
                table["last_pos"] = entry["last_pos"]
            for file in entry["files"]:
                path = os.path.join(lake, file["path"])
                if path not in table["seen"]:
                    table["seen"].add(path)
                    table["files"].append((path, entry["columns"]))
    return tables


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", required=True, help="lake root directory")
    parser.add_argument("--source", required=True, help="source name")
    parser.add_argument("--out", help="write <out>/<namespace.table>.parquet per table")
    parser.add_argument("--print", action="store_true", help="print the merged rows")
    parser.add_argument("--sql", metavar="TABLE", help="print the merge SQL of TABLE (namespace.name)")
    args = parser.parse_args()
    if not (args.out or args.print or args.sql):
        parser.error("give --out, --print or --sql")

    tables = read_tables(args.lake, args.source)
    if args.sql:
        if args.sql not in tables:
            sys.exit(f"no table {args.sql}; tables: {', '.join(sorted(tables))}")
        print(merge_sql(tables[args.sql]) + ";")
        if not (args.out or args.print):
            return

    try:
        import duckdb
    except ImportError:
        sys.exit("the DuckDB Python wheel is missing: run `pip install duckdb`")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    for name, table in sorted(tables.items()):
        sql = merge_sql(table)
        if args.out:
            target = os.path.join(args.out, name + ".parquet")
            con.execute(f"COPY ({sql}) TO {literal(target)} (FORMAT parquet, COMPRESSION zstd)")
        if args.print:
            print(f"== {name}")
            con.sql(sql).show(max_rows=1_000_000, max_width=10_000)


if __name__ == "__main__":
    main()
