#!/usr/bin/env python3
"""MySQL/MariaDB backlog drain: tributary vs the binlog read ceiling.

Run by scripts/bench-mysql (which builds the release binary). Starts a private
MariaDB (binlog ROW, GTID) in a scratch dir, loads --rows rows (id bigint,
a varchar, b int, c timestamp; transactions of --txn-rows rows, the PostgreSQL
benchmark's shape), then measures on the same binlog range:

  ceiling    mariadb-binlog --read-from-remote-server from the range's start to
             /dev/null (the server's binlog dump plus the client's decode: the
             physical cost of reading these events over the wire);
  tributary  the daemon restarted at the range's start (checkpoint from a run
             before the load, snapshot = "never") until its checkpoint reaches
             the range's end: binlog read, rows decoded to envelopes, Parquet
             written with fsync, manifests and checkpoints.

Prints rows/s of both and the ratio (target >= 0.9), and the daemon's CPU
time per run (user + system, start to clean stop). Medians over --runs.
With --perf FILE the last tributary run is recorded by `perf record` (call
graphs by default, see --perf-args); its time then includes perf's overhead:
the profile is for `perf report -i FILE`, not for the table.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def log(msg):
    print(f"bench-mysql: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mariadb:
    def __init__(self, work):
        self.dir = os.path.join(work, "mariadb")
        os.makedirs(self.dir)
        subprocess.run(["chown", "-R", "mysql:mysql", self.dir], check=True)
        data = os.path.join(self.dir, "data")
        subprocess.run(["runuser", "-u", "mysql", "--", "mariadb-install-db", "--no-defaults",
                        f"--datadir={data}", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["runuser", "-u", "mysql", "--", "mariadbd", "--no-defaults", f"--datadir={data}",
             "--bind-address=127.0.0.1", f"--port={self.port}",
             f"--socket={self.dir}/mysqld.sock", f"--pid-file={self.dir}/mysqld.pid",
             f"--log-error={self.dir}/error.log", "--skip-name-resolve", "--server-id=1",
             f"--log-bin={data}/binlog", "--binlog-format=ROW", "--binlog-row-image=FULL",
             "--binlog-row-metadata=FULL", "--gtid-domain-id=0", "--gtid-strict-mode=1",
             "--innodb-buffer-pool-size=256M", "--innodb-flush-log-at-trx-commit=2",
             "--sync-binlog=0", "--max-binlog-size=1G"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            if subprocess.run(["mariadb-admin", "-h127.0.0.1", f"-P{self.port}", "-uroot", "ping"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        sys.exit("bench-mysql: MariaDB did not start")

    def sql(self, text):
        out = subprocess.run(["mariadb", "-h127.0.0.1", f"-P{self.port}", "-uroot", "-N", "-B", "-e", text],
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"bench-mysql: SQL failed: {out.stderr.strip()}\n{text[:300]}")
        return out.stdout.strip()

    def position(self):
        file, pos = self.sql("SHOW MASTER STATUS").split("\t")[:2]
        return file, int(pos)

    def stop(self):
        try:
            with open(f"{self.dir}/mysqld.pid") as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
        except OSError:
            pass
        self.proc.wait()


def write_config(work, port, name):
    root = os.path.join(work, name)
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, "tributary.toml")
    with open(path, "w") as f:
        f.write(f"""[daemon]
data_dir = "{root}/data"

[sink.lake]
kind = "lake"
url = "{root}/lake"

