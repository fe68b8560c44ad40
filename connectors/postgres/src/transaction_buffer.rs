//! Buffer for streamed in-progress transactions, bounded in memory, spilling to disk.
//!
//! With `streaming=on`, the walsender sends large transactions in chunks before
//! they commit, interleaved with other transactions. The daemon must see only
//! committed transactions, in commit order, so [`crate::decoder`] parks each
//! streamed change here under its top-level xid and replays the whole
//! transaction when `StreamCommit` arrives (or forgets it on `StreamAbort`).
//!
//! Items are kept in a compact binary record format — the same bytes in memory
//! and on disk:
//!
//! ```text
//! flags u8 | subxid u32 | lsn u64 | len u32 | payload [len]      (big-endian)
//! ```
//!
//! All open transactions share one memory budget. When an append would exceed
//! it, the transaction with the most bytes in memory moves them to its spill
//! file (`xid-<xid>.spill` in the spill directory), exactly like PostgreSQL's
//! reorder buffer. Because a transaction's file always holds its oldest items
//! and memory the newest, replay reads the file first and then memory, which
//! preserves order, and streams from disk in bounded chunks. Subtransaction
//! aborts are recorded and applied as a filter during replay, so they work for
//! spilled items too.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes, BytesMut};

use crate::error::PgError;

/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 17;
/// Record flag: keep this item even when its subtransaction aborts.
const FLAG_KEEP_ON_ABORT: u8 = 1;
const SPILL_PREFIX: &str = "xid-";
const SPILL_SUFFIX: &str = ".spill";
const READ_CHUNK: usize = 256 * 1024;

/// One buffered item as replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferedItem {
    /// The (sub)transaction that made the change.
    pub subxid: u32,
    /// WAL position of the message.
    pub lsn: u64,
    /// The opaque payload (for the decoder: a pgoutput message without its xid prefix).
    pub payload: Bytes,
}

#[derive(Debug)]
struct SpillFile {
    path: PathBuf,
    writer: BufWriter<File>,
}

#[derive(Debug, Default)]
struct OpenTxn {
    mem: Vec<u8>,
    spill: Option<SpillFile>,
    aborted_subxids: HashSet<u32>,
    items: u64,
}

/// Streamed transactions by top-level xid, sharing one memory budget.
#[derive(Debug)]
pub struct TransactionBuffer {
    dir: PathBuf,
    budget: usize,
    mem_used: usize,
    peak_mem: usize,
    spilled_bytes: u64,
    txns: HashMap<u32, OpenTxn>,
}

