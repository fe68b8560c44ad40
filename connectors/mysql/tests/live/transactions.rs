//! Transactions through the reader: order, rolled-back groups, resume from
//! a commit's resume point by file coordinates and by GTID, heartbeats,
//! and a purged start position.

use std::time::{Duration, Instant};

use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, Value};
use tributary_mysql::{
    Flavor, MysqlError, MysqlEvent, MysqlReplication, MysqlReplicationConfig, MysqlResume,
    RowsKind, StartBy,
};

use crate::harness::{Mariadb, read_commits, start_reader};

async fn start(server_id: u32, opts: Opts, start: Option<MysqlResume>) -> MysqlReplication {
    start_reader(server_id, opts, start, StartBy::FileCoordinates).await
}

fn value(v: &BinlogValue<'static>) -> Value {
    match v {
        BinlogValue::Value(v) => v.clone(),
        other => panic!("unexpected binlog value {other:?}"),
    }
}

/// A one-line picture of an event.
fn shape(event: &MysqlEvent) -> String {
    match event {
        MysqlEvent::Begin { gtid, .. } => format!("begin({})", gtid.is_some()),
        MysqlEvent::Rows {
            kind, rows, table, ..
        } => format!(
            "{kind:?}({}.{} x{})",
            table.database_name(),
            table.table_name(),
            rows.len()
        ),
        MysqlEvent::Query { sql, .. } => format!("query({})", &sql[..11]),
        MysqlEvent::Commit { xid, .. } => format!("commit({})", xid.is_some()),
        MysqlEvent::Heartbeat { .. } => "heartbeat".into(),
    }
}

fn first_key(event: &MysqlEvent) -> Value {
    let MysqlEvent::Rows { rows, .. } = event else {
        panic!("{event:?}")
    };
    let image = rows[0].1.as_ref().or(rows[0].0.as_ref()).unwrap();
    value(&image[0])
}

#[tokio::test]
async fn committed_transactions_arrive_in_order_and_resume_exactly() {
    let Some(server) = Mariadb::start(&[]) else {
        return;
    };
    let opts = server.cdc_user().await;
    let mut root = server.root().await;
    root.query_drop(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, name VARCHAR(20), amount DECIMAL(10,2), big BIGINT UNSIGNED)",
    )
    .await
    .unwrap();
    let mut reader = start(4242, opts.clone(), None).await;
    root.query_drop(
        "START TRANSACTION;
         INSERT INTO app.t VALUES (1, 'one', 1.50, 18446744073709551615), (2, 'two', NULL, 0);
         COMMIT;
         START TRANSACTION; UPDATE app.t SET name = 'uno' WHERE id = 1; DELETE FROM app.t WHERE id = 2; COMMIT;
         START TRANSACTION; INSERT INTO app.t VALUES (3, 'three', 3.00, 3); ROLLBACK;
         ALTER TABLE app.t ADD COLUMN note TEXT;
         INSERT INTO app.t VALUES (4, 'four', 4.00, 4, 'n');",
    )
    .await
    .unwrap();
    let events = read_commits(&mut reader, 4).await;
    let shape: Vec<String> = events.iter().map(shape).collect();
    assert_eq!(
        shape,
        [
            "begin(true)",
            "Insert(app.t x2)",
            "commit(true)",
            "begin(true)",
            "Update(app.t x1)",
            "Delete(app.t x1)",
            "commit(true)",
            "begin(true)",
            "query(ALTER TABLE)",
            "commit(false)",
            "begin(true)",
            "Insert(app.t x1)",
            "commit(true)",
        ],
        "the rolled-back transaction never reaches the binlog"
    );
    let MysqlEvent::Rows {
        rows,
        kind: RowsKind::Insert,
        ..
    } = &events[1]
    else {
        panic!()
    };
    let first = rows[0].1.as_ref().unwrap();
    assert_eq!(value(&first[0]), Value::Int(1));
    assert_eq!(value(&first[1]), Value::Bytes(b"one".to_vec()));
    assert_eq!(value(&first[2]), Value::Bytes(b"1.50".to_vec()));
    let second = rows[1].1.as_ref().unwrap();
    assert_eq!(value(&second[2]), Value::NULL);
    let MysqlEvent::Rows { rows, .. } = &events[4] else {
        panic!()
    };
    let (before, after) = &rows[0];
    assert_eq!(
        value(&before.as_ref().unwrap()[1]),
        Value::Bytes(b"one".to_vec())
    );
    assert_eq!(
        value(&after.as_ref().unwrap()[1]),
        Value::Bytes(b"uno".to_vec())
    );

    // Resume from the first commit: the next transaction is the second.
    let MysqlEvent::Commit { resume, .. } = &events[2] else {
        panic!()
    };
    assert!(resume.mariadb_gtid.is_some(), "{resume}");
    let mut again = start(4244, opts.clone(), Some(resume.clone())).await;
    let replay = read_commits(&mut again, 1).await;
    assert!(
        matches!(
            &replay[1],
            MysqlEvent::Rows {
                kind: RowsKind::Update,
                ..
            }
        ),
        "{replay:?}"
    );
    // Commit resume points strictly increase.
    let resumes: Vec<&MysqlResume> = events
        .iter()
        .filter_map(|e| match e {
            MysqlEvent::Commit { resume, .. } => Some(resume),
            _ => None,
        })
        .collect();
    assert!(
        resumes.windows(2).all(|w| w[0].file < w[1].file),
        "{resumes:?}"
    );

    // Idle: heartbeats carry the position after the last transaction.
    let idle = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let MysqlEvent::Heartbeat { resume } = reader.next().await.unwrap() {
                return resume;
            }
        }
    })
    .await
    .expect("a heartbeat from an idle server");
    assert_eq!(&idle.file, &resumes.last().unwrap().file);
}

