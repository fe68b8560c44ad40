#!/usr/bin/env python3
"""Compares the demo's source tables with the lake merged by scripts/lake_merge.py.

Used by scripts/demo. Reads the source with psql (PGHOST/PGPORT/PGUSER from the
environment, database from --database) and the merged lake with DuckDB, turns
each row into the same canonical text form on both sides (numeric as its exact
decimal text, timestamptz as epoch microseconds, jsonb as parsed JSON, large
text as length + md5), prints both, clearly labelled, and exits 1 with the
differences if they differ.

    demo_compare.py --database demo --merged DIR [--psql PATH] [--quiet]
"""

import argparse
import csv
import glob
import io
import json
import os
import subprocess
import sys

import duckdb

NULL = "∅"

# Per table: (column label, PostgreSQL expression, DuckDB expression, kind).
# Both expressions yield text (or NULL, shown as ∅); kind "json" compares parsed JSON.
TABLES = {
    "public.customers": [
        ("id", "id::text", "CAST(id AS VARCHAR)", "text"),
        ("name", "name", "name", "text"),
        ("email", "email", "email", "text"),
        ("balance", "balance::text", "CAST(balance AS VARCHAR)", "text"),
        ("vip", "vip::text", "CAST(vip AS VARCHAR)", "text"),
        ("created_at_us", "(extract(epoch FROM created_at) * 1000000)::bigint::text",
         "CAST(epoch_us(created_at) AS VARCHAR)", "text"),
        ("prefs", "prefs::text", "CAST(prefs AS VARCHAR)", "json"),
        ("notes", "'len=' || length(notes) || ' md5=' || left(md5(notes), 12)",
         "'len=' || length(notes) || ' md5=' || left(md5(notes), 12)", "text"),
    ],
    "public.orders": [
        ("id", "id::text", "CAST(id AS VARCHAR)", "text"),
        ("customer_id", "customer_id::text", "CAST(customer_id AS VARCHAR)", "text"),
        ("qty", "qty::text", "CAST(qty AS VARCHAR)", "text"),
        ("amount", "amount::text", "CAST(amount AS VARCHAR)", "text"),
        ("status", "status", "status", "text"),
        ("placed_at_us", "(extract(epoch FROM placed_at) * 1000000)::bigint::text",
         "CAST(epoch_us(placed_at) AS VARCHAR)", "text"),
        ("items", "items::text", "CAST(items AS VARCHAR)", "json"),
    ],
}


def source_rows(psql, database, table, spec):
    exprs = ", ".join(f"coalesce({pg}, '{NULL}')" for _, pg, _, _ in spec)
    sql = f"COPY (SELECT {exprs} FROM {table} ORDER BY id) TO STDOUT (FORMAT csv)"
    out = subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
                         check=True, capture_output=True, text=True).stdout
    return [tuple(r) for r in csv.reader(io.StringIO(out))]


def merged_files(merged, table):
    """Finds lake_merge.py's output for one table (a file or a folder of files)."""
    name = table.split(".", 1)[1]
    candidates = []
    for stem in (table, name, table.replace(".", "/"), table.replace(".", "_")):
        for ext in ("parquet", "csv"):
            candidates.append(os.path.join(merged, f"{stem}.{ext}"))
            candidates.extend(sorted(glob.glob(os.path.join(merged, stem, f"**/*.{ext}"), recursive=True)))
    for c in candidates:
        if os.path.isfile(c):
            if os.path.basename(c) in (f"{table}.parquet", f"{table}.csv", f"{name}.parquet", f"{name}.csv"):
                return [c]
            folder = os.path.dirname(c)
            ext = c.rsplit(".", 1)[1]
            return sorted(glob.glob(os.path.join(folder, f"**/*.{ext}"), recursive=True))
    return []


def lake_rows(con, merged, table, spec):
    files = merged_files(merged, table)
    if not files:
        listing = "\n  ".join(sorted(os.path.relpath(p, merged) for p in glob.glob(os.path.join(merged, "**"), recursive=True)))
        raise SystemExit(f"demo_compare: no merged output for {table} in {merged}; it holds:\n  {listing}")
    reader = "read_parquet" if files[0].endswith(".parquet") else "read_csv_auto"
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    exprs = ", ".join(f"coalesce({dk}, '{NULL}')" for _, _, dk, _ in spec)
    rows = con.execute(f"SELECT {exprs} FROM {reader}({file_list}) ORDER BY CAST(id AS BIGINT)").fetchall()
    return [tuple(r) for r in rows]


def canonical(row, spec):
    out = []
    for value, (_, _, _, kind) in zip(row, spec):
        if kind == "json" and value != NULL:
            value = json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"))
        out.append(value)
    return tuple(out)


def show(title, spec, rows):
    labels = [c[0] for c in spec]
    widths = [len(l) for l in labels]
    for r in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, r)]
    widths = [min(w, 48) for w in widths]

    def fmt(cells):
        return "  " + " | ".join((c if len(c) <= w else c[: w - 1] + "…").ljust(w) for c, w in zip(cells, widths))

    print(title)
    print(fmt(labels))
    print("  " + "-+-".join("-" * w for w in widths))
    for r in rows:
        print(fmt(r))
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database", required=True)
    ap.add_argument("--merged", required=True, help="the --out directory of scripts/lake_merge.py")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--quiet", action="store_true", help="print only differences")
    args = ap.parse_args()

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    problems = []
    for table, spec in TABLES.items():
        src = [canonical(r, spec) for r in source_rows(args.psql, args.database, table, spec)]
        lake = [canonical(r, spec) for r in lake_rows(con, args.merged, table, spec)]
        if not args.quiet:
            show(f"== source  {table}: {len(src)} rows (PostgreSQL, now)", spec, src)
            show(f"== lake    {table}: {len(lake)} rows (deltas merged by scripts/lake_merge.py)", spec, lake)
        src_by_id = {r[0]: r for r in src}
        lake_by_id = {r[0]: r for r in lake}
        for key in sorted(set(src_by_id) | set(lake_by_id), key=int):
            s, l = src_by_id.get(key), lake_by_id.get(key)
            if s == l:
                continue
            if l is None:
                problems.append(f"{table} id={key}: in the source, missing from the lake: {s}")
            elif s is None:
                problems.append(f"{table} id={key}: in the lake, not in the source: {l}")
            else:
                diffs = [f"{c[0]}: source={a!r} lake={b!r}" for c, a, b in zip(spec, s, l) if a != b]
                problems.append(f"{table} id={key}: " + "; ".join(diffs))
        if len(lake) != len(lake_by_id):
            problems.append(f"{table}: the merged lake holds duplicate keys ({len(lake)} rows, {len(lake_by_id)} keys)")
    if problems:
        print(f"demo: lake DIFFERS from source ({len(problems)} difference(s)):")
        for p in problems[:50]:
            print("  " + p)
        if len(problems) > 50:
            print(f"  … and {len(problems) - 50} more")
        sys.exit(1)


if __name__ == "__main__":
    main()