impl TransactionBuffer {
    /// A buffer keeping at most `budget_bytes` of encoded items in memory,
    /// spilling the rest under `dir` (created if missing). Spill files left by an
    /// earlier run in `dir` are deleted: those transactions are re-sent by the
    /// server after a restart anyway. Use one directory per replication stream.
    pub fn new(dir: impl Into<PathBuf>, budget_bytes: usize) -> Result<Self, PgError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| PgError::spill(&dir, e))?;
        for entry in fs::read_dir(&dir).map_err(|e| PgError::spill(&dir, e))? {
            let entry = entry.map_err(|e| PgError::spill(&dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(SPILL_PREFIX) && name.ends_with(SPILL_SUFFIX) {
                let path = entry.path();
                tracing::info!(path = %path.display(), "removing leftover spill file");
                fs::remove_file(&path).map_err(|e| PgError::spill(&path, e))?;
            }
        }
        Ok(Self {
            dir,
            budget: budget_bytes,
            mem_used: 0,
            peak_mem: 0,
            spilled_bytes: 0,
            txns: HashMap::new(),
        })
    }

    /// Encoded bytes currently held in memory across all transactions.
    pub fn memory_used(&self) -> usize {
        self.mem_used
    }

    /// The highest [`memory_used`](Self::memory_used) seen.
    pub fn peak_memory(&self) -> usize {
        self.peak_mem
    }

    /// Total bytes written to spill files so far.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes
    }

    /// Number of open (buffered, not yet committed or aborted) transactions.
    pub fn open_transactions(&self) -> usize {
        self.txns.len()
    }

    /// Whether `xid` has an open buffered transaction.
    pub fn contains(&self, xid: u32) -> bool {
        self.txns.contains_key(&xid)
    }

    /// Append an item to transaction `xid`. `keep_on_abort` items survive the
    /// abort of their subtransaction (used for relation descriptions).
    pub fn append(
        &mut self,
        xid: u32,
        subxid: u32,
        lsn: u64,
        keep_on_abort: bool,
        payload: &[u8],
    ) -> Result<(), PgError> {
        self.append_parts(xid, subxid, lsn, keep_on_abort, &[payload])
    }

    /// Like [`append`](Self::append) with the payload given as consecutive parts (no concatenation needed).
    pub fn append_parts(
        &mut self,
        xid: u32,
        subxid: u32,
        lsn: u64,
        keep_on_abort: bool,
        parts: &[&[u8]],
    ) -> Result<(), PgError> {
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(payload_len)
            .map_err(|_| PgError::protocol("buffered message larger than 4 GiB"))?;
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[0] = if keep_on_abort { FLAG_KEEP_ON_ABORT } else { 0 };
        header[1..5].copy_from_slice(&subxid.to_be_bytes());
        header[5..13].copy_from_slice(&lsn.to_be_bytes());
        header[13..17].copy_from_slice(&len.to_be_bytes());
        let record_len = RECORD_HEADER_LEN + payload_len;

        if record_len > self.budget {
            // Too big for memory at all: keep order by moving this txn's memory out first.
            self.spill_txn(xid)?;
            let txn = self.txns.entry(xid).or_default();
            txn.items += 1;
            let file = open_spill(&self.dir, xid, txn)?;
            write_all(file, &header)?;
            for p in parts {
                write_all(file, p)?;
            }
            self.spilled_bytes += record_len as u64;
            return Ok(());
        }
        while self.mem_used + record_len > self.budget {
            let Some(victim) = self.largest_in_memory() else {
                break;
            };
            self.spill_txn(victim)?;
        }
        let txn = self.txns.entry(xid).or_default();
        txn.items += 1;
        txn.mem.extend_from_slice(&header);
        for p in parts {
            txn.mem.extend_from_slice(p);
        }
        self.mem_used += record_len;
        self.peak_mem = self.peak_mem.max(self.mem_used);
        Ok(())
    }

    /// Apply `StreamAbort(xid, subxid)`: the whole transaction when `subxid == xid`,
    /// otherwise only the items of that subtransaction (filtered at replay).
    pub fn abort(&mut self, xid: u32, subxid: u32) {
        if subxid == xid {
            if let Some(txn) = self.txns.remove(&xid) {
                self.mem_used -= txn.mem.len();
                if let Some(spill) = txn.spill {
                    drop(spill.writer);
                    remove_quietly(&spill.path);
                }
            }
        } else if let Some(txn) = self.txns.get_mut(&xid) {
            txn.aborted_subxids.insert(subxid);
        }
    }

    /// Take transaction `xid` out of the buffer for replay, in original order.
    /// A transaction never seen (no buffered items) replays as empty.
    pub fn commit(&mut self, xid: u32) -> Result<Replay, PgError> {
        let Some(txn) = self.txns.remove(&xid) else {
            return Ok(Replay::empty());
        };
        self.mem_used -= txn.mem.len();
        let file = match txn.spill {
            Some(SpillFile { path, writer }) => {
                let mut file = writer
                    .into_inner()
                    .map_err(|e| PgError::spill(&path, e.error()))?;
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| PgError::spill(&path, e))?;
                Some(SpillReader {
                    path,
                    file,
                    chunk: BytesMut::new(),
                    tmp: Vec::new(),
                    eof: false,
                })
            }
            None => None,
        };
        Ok(Replay {
            file,
            mem: Bytes::from(txn.mem),
            aborted: txn.aborted_subxids,
            remaining: txn.items,
        })
    }

    fn largest_in_memory(&self) -> Option<u32> {
        self.txns
            .iter()
            .filter(|(_, t)| !t.mem.is_empty())
            .max_by_key(|(_, t)| t.mem.len())
            .map(|(xid, _)| *xid)
    }

    /// Move all in-memory bytes of `xid` to its spill file.
    fn spill_txn(&mut self, xid: u32) -> Result<(), PgError> {
        let Some(txn) = self.txns.get_mut(&xid) else {
            return Ok(());
        };
        if txn.mem.is_empty() {
            return Ok(());
        }
        let mem = std::mem::take(&mut txn.mem);
        let file = open_spill(&self.dir, xid, txn)?;
        write_all(file, &mem)?;
        tracing::debug!(
            xid,
            bytes = mem.len(),
            "spilled streamed transaction to disk"
        );
        self.mem_used -= mem.len();
        self.spilled_bytes += mem.len() as u64;
        Ok(())
    }
}