#[tokio::test]
async fn a_purged_position_is_a_clear_error() {
    let Some(server) = Mariadb::start(&[]) else {
        return;
    };
    let opts = server.cdc_user().await;
    let mut root = server.root().await;
    // A GTID exists before the resume point, and a transaction after it
    // lands in the file that gets purged.
    root.query_drop("CREATE DATABASE w").await.unwrap();
    let old = tributary_mysql::reader::current_position(&mut root, Flavor::MariaDb)
        .await
        .unwrap();
    assert!(old.mariadb_gtid.is_some(), "{old}");
    root.query_drop("CREATE DATABASE x; FLUSH BINARY LOGS; FLUSH BINARY LOGS")
        .await
        .unwrap();
    // MariaDB keeps a file until its binlog checkpoint has passed: retry.
    let started = Instant::now();
    loop {
        let logs: Vec<mysql_async::Row> = root.query("SHOW BINARY LOGS").await.unwrap();
        let first: String = logs[0].get(0).unwrap();
        if first != old.file.file {
            break;
        }
        let last: String = logs.last().unwrap().get(0).unwrap();
        root.query_drop(format!("PURGE BINARY LOGS TO '{last}'"))
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "could not purge {}",
            old.file.file
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = MysqlReplication::start(MysqlReplicationConfig {
        opts,
        server_id: 4243,
        flavor: Flavor::MariaDb,
        start: Some(old.clone()),
        heartbeat: Duration::from_millis(500),
    })
    .await;
    // The server may accept the dump request and fail on the first read.
    let error = match result {
        Err(e) => e,
        Ok(mut reader) => reader.next().await.unwrap_err(),
    };
    assert!(matches!(error, MysqlError::Purged { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&old.file.file) && message.contains("tributary checkpoint reset"),
        "{message}"
    );

    // By GTID: the server no longer has the transactions after it.
    let by_gtid = MysqlReplication::start_with(
        MysqlReplicationConfig {
            opts: server.cdc_user().await,
            server_id: 4244,
            flavor: Flavor::MariaDb,
            start: Some(old.clone()),
            heartbeat: Duration::from_millis(500),
        },
        StartBy::Gtid,
    )
    .await;
    let error = match by_gtid {
        Err(e) => e,
        Ok(mut reader) => reader.next().await.unwrap_err(),
    };
    assert!(matches!(error, MysqlError::Purged { .. }), "{error:?}");
    let message = error.to_string();
    let gtid = old.mariadb_gtid.as_deref().unwrap();
    assert!(
        message.contains(&format!("GTID {gtid})"))
            && message.contains("was purged")
            && message.contains("tributary checkpoint reset"),
        "{message}"
    );
}

/// Commits one transaction per key; returns the events of all of them.
async fn commit_keys(
    root: &mut mysql_async::Conn,
    reader: &mut MysqlReplication,
    keys: std::ops::Range<i32>,
) -> Vec<MysqlEvent> {
    let count = keys.len();
    for key in keys {
        root.exec_drop("INSERT INTO app.r VALUES (?, ?)", (key, format!("v{key}")))
            .await
            .unwrap();
        if key == 3 {
            // Resume points on both sides of a file change.
            root.query_drop("FLUSH BINARY LOGS").await.unwrap();
        }
    }
    read_commits(reader, count).await
}

#[tokio::test]
async fn resume_continues_exactly_at_the_next_transaction() {
    let Some(server) = Mariadb::start(&[]) else {
        return;
    };
    let opts = server.cdc_user().await;
    let mut root = server.root().await;
    root.query_drop("CREATE DATABASE app; CREATE TABLE app.r (id INT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let mut reader = start(4300, opts.clone(), None).await;
    let events = commit_keys(&mut root, &mut reader, 0..6).await;
    let commits: Vec<(usize, MysqlResume)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            MysqlEvent::Commit { resume, .. } => Some((i, resume.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(commits.len(), 6);
    let files: std::collections::BTreeSet<&str> =
        commits.iter().map(|(_, r)| r.file.file.as_str()).collect();
    assert_eq!(
        files.len(),
        2,
        "the workload spans a file change: {commits:?}"
    );

    let mut server_id = 4301;
    for (n, (index, resume)) in commits.iter().enumerate().take(5) {
        let expected_key = Value::Int(n as i64 + 1);
        let MysqlEvent::Begin { at: next_at, .. } = &events[index + 1] else {
            panic!("{:?}", events[index + 1]);
        };
        for by in [StartBy::FileCoordinates, StartBy::Gtid] {
            let mut resume = resume.clone();
            if by == StartBy::Gtid {
                // Prove the GTID, not the file, positions the dump.
                resume.file.file = "no-such-file.000001".into();
                resume.file.pos = 4;
            }
            server_id += 1;
            let mut again = start_reader(server_id, opts.clone(), Some(resume), by).await;
            let replay = read_commits(&mut again, 1).await;
            let MysqlEvent::Begin { at, gtid, .. } = &replay[0] else {
                panic!("{by:?}: {replay:?}");
            };
            assert_eq!(at, next_at, "{by:?} after commit {n}");
            assert!(gtid.is_some());
            assert_eq!(
                first_key(&replay[1]),
                expected_key,
                "{by:?} after commit {n}"
            );
            let MysqlEvent::Commit { resume: after, .. } = replay.last().unwrap() else {
                panic!()
            };
            assert_eq!(after, &commits[n + 1].1, "{by:?}: same resume point again");
            again.close().await.unwrap();
        }
    }
}

/// Reads until the InnoDB row `key` of `app.inno` arrives; heartbeats
/// left out.
async fn read_until_inno(reader: &mut MysqlReplication, key: i64) -> Vec<MysqlEvent> {
    let mut events = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), reader.next())
            .await
            .unwrap()
            .unwrap();
        let done = matches!(&event, MysqlEvent::Rows { table, .. } if table.table_name() == "inno")
            && first_key(&event) == Value::Int(key);
        if !matches!(event, MysqlEvent::Heartbeat { .. }) {
            events.push(event);
        }
        if done {
            return events;
        }
    }
}

fn has_row(events: &[MysqlEvent], table_name: &str, key: i64) -> bool {
    events.iter().any(|e| {
        matches!(e, MysqlEvent::Rows { table, .. } if table.table_name() == table_name)
            && first_key(e) == Value::Int(key)
    })
}

#[tokio::test]
async fn rolled_back_transactions_leave_only_what_the_server_kept() {
    let Some(server) = Mariadb::start(&[]) else {
        return;
    };
    let opts = server.cdc_user().await;
    let mut root = server.root().await;
    root.query_drop(
        "CREATE DATABASE app;
         CREATE TABLE app.inno (id INT PRIMARY KEY) ENGINE=InnoDB;
         CREATE TABLE app.myi (id INT PRIMARY KEY) ENGINE=MyISAM;
         CREATE TABLE app.trig (id INT PRIMARY KEY) ENGINE=InnoDB;
         CREATE TRIGGER app.trig_ai AFTER INSERT ON app.trig FOR EACH ROW INSERT INTO app.myi VALUES (NEW.id + 100)",
    )
    .await
    .unwrap();
    let mut reader = start(4400, opts, None).await;

    // Separate statements: MariaDB logs the MyISAM row at once, in its own
    // committed group; the InnoDB row never reaches the binlog.
    root.query_drop(
        "START TRANSACTION;
         INSERT INTO app.inno VALUES (1);
         INSERT INTO app.myi VALUES (1);
         ROLLBACK;
         INSERT INTO app.inno VALUES (2);",
    )
    .await
    .unwrap();
    let events = read_until_inno(&mut reader, 2).await;
    let shapes: Vec<String> = events.iter().map(shape).collect();
    assert!(!has_row(&events, "inno", 1), "{shapes:?}");
    assert!(has_row(&events, "myi", 1), "{shapes:?}");

    // One statement changing both kinds of table (through a trigger), then
    // ROLLBACK: in ROW format MariaDB logs the MyISAM row (which stays) in
    // its own committed group, and the InnoDB row not at all.
    let before: Option<String> = root
        .query_first("SELECT @@global.gtid_binlog_pos")
        .await
        .unwrap();
    root.query_drop(
        "START TRANSACTION;
         INSERT INTO app.trig VALUES (1);
         ROLLBACK;
         INSERT INTO app.inno VALUES (3);",
    )
    .await
    .unwrap();
    let after: Option<String> = root
        .query_first("SELECT @@global.gtid_binlog_pos")
        .await
        .unwrap();
    let events = read_until_inno(&mut reader, 3).await;
    let shapes: Vec<String> = events.iter().map(shape).collect();
    assert!(
        !has_row(&events, "trig", 1) && has_row(&events, "myi", 101),
        "{shapes:?} (GTIDs before: {before:?}, after: {after:?})"
    );
    let kept: Vec<i32> = root
        .query("SELECT id FROM app.myi ORDER BY id")
        .await
        .unwrap();
    assert_eq!(kept, [1, 101], "MyISAM rows stay, as the binlog says");
    let commit = read_commits(&mut reader, 1).await;
    let MysqlEvent::Commit { resume, .. } = commit.last().unwrap() else {
        panic!()
    };
    assert_eq!(resume.mariadb_gtid, after);
}

#[tokio::test]
async fn savepoint_rollbacks_leave_only_what_was_kept() {
    let Some(server) = Mariadb::start(&[]) else {
        return;
    };
    let opts = server.cdc_user().await;
    let mut root = server.root().await;
    root.query_drop(
        "CREATE DATABASE app;
         CREATE TABLE app.inno (id INT PRIMARY KEY) ENGINE=InnoDB;
         CREATE TABLE app.myi (id INT PRIMARY KEY) ENGINE=MyISAM;
         CREATE TABLE app.trig (id INT PRIMARY KEY) ENGINE=InnoDB;
         CREATE TRIGGER app.trig_ai AFTER INSERT ON app.trig FOR EACH ROW INSERT INTO app.myi VALUES (NEW.id + 100)",
    )
    .await
    .unwrap();
    let mut reader = start(4700, opts, None).await;
    root.query_drop(
        "START TRANSACTION;
         INSERT INTO app.inno VALUES (1);
         SAVEPOINT s1;
         INSERT INTO app.inno VALUES (2);
         INSERT INTO app.trig VALUES (5);
         ROLLBACK TO SAVEPOINT s1;
         INSERT INTO app.inno VALUES (3);
         COMMIT;
         INSERT INTO app.inno VALUES (4);",
    )
    .await
    .unwrap();
    let events = read_until_inno(&mut reader, 4).await;
    let shapes: Vec<String> = events
        .iter()
        .map(|e| match e {
            MysqlEvent::Rows { table, .. } => {
                format!("{}:{:?}", table.table_name(), first_key(e))
            }
            MysqlEvent::Query { sql, .. } => format!("query({sql})"),
            other => shape(other),
        })
        .collect();
    let inno: Vec<i32> = root
        .query("SELECT id FROM app.inno ORDER BY id")
        .await
        .unwrap();
    let myi: Vec<i32> = root
        .query("SELECT id FROM app.myi ORDER BY id")
        .await
        .unwrap();
    assert_eq!((inno, myi), (vec![1, 3, 4], vec![105]));
    // The server logs the MyISAM row on its own, then the transaction with
    // the undone rows between SAVEPOINT and ROLLBACK TO: they are dropped.
    assert_eq!(
        shapes,
        [
            "begin(true)",
            "myi:Int(105)",
            "commit(false)",
            "begin(true)",
            "inno:Int(1)",
            "inno:Int(3)",
            "commit(true)",
            "begin(true)",
            "inno:Int(4)",
        ]
    );
}