[[source]]
name = "bench"
kind = "mysql"
sink = "lake"
host = "127.0.0.1"
port = {port}
user = "root"
server_id = 900
tables = ["bench.t"]
snapshot = "never"
heartbeat_ms = 200
""")
    return root, path


def checkpoint_pos(root):
    try:
        with open(os.path.join(root, "lake", "bench", "_checkpoint.json")) as f:
            resume = json.load(f).get("resume") or {}
    except (OSError, ValueError):
        return None
    file = resume.get("file") or {}
    return file.get("file"), file.get("pos")


def wait_checkpoint(proc, root, target, timeout):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        pos = checkpoint_pos(root)
        if pos and pos[0] is not None and (pos[0], pos[1]) >= target:
            return time.monotonic()
        if proc.poll() is not None:
            sys.exit(f"bench-mysql: the daemon exited ({proc.returncode}); see {root}/daemon.log")
        time.sleep(0.02)
    sys.exit(f"bench-mysql: the checkpoint did not reach {target} in {timeout}s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tributary", required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--txn-rows", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--perf", metavar="FILE", help="record the last tributary run with perf record")
    ap.add_argument("--perf-args", default="--call-graph dwarf,16384 -F 499",
                    help="perf record options (default: %(default)s)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tributary-bench-mysql.")
    os.chmod(work, 0o755)
    db = Mariadb(work)
    try:
        db.sql("CREATE DATABASE bench; CREATE TABLE bench.t (id BIGINT PRIMARY KEY, a VARCHAR(64), b INT, c TIMESTAMP(6) NULL)")
        # One daemon run per measurement, each with its checkpoint at the
        # start of the load: start each once before loading, then stop.
        roots = []
        for i in range(args.runs):
            root, cfg = write_config(work, db.port, f"run{i}")
            with open(os.path.join(root, "daemon.log"), "a") as logf:
                proc = subprocess.Popen([args.tributary, "run", "--config", cfg], stdout=logf, stderr=logf)
                start = db.position()
                db.sql(f"INSERT INTO bench.t VALUES ({-1 - i}, 'start', 0, NULL)")
                wait_checkpoint(proc, root, db.position(), 60)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            roots.append((root, cfg))
        first_file, first_pos = db.position()
        log(f"loading {args.rows} rows in transactions of {args.txn_rows}")
        t0 = time.monotonic()
        batch = args.txn_rows
        for lo in range(0, args.rows, batch * 50):
            stmts = []
            for s in range(lo, min(lo + batch * 50, args.rows), batch):
                hi = min(s + batch, args.rows)
                stmts.append(
                    "INSERT INTO bench.t SELECT seq, CONCAT('row-', seq, '-', REPEAT('x', 20)), seq % 1000, "
                    f"TIMESTAMP('2024-01-01') + INTERVAL seq SECOND FROM bench.seq_{s}_to_{hi - 1};")
            db.sql("".join(stmts))
        end = db.position()
        log(f"loaded in {time.monotonic() - t0:.1f}s; binlog {first_file}:{first_pos} → {end[0]}:{end[1]}")

        ceilings, verbose, ours, cpu = [], [], [], []
        for i in range(args.runs):
            t0 = time.monotonic()
            subprocess.run(["mariadb-binlog", "--read-from-remote-server", "-h127.0.0.1", f"-P{db.port}", "-uroot",
                            f"--start-position={first_pos}", f"--stop-position={end[1]}", first_file],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            ceilings.append(time.monotonic() - t0)
            t0 = time.monotonic()
            subprocess.run(["mariadb-binlog", "--read-from-remote-server", "-h127.0.0.1", f"-P{db.port}", "-uroot",
                            "--verbose", f"--start-position={first_pos}", f"--stop-position={end[1]}", first_file],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            verbose.append(time.monotonic() - t0)
            root, cfg = roots[i]
            with open(os.path.join(root, "daemon.log"), "a") as logf:
                cmd = [args.tributary, "run", "--config", cfg]
                if args.perf and i == args.runs - 1:
                    cmd = ["perf", "record", *args.perf_args.split(), "-o", os.path.abspath(args.perf), "--"] + cmd
                t0 = time.monotonic()
                proc = subprocess.Popen(cmd, stdout=logf, stderr=logf)
                done = wait_checkpoint(proc, root, end, 600)
                ours.append(done - t0)
                proc.send_signal(signal.SIGTERM)
                # CPU time of the whole run (start, drain, clean stop): less
                # sensitive than wall time to other work on the machine.
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                cpu.append(usage.ru_utime + usage.ru_stime)
            log(f"run {i + 1}: mariadb-binlog {ceilings[-1]:.2f}s (--verbose {verbose[-1]:.2f}s), "
                f"tributary {ours[-1]:.2f}s ({cpu[-1]:.2f}s CPU)")
        c, v, t = statistics.median(ceilings), statistics.median(verbose), statistics.median(ours)
        print(json.dumps({
            "rows": args.rows, "txn_rows": args.txn_rows, "runs": args.runs,
            "ceiling_s": round(c, 2), "tributary_s": round(t, 2),
            "ceiling_rows_per_s": round(args.rows / c), "tributary_rows_per_s": round(args.rows / t),
            "ratio": round(c / t, 2),
            "verbose_s": round(v, 2), "ratio_vs_verbose": round(v / t, 2),
            "tributary_cpu_s": round(statistics.median(cpu), 2),
        }))
    finally:
        db.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