impl Drop for TransactionBuffer {
    fn drop(&mut self) {
        for (_, txn) in self.txns.drain() {
            if let Some(spill) = txn.spill {
                drop(spill.writer);
                remove_quietly(&spill.path);
            }
        }
    }
}

fn open_spill<'a>(
    dir: &Path,
    xid: u32,
    txn: &'a mut OpenTxn,
) -> Result<&'a mut SpillFile, PgError> {
    if txn.spill.is_none() {
        let path = dir.join(format!("{SPILL_PREFIX}{xid}{SPILL_SUFFIX}"));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| PgError::spill(&path, e))?;
        txn.spill = Some(SpillFile {
            path,
            writer: BufWriter::with_capacity(64 * 1024, file),
        });
    }
    Ok(txn.spill.as_mut().expect("just opened"))
}

fn write_all(file: &mut SpillFile, bytes: &[u8]) -> Result<(), PgError> {
    file.writer
        .write_all(bytes)
        .map_err(|e| PgError::spill(&file.path, e))
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove spill file");
    }
}

#[derive(Debug)]
struct SpillReader {
    path: PathBuf,
    file: File,
    chunk: BytesMut,
    tmp: Vec<u8>,
    eof: bool,
}

impl SpillReader {
    /// The next record from the file, reading it in chunks.
    fn next_record(&mut self) -> Result<Option<(u8, u32, u64, Bytes)>, PgError> {
        loop {
            if let Some(rec) = take_record(&mut self.chunk) {
                return Ok(Some(rec));
            }
            if self.eof {
                if !self.chunk.is_empty() {
                    return Err(PgError::spill(
                        &self.path,
                        "file ends inside a record (truncated?)",
                    ));
                }
                return Ok(None);
            }
            let want = match record_len(&self.chunk) {
                Some(n) => (n - self.chunk.len()).max(READ_CHUNK),
                None => READ_CHUNK,
            };
            self.tmp.resize(want, 0);
            let n = self
                .file
                .read(&mut self.tmp)
                .map_err(|e| PgError::spill(&self.path, e))?;
            if n == 0 {
                self.eof = true;
            } else {
                self.chunk.extend_from_slice(&self.tmp[..n]);
            }
        }
    }
}

impl Drop for SpillReader {
    fn drop(&mut self) {
        remove_quietly(&self.path);
    }
}

/// Full length of the record at the start of `buf`, if its header is complete.
fn record_len(buf: &[u8]) -> Option<usize> {
    let len = u32::from_be_bytes(buf.get(13..17)?.try_into().ok()?) as usize;
    Some(RECORD_HEADER_LEN + len)
}

/// Split one complete record off the front of `buf`.
fn take_record(buf: &mut BytesMut) -> Option<(u8, u32, u64, Bytes)> {
    let total = record_len(buf)?;
    if buf.len() < total {
        return None;
    }
    let mut rec = buf.split_to(total);
    let flags = rec.get_u8();
    let subxid = rec.get_u32();
    let lsn = rec.get_u64();
    rec.advance(4);
    Some((flags, subxid, lsn, rec.freeze()))
}

