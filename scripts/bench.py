#!/usr/bin/env python3
"""Tributary benchmark driver. Run it through scripts/bench, which installs
prerequisites, builds the daemon, starts a private PostgreSQL and cleans up.

Scenarios (BENCHMARKS.md explains them):
  a  backlog drain: ROWS narrow rows in TXN_ROWS-row transactions written while
     nothing reads the slot; drained by pg_recvlogical (pgoutput -> /dev/null)
     and by tributary, each from its own clone of one untouched slot.
  b  one ROWS-row transaction drained by tributary.
  c  commit-to-durable latency at a steady paced load (pgbench --rate).
  d  initial snapshot: a SNAPSHOT_ROWS-row table of mixed columns read by one
     `COPY (SELECT * ...) TO STDOUT (FORMAT binary)` into /dev/null (the
     ceiling) and copied into the lake by `tributary run` with
     snapshot = "initial_only" (timed until the daemon exits by itself).

The environment gives the server: PGHOST, PGPORT, PGUSER, PG_BINDIR.
"""

import argparse
import datetime as dt
import glob
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

DB = "bench"
PUB = "bench_pub"
SNAP_TABLE = "snap"  # (d)
SNAP_PUB = "snap_pub"
POLL = 0.02  # seconds: checkpoint and pg_replication_slots polling interval


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------
# PostgreSQL helpers
# ---------------------------------------------------------------------------
class Psql:
    """One long-lived psql session (no driver dependency); cheap to poll."""

    def __init__(self, bindir, database):
        self.proc = subprocess.Popen(
            [os.path.join(bindir, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", database],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def query(self, sql):
        self.proc.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo __end__\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if line == "":
                raise BenchError(f"psql session ended while running: {sql}")
            line = line.rstrip("\n")
            if line == "__end__":
                return lines
            lines.append(line)

    def value(self, sql):
        rows = self.query(sql)
        return rows[0] if rows else None

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


def psql_run(bindir, sql, database=DB):
    subprocess.run([os.path.join(bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
                   check=True, stdout=subprocess.DEVNULL)


def lsn_text(lsn):
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def last_commit_end_lsn(pg, slot):
    """Exact end LSN of the last commit the slot would deliver: the commit rows of
    the SQL decoding interface carry the commit record's end LSN. Peek does not
    move the slot; decoding in the server is ~1.5M rows/s. The SQL interface
    decodes only flushed WAL: scripts/bench runs the server with
    synchronous_commit = on, so the load's last commit is flushed when it returns."""
    return int(pg.value(
        f"SELECT (max(lsn) - '0/0')::bigint FROM pg_logical_slot_peek_binary_changes("
        f"'{slot}', NULL, NULL, 'proto_version', '1', 'publication_names', '{PUB}')"))


def slot_confirmed(pg, slot):
    v = pg.value(f"SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = '{slot}'")
    return int(v) if v else 0


# ---------------------------------------------------------------------------
# Tributary helpers
# ---------------------------------------------------------------------------
def write_config(workdir, name, slot, port, table, publication=PUB, snapshot="never"):
    """(a)-(c) measure the stream alone: snapshot = "never", or the daemon would
    copy the table's existing rows (a fresh lake is a first start)."""
    lake = os.path.join(workdir, "lake")
    data = os.path.join(workdir, "data")
    os.makedirs(lake, exist_ok=True)
    os.makedirs(data, exist_ok=True)
    path = os.path.join(workdir, "tributary.toml")
    with open(path, "w") as f:
        f.write(f"""# written by scripts/bench (defaults for every flush setting)
[daemon]
data_dir = "{data}"

[sink.lake]
kind = "lake"
url = "{lake}"

[[source]]
name = "{name}"
kind = "postgres"
sink = "lake"
host = "127.0.0.1"
port = {port}
database = "{DB}"
user = "postgres"
slot = "{slot}"
publication = "{publication}"
manage_publication = false
tables = ["public.{table}"]
snapshot = "{snapshot}"
""")
    return path, lake


class Daemon:
    """tributary run, under GNU time -v when available; VmHWM polled as well."""

    def __init__(self, binary, config, logpath, gnu_time):
        self.logfile = open(logpath, "w")
        self.logpath = logpath
        self.time_out = logpath + ".time"
        cmd = [binary, "run", "--config", config]
        if gnu_time:
            cmd = [gnu_time, "-v", "-o", self.time_out] + cmd
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self.logfile, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        if gnu_time:
            self.pid = self._child_of(self.proc.pid)
        self.hwm_kb = 0

    @staticmethod
    def _child_of(ppid):
        for _ in range(500):
            try:
                with open(f"/proc/{ppid}/task/{ppid}/children") as f:
                    kids = f.read().split()
                if kids:
                    return int(kids[0])
            except FileNotFoundError:
                break
            time.sleep(0.002)
        raise BenchError("could not find tributary under /usr/bin/time")

    def poll_hwm(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.hwm_kb = max(self.hwm_kb, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass

    def alive(self):
        if self.proc.poll() is not None:
            return False
        return True

    def check_alive(self):
        if not self.alive():
            raise BenchError(f"tributary exited early (status {self.proc.returncode}); log {self.logpath}:\n" + tail(self.logpath))

    def stop(self, timeout=60):
        """SIGTERM, wait; returns (exit status, peak RSS MiB, user+sys CPU s or None)."""
        self.poll_hwm()
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while self.proc.poll() is None:
            self.poll_hwm()
            if time.time() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
                raise BenchError(f"tributary did not exit within {timeout} s of SIGTERM")
            time.sleep(POLL)
        rc, peak_mib, cpu = self._collect()
        if rc != 0:
            raise BenchError(f"tributary exited with status {rc} after SIGTERM; log {self.logpath}:\n" + tail(self.logpath))
        return rc, peak_mib, cpu

    def wait_exit(self, timeout):
        """Waits for tributary to exit by itself (polled every POLL s); returns
        (time it was seen gone, peak RSS MiB, user+sys CPU s or None). A run that
        exits non-zero, or is still running after `timeout` s, is an error."""
        deadline = self.started + timeout
        while self.proc.poll() is None:
            self.poll_hwm()
            if time.time() > deadline:
                raise BenchError(f"tributary still running {timeout:.0f} s after it started; log {self.logpath}:\n"
                                 + tail(self.logpath))
            time.sleep(POLL)
        ended = time.time()
        rc, peak_mib, cpu = self._collect()
        if rc != 0:
            raise BenchError(f"tributary exited by itself with status {rc}; log {self.logpath}:\n" + tail(self.logpath))
        return ended, peak_mib, cpu

    def _collect(self):
        """After exit: (exit status, peak RSS MiB, user+sys CPU s or None)."""
        self.logfile.close()
        rc = self.proc.returncode
        peak_kb, cpu = self.hwm_kb, None
        if os.path.exists(self.time_out):
            text = open(self.time_out).read()
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
            if m:
                peak_kb = max(peak_kb, int(m.group(1)))
            u = re.search(r"User time \(seconds\): ([\d.]+)", text)
            s = re.search(r"System time \(seconds\): ([\d.]+)", text)
            if u and s:
                cpu = float(u.group(1)) + float(s.group(1))
            m = re.search(r"Exit status: (\d+)", text)
            if m:
                rc = int(m.group(1))
            if "Command terminated by signal" in text:
                rc = -1
        return rc, peak_kb / 1024.0, cpu


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except FileNotFoundError:
        return "(no log)"


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def wait_checkpoint(daemon, checkpoint_path, pred, what, timeout):
    """Polls the checkpoint until pred(cp). A first start writes one before any
    flush (snapshot bookkeeping) with `resume` and `last_position` null."""
    deadline = time.time() + timeout
    last = None
    while True:
        daemon.check_alive()
        daemon.poll_hwm()
        cp = read_json(checkpoint_path)
        if cp is not None:
            last = cp
            if pred(cp):
                return time.time(), cp
        if time.time() > deadline:
            raise BenchError(f"timed out after {timeout} s waiting for {what}; last checkpoint: {json.dumps(last)}\n"
                             f"log:\n{tail(daemon.logpath)}")
        time.sleep(POLL)


def manifests(lake, source):
    out = []
    for path in sorted(glob.glob(os.path.join(lake, source, "_manifests", "*.json"))):
        m = read_json(path)
        if m is None:
            continue
        m["_mtime"] = os.stat(path).st_mtime
        m["_created"] = dt.datetime.fromisoformat(m["created_at"].replace("Z", "+00:00")).timestamp()
        out.append(m)
    return out


def lake_rows(ms):
    return sum(f["rows"] for m in ms for t in m["tables"] for f in t["files"])


def drain_with_tributary(args, pg, work, name, slot, table, end_lsn, expect_rows):
    """Runs tributary on `slot` until its checkpoint resumes at end_lsn, then
    measures how long the slot's acknowledgement trails the last durable manifest."""
    os.makedirs(work, exist_ok=True)
    config, lake = write_config(work, name, slot, args.port, table)
    checkpoint = os.path.join(lake, name, "_checkpoint.json")
    daemon = Daemon(args.tributary, config, os.path.join(work, "tributary.log"), args.gnu_time)
    try:
        t_done, _ = wait_checkpoint(
            daemon, checkpoint, lambda cp: (cp.get("resume") or {}).get("lsn", 0) >= end_lsn,
            f"checkpoint resume LSN >= {lsn_text(end_lsn)}", args.timeout)
        elapsed = t_done - daemon.started
        ms = manifests(lake, name)
        if not ms:
            raise BenchError("checkpoint reached the end but no manifest exists")
        last = ms[-1]
        durable_created, durable_mtime = last["_created"], last["_mtime"]
        deadline = time.time() + args.timeout
        while True:
            daemon.poll_hwm()
            confirmed = slot_confirmed(pg, slot)
            now = time.time()
            if confirmed >= end_lsn:
                break
            if now > deadline:
                raise BenchError(f"slot {slot} confirmed_flush_lsn {lsn_text(confirmed)} never reached {lsn_text(end_lsn)}")
            time.sleep(POLL)
        ack_after_created = now - durable_created
        ack_after_mtime = now - durable_mtime
    finally:
        if daemon.alive():
            _, peak_mib, cpu = daemon.stop()
        else:
            daemon.check_alive()
    rows = lake_rows(manifests(lake, name))
    if rows != expect_rows:
        raise BenchError(f"the lake holds {rows} rows, expected {expect_rows}")
    return {
        "seconds": elapsed, "rows_per_s": expect_rows / elapsed, "peak_rss_mib": peak_mib, "cpu_s": cpu,
        "ack_after_created_s": ack_after_created, "ack_after_mtime_s": ack_after_mtime,
        "manifests": len(ms), "lake": lake,
    }


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------
def setup_schema(args):
    psql_run(args.bindir, f"""
        SET client_min_messages = warning;
        DROP TABLE IF EXISTS narrow, ticks;
        CREATE TABLE narrow (id bigint PRIMARY KEY, a text, b int, c timestamptz);
        CREATE TABLE ticks  (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a text, b int, c timestamptz);
        DROP PUBLICATION IF EXISTS {PUB};
        CREATE PUBLICATION {PUB} FOR TABLE narrow, ticks;
        CREATE OR REPLACE PROCEDURE load_narrow(first bigint, total bigint, per_txn int)
        LANGUAGE plpgsql AS $$
        DECLARE s bigint := first;
        BEGIN
          WHILE s < first + total LOOP
            INSERT INTO narrow
            SELECT g, md5(g::text), (g % 100000)::int, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 millisecond'
            FROM generate_series(s, least(s + per_txn, first + total) - 1) g;
            COMMIT;
            s := s + per_txn;
          END LOOP;
        END $$;
    """)


def scenario_a(args, pg, results):
    log(f"(a) backlog: loading {args.rows:,} rows in {args.txn_rows:,}-row transactions behind slot 'base'")
    pg.query("SELECT pg_create_logical_replication_slot('base', 'pgoutput')")
    t0 = time.time()
    psql_run(args.bindir, f"CALL load_narrow(1, {args.rows}, {args.txn_rows})")
    load_s = time.time() - t0
    end_lsn = last_commit_end_lsn(pg, "base")
    wal_mib = (end_lsn - int(pg.value("SELECT (restart_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = 'base'"))) / 2**20
    log(f"    loaded in {load_s:.1f} s; last commit ends at {lsn_text(end_lsn)}; ~{wal_mib:.0f} MiB of WAL")
    results["a_wal_mib"] = wal_mib

    recv, trib = [], []
    for run in range(1, args.runs + 1):
        slot = f"recv{run}"
        pg.query(f"SELECT pg_copy_logical_replication_slot('base', '{slot}')")
        cmd = [os.path.join(args.bindir, "pg_recvlogical"), "-d", DB, "--slot", slot, "--start", "--no-loop",
               "-o", "proto_version=1", "-o", f"publication_names={PUB}",
               "--endpos", lsn_text(end_lsn), "-f", "/dev/null"]
        t0 = time.time()
        subprocess.run(cmd, check=True)
        secs = time.time() - t0
        pg.query(f"SELECT pg_drop_replication_slot('{slot}')")
        recv.append(args.rows / secs)
        log(f"    run {run}: pg_recvlogical {secs:.2f} s = {args.rows / secs:,.0f} rows/s")

        slot = f"trib{run}"
        pg.query(f"SELECT pg_copy_logical_replication_slot('base', '{slot}')")
        r = drain_with_tributary(args, pg, os.path.join(args.work, f"a{run}"), "bench", slot, "narrow", end_lsn, args.rows)
        pg.query(f"SELECT pg_drop_replication_slot('{slot}')")
        trib.append(r)
        log(f"    run {run}: tributary     {r['seconds']:.2f} s = {r['rows_per_s']:,.0f} rows/s, peak RSS {r['peak_rss_mib']:.0f} MiB, "
            f"slot acknowledged {r['ack_after_created_s'] * 1000:.0f} ms after the last manifest's created_at, {r['manifests']} manifests")
        shutil.rmtree(r["lake"], ignore_errors=True)
    pg.query("SELECT pg_drop_replication_slot('base')")
    results["a_recv_rows_s"] = statistics.median(recv)
    results["a_trib_rows_s"] = statistics.median(r["rows_per_s"] for r in trib)
    results["a_ratio"] = results["a_trib_rows_s"] / results["a_recv_rows_s"]
    results["a_peak_rss_mib"] = max(r["peak_rss_mib"] for r in trib)
    results["a_ack_s"] = max(r["ack_after_created_s"] for r in trib)
    results["a_ack_mtime_s"] = max(r["ack_after_mtime_s"] for r in trib)
    cpus = [r["cpu_s"] for r in trib if r["cpu_s"] is not None]
    results["a_cpu_s"] = statistics.median(cpus) if cpus else None
    results["a_runs"] = args.runs
    psql_run(args.bindir, "TRUNCATE narrow")


def scenario_b(args, pg, results):
    log(f"(b) one transaction of {args.rows:,} rows behind slot 'big'")
    pg.query("SELECT pg_create_logical_replication_slot('big', 'pgoutput')")
    psql_run(args.bindir, f"CALL load_narrow({args.rows + 1}, {args.rows}, {args.rows})")
    end_lsn = last_commit_end_lsn(pg, "big")
    r = drain_with_tributary(args, pg, os.path.join(args.work, "b"), "bench", "big", "narrow", end_lsn, args.rows)
    pg.query("SELECT pg_drop_replication_slot('big')")
    log(f"    tributary {r['seconds']:.2f} s = {r['rows_per_s']:,.0f} rows/s, peak RSS {r['peak_rss_mib']:.0f} MiB, {r['manifests']} manifests")
    results["b_rows_s"] = r["rows_per_s"]
    results["b_peak_rss_mib"] = r["peak_rss_mib"]
    results["b_ack_s"] = r["ack_after_created_s"]
    results["b_cpu_s"] = r["cpu_s"]
    shutil.rmtree(r["lake"], ignore_errors=True)
    psql_run(args.bindir, "TRUNCATE narrow")


def scenario_c(args, pg, results):
    batch = args.batch
    tps = args.rate / batch
    log(f"(c) latency: {args.rate:,} rows/s ({tps:.0f} commits/s of {batch} rows) for {args.seconds} s while tributary runs")
    work = os.path.join(args.work, "c")
    os.makedirs(work, exist_ok=True)
    config, lake = write_config(work, "lat", "lat", args.port, "ticks")
    daemon = Daemon(args.tributary, config, os.path.join(work, "tributary.log"), args.gnu_time)
    try:
        deadline = time.time() + 60
        while pg.value("SELECT active FROM pg_replication_slots WHERE slot_name = 'lat'") != "t":
            daemon.check_alive()
            if time.time() > deadline:
                raise BenchError("slot 'lat' not active after 60 s:\n" + tail(daemon.logpath))
            time.sleep(0.1)
        script = os.path.join(work, "insert.sql")
        with open(script, "w") as f:
            f.write(f"INSERT INTO ticks (a, b, c) SELECT md5(random()::text), g, now() FROM generate_series(1, {batch}) g;\n")
        clients = 2
        pgbench = subprocess.run(
            [os.path.join(args.bindir, "pgbench"), "-n", "-d", DB, "-f", script, "-c", str(clients), "-j", str(clients),
             "-R", f"{tps:.3f}", "-T", str(args.seconds)],
            check=True, capture_output=True, text=True)
        m = re.search(r"tps = ([\d.]+)", pgbench.stdout)
        achieved = float(m.group(1)) * batch if m else float("nan")
        lag = re.search(r"rate limit schedule lag: avg ([\d.]+)", pgbench.stdout)
        marker = int(pg.query(
            "BEGIN; SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint; "
            "INSERT INTO ticks (a, b, c) VALUES ('marker', -1, now()); COMMIT")[-1])
        wait_checkpoint(daemon, os.path.join(lake, "lat", "_checkpoint.json"),
                        lambda cp: (cp.get("last_position") or {}).get("commit_lsn", 0) > marker, "the marker row", args.timeout)
    finally:
        if daemon.alive():
            _, peak_mib, _ = daemon.stop()
        else:
            daemon.check_alive()
    pg.query("SELECT pg_drop_replication_slot('lat')")
    ms = manifests(lake, "lat")
    rows_expected = int(pg.value("SELECT count(*) FROM ticks"))
    if lake_rows(ms) != rows_expected:
        raise BenchError(f"latency lake holds {lake_rows(ms)} rows, the table {rows_expected}")
    lat = latency_quantiles(ms, lake)
    results.update({
        "c_target_rows_s": args.rate, "c_achieved_rows_s": achieved, "c_seconds": args.seconds, "c_batch": batch,
        "c_rows": rows_expected, "c_manifests": len(ms), "c_peak_rss_mib": peak_mib,
        "c_pgbench_lag_ms": float(lag.group(1)) if lag else None, **lat,
    })
    log(f"    achieved {achieved:,.0f} rows/s; commit -> manifest created_at p50 {lat['c_p50_ms']:.0f} ms, "
        f"p99 {lat['c_p99_ms']:.0f} ms, max {lat['c_max_ms']:.0f} ms (mtime-based p99 {lat['c_p99_mtime_ms']:.0f} ms)")
    shutil.rmtree(lake, ignore_errors=True)


def load_snapshot_table(args, pg):
    """(d): SNAPSHOT_ROWS rows of mixed columns, written server-side in one
    statement; the key is added afterwards (faster than maintaining it row by
    row) and VACUUM (FREEZE, ANALYZE) leaves hint bits set, the visibility map
    all-visible and reltuples known, so no reader pays for them."""
    n = args.snapshot_rows
    psql_run(args.bindir, f"""
        SET client_min_messages = warning;
        DROP TABLE IF EXISTS {SNAP_TABLE};
        CREATE TABLE {SNAP_TABLE} (
          id bigint NOT NULL, name text, amount numeric(12,2), qty int, price double precision,
          active bool, created timestamptz, tags text[], payload jsonb);
        INSERT INTO {SNAP_TABLE}
        SELECT g,
               'customer ' || left(md5(g::text), 11 + (g % 21)::int),
               ((g * 7919) % 100000000) / 100.0,
               (g % 1000)::int,
               CASE WHEN g % 50 = 0 THEN NULL ELSE (g % 100000) / 7.0 END,
               g % 3 <> 0,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
               CASE WHEN g % 20 = 0 THEN NULL ELSE ARRAY['t' || (g % 10), 'region-' || (g % 7)] END,
               jsonb_build_object('v', g % 1000, 'kind', 'k' || (g % 13), 'ok', g % 2 = 0)
        FROM generate_series(1::bigint, {n}) g;
        ALTER TABLE {SNAP_TABLE} ADD PRIMARY KEY (id);
        DROP PUBLICATION IF EXISTS {SNAP_PUB};
        CREATE PUBLICATION {SNAP_PUB} FOR TABLE {SNAP_TABLE};
    """)
    psql_run(args.bindir, f"VACUUM (FREEZE, ANALYZE) {SNAP_TABLE}")


def copy_ceiling(args):
    """One session: COPY (SELECT * FROM snap) TO STDOUT (FORMAT binary), received
    by psql and written to /dev/null; seconds from psql's start to its exit."""
    cmd = [os.path.join(args.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB,
           "-c", f"COPY (SELECT * FROM {SNAP_TABLE}) TO STDOUT (FORMAT binary)"]
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.time() - t0


def snapshot_with_tributary(args, pg, work, rows):
    """(d): tributary run with snapshot = "initial_only" on a fresh lake, timed
    from process start until it exits by itself (status 0); the lake must then
    hold exactly the table's rows, each once, all `r`."""
    os.makedirs(work, exist_ok=True)
    name = "snap"
    config, lake = write_config(work, name, "snap_slot", args.port, SNAP_TABLE,
                                publication=SNAP_PUB, snapshot="initial_only")
    daemon = Daemon(args.tributary, config, os.path.join(work, "tributary.log"), args.gnu_time)
    timeout = max(args.timeout, rows / 10_000)
    try:
        ended, peak_mib, cpu = daemon.wait_exit(timeout)
    finally:
        if daemon.alive():
            try:
                daemon.stop()
            except BenchError as e:
                log(f"    (stopping the timed-out run: {e})")
    elapsed = ended - daemon.started
    ms = manifests(lake, name)
    got = lake_rows(ms)
    if got != rows:
        raise BenchError(f"the lake holds {got} rows (sum of manifest file rows), the table {rows}; log {daemon.logpath}:\n"
                         + tail(daemon.logpath))
    check = lake_check(lake, ms)
    if check != (rows, rows, rows, 1, rows):
        raise BenchError(f"the lake's Parquet files hold (rows, distinct ids, 'r' rows, min id, max id) = {check}, "
                         f"expected ({rows}, {rows}, {rows}, 1, {rows})")
    leftover = pg.query("SELECT slot_name FROM pg_replication_slots")
    if leftover:
        log(f"    warning: replication slots left after initial_only: {', '.join(leftover)} (dropping them)")
        for slot in leftover:
            pg.query(f"SELECT pg_drop_replication_slot('{slot}')")
    return {
        "seconds": elapsed, "rows_per_s": rows / elapsed, "peak_rss_mib": peak_mib, "cpu_s": cpu,
        "manifests": len(ms), "files": sum(len(t["files"]) for m in ms for t in m["tables"]),
        "lake_mib": sum(f["bytes"] for m in ms for t in m["tables"] for f in t["files"]) / 2**20,
        "slots_left": leftover, "lake": lake, "log": daemon.logpath,
    }


def lake_check(lake, ms):
    """(rows, distinct ids, rows with _op = 'r', min id, max id) over the files the manifests list, with DuckDB."""
    import duckdb
    paths = [os.path.join(lake, f["path"]) for m in ms for t in m["tables"] for f in t["files"]]
    if not paths:
        return (0, 0, 0, None, None)
    lst = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
    return tuple(duckdb.connect().execute(
        f"SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE _op = 'r'), min(id), max(id) "
        f"FROM read_parquet({lst})").fetchone())


def scenario_d(args, pg, results):
    rows = args.snapshot_rows
    log(f"(d) initial snapshot: loading {rows:,} rows of mixed columns into '{SNAP_TABLE}'")
    t0 = time.time()
    load_snapshot_table(args, pg)
    load_s = time.time() - t0
    table_mib = int(pg.value(f"SELECT pg_table_size('{SNAP_TABLE}')")) / 2**20
    reltuples = float(pg.value(f"SELECT reltuples FROM pg_class WHERE relname = '{SNAP_TABLE}'"))
    log(f"    loaded in {load_s:.1f} s; table {table_mib:,.0f} MiB (heap + TOAST), reltuples {reltuples:,.0f}")
    workers = min(len(os.sched_getaffinity(0)), 32)  # tributary's default snapshot_workers
    copy, trib = [], []
    for run in range(1, args.runs + 1):
        secs = copy_ceiling(args)
        copy.append(secs)
        log(f"    run {run}: COPY binary   {secs:.2f} s = {rows / secs:,.0f} rows/s")
        r = snapshot_with_tributary(args, pg, os.path.join(args.work, f"d{run}"), rows)
        trib.append(r)
        log(f"    run {run}: tributary     {r['seconds']:.2f} s = {r['rows_per_s']:,.0f} rows/s, peak RSS {r['peak_rss_mib']:.0f} MiB, "
            f"CPU {fmt(r['cpu_s'], '.1f')} s, {r['manifests']} manifests, {r['files']} files, {r['lake_mib']:,.0f} MiB of Parquet")
        shutil.rmtree(r["lake"], ignore_errors=True)
    copy_rows_s = statistics.median(rows / s for s in copy)
    results.update({
        "d_rows": rows, "d_runs": args.runs, "d_workers": workers, "d_table_mib": table_mib, "d_load_s": load_s,
        "d_copy_seconds": statistics.median(copy), "d_copy_rows_s": copy_rows_s,
        "d_seconds": statistics.median(r["seconds"] for r in trib),
        "d_trib_rows_s": statistics.median(r["rows_per_s"] for r in trib),
        "d_peak_rss_mib": max(r["peak_rss_mib"] for r in trib),
        "d_lake_mib": statistics.median(r["lake_mib"] for r in trib),
        "d_manifests": statistics.median(r["manifests"] for r in trib),
        "d_slots_left": sorted({s for r in trib for s in r["slots_left"]}),
    })
    results["d_ratio"] = results["d_trib_rows_s"] / copy_rows_s
    cpus = [r["cpu_s"] for r in trib if r["cpu_s"] is not None]
    results["d_cpu_s"] = statistics.median(cpus) if cpus else None
    psql_run(args.bindir, f"DROP TABLE {SNAP_TABLE}; DROP PUBLICATION {SNAP_PUB}")


def latency_quantiles(ms, lake):
    """Per row: manifest created_at (and mtime) minus the row's _commit_ts, with DuckDB."""
    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE files (path VARCHAR, created DOUBLE, mtime DOUBLE)")
    rows = [(os.path.join(lake, f["path"]), m["_created"], m["_mtime"]) for m in ms for t in m["tables"] for f in t["files"]]
    con.executemany("INSERT INTO files VALUES (?, ?, ?)", rows)
    paths = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p, _, _ in rows) + "]"
    q = con.execute(f"""
        WITH d AS (
          SELECT filename, epoch_us(_commit_ts) / 1e6 AS committed FROM read_parquet({paths}, filename = true)
        )
        SELECT quantile_cont((f.created - d.committed) * 1000, 0.5),
               quantile_cont((f.created - d.committed) * 1000, 0.99),
               max((f.created - d.committed) * 1000),
               quantile_cont((f.mtime - d.committed) * 1000, 0.99),
               count(*)
        FROM d JOIN files f ON f.path = d.filename""").fetchone()
    return {"c_p50_ms": q[0], "c_p99_ms": q[1], "c_max_ms": q[2], "c_p99_mtime_ms": q[3], "c_rows_measured": q[4]}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def report(args, results):
    r = results
    verdict = lambda ok: "ok" if ok else "MISSED"
    lines = ["| measure | result | target |", "|---|---|---|"]
    if "a_recv_rows_s" in r:
        lines += [
            f"| (a) backlog, pg_recvlogical (pgoutput → /dev/null), median of {r['a_runs']} | {r['a_recv_rows_s']:,.0f} rows/s | reference |",
            f"| (a) backlog, tributary (→ Parquet + manifests, fsync'd), median of {r['a_runs']} | {r['a_trib_rows_s']:,.0f} rows/s | |",
            f"| (a) tributary / pg_recvlogical | {r['a_ratio']:.2f}× | ≥ 1.5× {verdict(r['a_ratio'] >= 1.5)} |",
            f"| (a) tributary peak RSS (max of runs) | {r['a_peak_rss_mib']:.0f} MiB | ≤ 150 MB {verdict(r['a_peak_rss_mib'] * 1.048576 <= 150)} |",
            f"| (a) tributary CPU (user+sys, median) | {fmt(r['a_cpu_s'], '.2f')} s | |",
            f"| (a) slot acknowledged after last manifest's created_at (max of runs; mtime-based) | {r['a_ack_s'] * 1000:.0f} ms ({r['a_ack_mtime_s'] * 1000:.0f} ms) | ≤ 1 s {verdict(r['a_ack_s'] <= 1.0)} |",
        ]
    if "b_rows_s" in r:
        lines += [
            f"| (b) one {args.rows:,}-row transaction, tributary | {r['b_rows_s']:,.0f} rows/s | |",
            f"| (b) tributary peak RSS | {r['b_peak_rss_mib']:.0f} MiB | ≤ 150 MB {verdict(r['b_peak_rss_mib'] * 1.048576 <= 150)} |",
            f"| (b) slot acknowledged after last manifest's created_at | {r['b_ack_s'] * 1000:.0f} ms | ≤ 1 s {verdict(r['b_ack_s'] <= 1.0)} |",
        ]
    if "c_p99_ms" in r:
        lines += [
            f"| (c) paced load: target / achieved | {r['c_target_rows_s']:,} / {r['c_achieved_rows_s']:,.0f} rows/s for {r['c_seconds']} s ({r['c_batch']} rows per commit) | |",
            f"| (c) commit → manifest created_at, p50 | {r['c_p50_ms']:.0f} ms | |",
            f"| (c) commit → manifest created_at, p99 (mtime-based) | {r['c_p99_ms']:.0f} ms ({r['c_p99_mtime_ms']:.0f} ms) | ≤ 1 s {verdict(r['c_p99_ms'] <= 1000)} |",
            f"| (c) commit → manifest created_at, max | {r['c_max_ms']:.0f} ms | |",
            f"| (c) tributary peak RSS | {r['c_peak_rss_mib']:.0f} MiB | |",
        ]
    if "d_trib_rows_s" in r:
        lines += [
            f"| (d) snapshot ceiling, one `COPY … TO STDOUT (FORMAT binary)` → /dev/null, median of {r['d_runs']} | {r['d_copy_rows_s']:,.0f} rows/s ({r['d_copy_seconds']:.1f} s) | reference |",
            f"| (d) initial snapshot, tributary `initial_only` ({r['d_workers']} workers, → Parquet + manifests, fsync'd), median of {r['d_runs']} | {r['d_trib_rows_s']:,.0f} rows/s ({r['d_seconds']:.1f} s) | |",
            f"| (d) tributary / COPY | {r['d_ratio']:.2f}× | ≥ 0.8× {verdict(r['d_ratio'] >= 0.8)} |",
            f"| (d) tributary peak RSS (max of runs) | {r['d_peak_rss_mib']:.0f} MiB | ≤ 300 MB {verdict(r['d_peak_rss_mib'] * 1.048576 <= 300)} |",
            f"| (d) tributary CPU (user+sys, median) | {fmt(r['d_cpu_s'], '.1f')} s | |",
        ]
    return "\n".join(lines)


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"


def rows_lines(args, results):
    lines = []
    if any(k[0] in "abc" for k in results):
        lines.append(f"- Rows: {args.rows:,} narrow rows (id bigint, a text, b int, c timestamptz); "
                     f"(a) in {args.txn_rows:,}-row transactions, ~{results.get('a_wal_mib', 0):.0f} MiB of WAL")
    if "d_rows" in results:
        lines.append(f"- (d) table: {results['d_rows']:,} rows (id bigint primary key, name text, amount numeric(12,2), "
                     f"qty int, price double precision, active bool, created timestamptz, tags text[], payload jsonb), "
                     f"{results['d_table_mib']:,.0f} MiB; lake after the copy ~{results['d_lake_mib']:,.0f} MiB of Parquet "
                     f"in {results['d_manifests']:.0f} manifests")
    return "\n".join(lines)


KEPT = "- Kept from an earlier run today: "


def kept_from(old_section, ran):
    """A run of some scenarios (--only) keeps today's earlier results of the
    others: their table rows, description lines, and which command and commit
    measured them."""
    if old_section is None:
        return [], []
    lines = old_section.splitlines()
    rows = [l for l in lines if re.match(r"\| \([a-z]\) ", l) and l[3] not in ran]
    if not rows:
        return [], []
    # Who measured each scenario of the old section: its own command, unless a
    # "Kept" line of its own names an earlier one.
    origin = {}
    for l in lines:
        if l.startswith(KEPT):
            m = re.match(r"((?:\([a-z]\)(?:, )?)+): (.*)$", l[len(KEPT):])
            if m:
                for x in re.findall(r"\(([a-z])\)", m.group(1)):
                    origin[x] = m.group(2)
    cmd = next((l[len("- Command: "):] for l in lines if l.startswith("- Command: ")), "?")
    at = next((l.split("; ")[-1] for l in lines if l.startswith("- Machine: ")), "")
    by = {}
    for x in sorted({l[3] for l in rows}):
        by.setdefault(origin.get(x, f"{cmd}; {at}"), []).append(x)
    notes = [KEPT + ", ".join(f"({x})" for x in xs) + ": " + o for o, xs in by.items()]
    letters = {l[3] for l in rows}
    if letters & set("abc") and not ran & set("abc"):
        notes += [l for l in lines if l.startswith("- Rows: ")]
    if "d" in letters:
        notes += [l for l in lines if l.startswith("- (d) table: ")]
    return rows, notes


def write_benchmarks(path, args, results, table, pg_version, commit):
    today = dt.date.today().isoformat()
    begin, end = f"<!-- bench-run {today} -->", f"<!-- /bench-run {today} -->"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    old = text.split(begin, 1)[1].split(end, 1)[0] if begin in text and end in text else None
    ran = {k[0] for k in results if k[1] == "_"}
    kept_rows, kept_notes = kept_from(old, ran)
    if kept_rows:
        head, body = table.split("\n")[:2], table.split("\n")[2:] + kept_rows
        table = "\n".join(head + sorted(body, key=lambda l: l[3]))  # stable: scenario order, rows in place
    description = "\n".join(l for l in [rows_lines(args, results)] + kept_notes if l)
    section = f"""{begin}
## Run of {today}

- Command: `{args.command}`
- Machine: {machine()}; PostgreSQL {pg_version} (private cluster: fsync and full_page_writes off, synchronous_commit on); tributary at `{commit}`
{description}

{table}
{end}
"""
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)
    log(f"wrote the results to {path} (section 'Run of {today}')")


def main():
    ap = argparse.ArgumentParser(description="Tributary benchmarks (run via scripts/bench)")
    ap.add_argument("--tributary", required=True)
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--txn-rows", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3, help="runs of (a) and (d), medians reported")
    ap.add_argument("--rate", type=int, default=25_000, help="(c) rows per second")
    ap.add_argument("--batch", type=int, default=100, help="(c) rows per transaction")
    ap.add_argument("--seconds", type=int, default=20, help="(c) duration")
    ap.add_argument("--snapshot-rows", type=int, default=5_000_000, help="(d) rows in the snapshotted table")
    ap.add_argument("--only", default="abcd", help="scenarios to run, e.g. 'a' or 'bd'")
    ap.add_argument("--timeout", type=float, default=180, help="seconds before a stuck run fails")
    ap.add_argument("--write", default=None, help="BENCHMARKS.md to update (omit to only print)")
    ap.add_argument("--command", default="scripts/bench")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args = ap.parse_args()
    args.bindir = os.environ["PG_BINDIR"]
    args.port = int(os.environ["PGPORT"])
    args.gnu_time = None
    if os.access("/usr/bin/time", os.X_OK):
        probe = subprocess.run(["/usr/bin/time", "-v", "true"], capture_output=True, text=True)
        if "Maximum resident set size" in probe.stderr:
            args.gnu_time = "/usr/bin/time"
    log("peak RSS from " + ("GNU time -v" if args.gnu_time else "VmHWM in /proc/<pid>/status (no GNU time)"))

    psql_run(args.bindir, f"CREATE DATABASE {DB}", database="postgres")
    setup_schema(args)
    pg = Psql(args.bindir, DB)
    results = {}
    try:
        if "a" in args.only:
            scenario_a(args, pg, results)
        if "b" in args.only:
            scenario_b(args, pg, results)
        if "c" in args.only:
            scenario_c(args, pg, results)
        if "d" in args.only:
            scenario_d(args, pg, results)
    finally:
        pg.close()
    table = report(args, results)
    print()
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    if args.write:
        pg_version = subprocess.run([os.path.join(args.bindir, "postgres"), "--version"], capture_output=True, text=True).stdout.split()[2]
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "unknown"
        write_benchmarks(args.write, args, results, table, pg_version, commit)


def interrupted(signum, _frame):
    raise BenchError(f"interrupted by signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        main()
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
    except subprocess.CalledProcessError as e:
        log(f"error: {' '.join(map(str, e.cmd))} failed with status {e.returncode}\n{e.stderr or ''}{e.stdout or ''}")
        sys.exit(1)