/// Replays one committed transaction: spilled items first, then in-memory ones.
/// Deletes the spill file when dropped.
#[derive(Debug)]
pub struct Replay {
    file: Option<SpillReader>,
    mem: Bytes,
    aborted: HashSet<u32>,
    remaining: u64,
}

impl Replay {
    fn empty() -> Self {
        Replay {
            file: None,
            mem: Bytes::new(),
            aborted: HashSet::new(),
            remaining: 0,
        }
    }

    /// Upper bound of items still to come (aborted subtransactions included).
    pub fn remaining_hint(&self) -> u64 {
        self.remaining
    }

    /// The next surviving item, or `None` when the transaction is exhausted.
    pub fn next_item(&mut self) -> Result<Option<BufferedItem>, PgError> {
        loop {
            let rec = match &mut self.file {
                Some(reader) => match reader.next_record()? {
                    Some(rec) => Some(rec),
                    None => {
                        self.file = None; // deletes the file
                        continue;
                    }
                },
                None => self.next_mem_record()?,
            };
            let Some((flags, subxid, lsn, payload)) = rec else {
                return Ok(None);
            };
            self.remaining = self.remaining.saturating_sub(1);
            if flags & FLAG_KEEP_ON_ABORT == 0 && self.aborted.contains(&subxid) {
                continue;
            }
            return Ok(Some(BufferedItem {
                subxid,
                lsn,
                payload,
            }));
        }
    }

    fn next_mem_record(&mut self) -> Result<Option<(u8, u32, u64, Bytes)>, PgError> {
        if self.mem.is_empty() {
            return Ok(None);
        }
        let total = record_len(&self.mem)
            .filter(|&n| n <= self.mem.len())
            .ok_or_else(|| PgError::protocol("corrupt in-memory transaction buffer record"))?;
        let mut rec = self.mem.split_to(total);
        let flags = rec.get_u8();
        let subxid = rec.get_u32();
        let lsn = rec.get_u64();
        rec.advance(4);
        Ok(Some((flags, subxid, lsn, rec)))
    }
}

impl Iterator for Replay {
    type Item = Result<BufferedItem, PgError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(i: u32) -> Vec<u8> {
        format!("item-{i:05}-{}", "x".repeat((i % 7) as usize)).into_bytes()
    }

    fn drain(replay: Replay) -> Vec<(u32, u64, Vec<u8>)> {
        replay
            .map(|r| r.map(|i| (i.subxid, i.lsn, i.payload.to_vec())))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn spill_files(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn memory_only_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = TransactionBuffer::new(dir.path(), 1 << 20).unwrap();
        for i in 0..100 {
            buf.append(7, 7, u64::from(i), false, &payload(i)).unwrap();
        }
        assert!(buf.memory_used() > 0);
        assert_eq!(buf.spilled_bytes(), 0);
        let items = drain(buf.commit(7).unwrap());
        assert_eq!(items.len(), 100);
        for (i, (sub, lsn, p)) in items.into_iter().enumerate() {
            assert_eq!((sub, lsn, p), (7, i as u64, payload(i as u32)));
        }
        assert_eq!(buf.memory_used(), 0);
        assert_eq!(spill_files(dir.path()), 0);
    }

    #[test]
    fn tiny_budget_spills_preserves_order_and_stays_under_budget() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 200;
        let mut buf = TransactionBuffer::new(dir.path(), budget).unwrap();
        for i in 0..5000 {
            buf.append(1, 1, u64::from(i), false, &payload(i)).unwrap();
            assert!(buf.memory_used() <= budget);
        }
        // One record larger than the whole budget goes straight to disk, in order.
        let big = vec![b'B'; 1000];
        buf.append(1, 1, 5000, false, &big).unwrap();
        buf.append(1, 1, 5001, false, &payload(5001)).unwrap();
        assert!(buf.peak_memory() <= budget);
        assert!(buf.spilled_bytes() > 0);
        assert_eq!(spill_files(dir.path()), 1);

        let items = drain(buf.commit(1).unwrap());
        assert_eq!(items.len(), 5002);
        for (i, (_, lsn, p)) in items.iter().enumerate() {
            assert_eq!(*lsn, i as u64);
            if i == 5000 {
                assert_eq!(p, &big);
            } else {
                assert_eq!(p, &payload(i as u32));
            }
        }
        assert_eq!(
            spill_files(dir.path()),
            0,
            "spill file removed after replay"
        );
    }

    #[test]
    fn whole_abort_forgets_memory_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = TransactionBuffer::new(dir.path(), 100).unwrap();
        for i in 0..50 {
            buf.append(3, 3, u64::from(i), false, &payload(i)).unwrap();
        }
        assert_eq!(spill_files(dir.path()), 1);
        buf.abort(3, 3);
        assert!(!buf.contains(3));
        assert_eq!(buf.memory_used(), 0);
        assert_eq!(spill_files(dir.path()), 0);
        assert!(
            drain(buf.commit(3).unwrap()).is_empty(),
            "unknown xid replays empty"
        );
    }

    #[test]
    fn subxact_abort_filters_spilled_and_unspilled_items() {
        for budget in [1 << 20, 64] {
            let dir = tempfile::tempdir().unwrap();
            let mut buf = TransactionBuffer::new(dir.path(), budget).unwrap();
            // top 10, subxacts 11 (aborted) and 12 (kept), interleaved; one keep-on-abort item in 11.
            for i in 0..30u32 {
                let sub = [10, 11, 12][(i % 3) as usize];
                buf.append(10, sub, u64::from(i), sub == 11 && i == 1, &payload(i))
                    .unwrap();
            }
            buf.abort(10, 11);
            let items = drain(buf.commit(10).unwrap());
            let lsns: Vec<u64> = items.iter().map(|i| i.1).collect();
            let expected: Vec<u64> = (0..30u64).filter(|i| i % 3 != 1 || *i == 1).collect();
            assert_eq!(lsns, expected, "budget {budget}");
            assert_eq!(spill_files(dir.path()), 0);
        }
    }

    #[test]
    fn interleaved_xids_share_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 1000;
        let mut buf = TransactionBuffer::new(dir.path(), budget).unwrap();
        for i in 0..600u32 {
            let xid = 100 + (i % 3);
            buf.append(xid, xid, u64::from(i), false, &payload(i))
                .unwrap();
            assert!(buf.memory_used() <= budget);
        }
        assert_eq!(buf.open_transactions(), 3);
        buf.abort(101, 101);
        let b = drain(buf.commit(102).unwrap());
        let a = drain(buf.commit(100).unwrap());
        assert_eq!(
            a.iter().map(|i| i.1).collect::<Vec<_>>(),
            (0..600).step_by(3).collect::<Vec<u64>>()
        );
        assert_eq!(
            b.iter().map(|i| i.1).collect::<Vec<_>>(),
            (2..600).step_by(3).collect::<Vec<u64>>()
        );
        assert_eq!(buf.memory_used(), 0);
        assert_eq!(spill_files(dir.path()), 0);
    }

    #[test]
    fn leftovers_are_removed_at_startup_but_other_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("xid-42.spill"), b"junk").unwrap();
        fs::write(dir.path().join("keep.txt"), b"mine").unwrap();
        let _buf = TransactionBuffer::new(dir.path(), 10).unwrap();
        assert!(!dir.path().join("xid-42.spill").exists());
        assert!(dir.path().join("keep.txt").exists());
    }

    #[test]
    fn dropping_a_partial_replay_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut buf = TransactionBuffer::new(dir.path(), 0).unwrap();
        buf.append(5, 5, 1, false, b"a").unwrap();
        buf.append(5, 5, 2, false, b"b").unwrap();
        let mut replay = buf.commit(5).unwrap();
        assert_eq!(
            replay.next_item().unwrap().unwrap().payload,
            Bytes::from_static(b"a")
        );
        drop(replay);
        assert_eq!(spill_files(dir.path()), 0);
    }
}
