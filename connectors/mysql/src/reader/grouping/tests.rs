use super::*;

fn query(sql: &str) -> Queued {
    MysqlEvent::Query {
        database: "app".into(),
        sql: sql.into(),
    }
    .into()
}

fn resume() -> MysqlResume {
    MysqlResume {
        file: BinlogFile {
            file: "binlog.000001".into(),
            pos: 900,
        },
        mariadb_gtid: None,
        mysql_gtid: None,
    }
}

fn drain(grouping: &mut Grouping) -> Vec<String> {
    std::iter::from_fn(|| grouping.pop())
        .map(|q| match q.event {
            MysqlEvent::Begin { gtid, at, .. } => format!("begin {gtid:?} {at}"),
            MysqlEvent::Query { sql, .. } => sql,
            MysqlEvent::Commit { xid, .. } => format!("commit {xid:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn set(name: &str) -> SavepointStatement {
    SavepointStatement::Set(name.into())
}

fn rollback_to(name: &str) -> SavepointStatement {
    SavepointStatement::RollbackTo(name.into())
}

#[test]
fn savepoint_statements_parse() {
    assert_eq!(SavepointStatement::parse("SAVEPOINT `s1`"), Some(set("s1")));
    assert_eq!(
        SavepointStatement::parse("ROLLBACK TO `s1`"),
        Some(rollback_to("s1"))
    );
    assert_eq!(
        SavepointStatement::parse("rollback work to savepoint s``x"),
        Some(rollback_to("s`x"))
    );
    assert_eq!(
        SavepointStatement::parse("RELEASE SAVEPOINT s1"),
        Some(SavepointStatement::Release("s1".into()))
    );
    assert_eq!(SavepointStatement::parse("ROLLBACK"), None);
    assert_eq!(SavepointStatement::parse("SAVEPOINT"), None);
    assert_eq!(SavepointStatement::parse("ALTER TABLE t ADD x INT"), None);
}

#[test]
fn transactional_groups_stream() {
    let mut g = Grouping::default();
    g.announce("0-1-5".into(), true, 100);
    g.begin("binlog.000001", 4, 0);
    g.emit(query("rows"), 1);
    assert_eq!(
        drain(&mut g),
        ["begin Some(\"0-1-5\") binlog.000001:100", "rows"]
    );
    g.commit(resume(), 0, Some(7));
    assert_eq!(drain(&mut g), ["commit Some(7)"]);
    assert!(!g.in_group());
}

#[test]
fn other_groups_are_held_until_their_end() {
    let mut g = Grouping::default();
    g.starts_at(200);
    g.begin("binlog.000001", 4, 0);
    g.emit(query("rows"), 1);
    g.heartbeat(resume());
    assert!(drain(&mut g).is_empty(), "held, and no heartbeat inside");
    g.commit(resume(), 0, None);
    assert_eq!(
        drain(&mut g),
        ["begin None binlog.000001:200", "rows", "commit None"]
    );
}

#[test]
fn rolled_back_groups_are_dropped() {
    let mut g = Grouping::default();
    g.begin("binlog.000001", 4, 0);
    g.emit(query("rows"), 1);
    g.rollback("binlog.000001:300").unwrap();
    assert!(drain(&mut g).is_empty());
    g.rollback("binlog.000001:400").unwrap();
    g.commit(resume(), 0, None);
    assert!(drain(&mut g).is_empty(), "nothing open: nothing to end");
}

#[test]
fn savepoint_rollbacks_drop_what_followed_the_savepoint() {
    let mut g = Grouping::default();
    g.announce("0-1-5".into(), true, 100);
    g.begin("binlog.000001", 4, 0);
    g.emit(query("row 1"), 1);
    g.savepoint(set("s1"), "x").unwrap();
    g.emit(query("row 2"), 1);
    g.savepoint(set("s2"), "x").unwrap();
    g.emit(query("row 3"), 1);
    assert_eq!(drain(&mut g).len(), 2, "before the savepoint: streamed");
    g.savepoint(rollback_to("s2"), "x").unwrap();
    g.emit(query("row 4"), 1);
    g.savepoint(rollback_to("s1"), "x").unwrap();
    g.emit(query("row 5"), 1);
    g.commit(resume(), 0, Some(1));
    assert_eq!(drain(&mut g), ["row 5", "commit Some(1)"]);
    assert!(
        g.savepoint(rollback_to("s1"), "x").is_ok(),
        "outside a group: ignored"
    );
}

#[test]
fn a_rollback_to_an_unknown_savepoint_fails() {
    let mut g = Grouping::default();
    g.begin("binlog.000001", 4, 0);
    g.savepoint(set("s1"), "x").unwrap();
    g.savepoint(SavepointStatement::Release("s1".into()), "x")
        .unwrap();
    assert!(g.savepoint(rollback_to("s1"), "x").is_err());
}

#[test]
fn large_groups_are_released_and_a_late_undo_fails() {
    let mut g = Grouping::default();
    g.begin("binlog.000001", 4, 0);
    g.emit(query("rows"), ROLLBACK_HOLD_ROWS);
    assert!(drain(&mut g).is_empty());
    g.emit(query("more rows"), 1);
    assert_eq!(drain(&mut g).len(), 3, "released early");
    g.emit(query("after release"), 1);
    assert_eq!(drain(&mut g), ["after release"]);
    g.savepoint(set("s1"), "x").unwrap();
    let error = g
        .savepoint(rollback_to("s1"), "binlog.000001:450")
        .unwrap_err()
        .to_string();
    assert!(error.contains("binlog.000001:450"), "{error}");
    let error = g.rollback("binlog.000001:500").unwrap_err().to_string();
    assert!(
        error.contains("at binlog.000001:500") && error.contains("tributary snapshot"),
        "{error}"
    );
}

#[test]
fn a_rollback_of_a_streamed_transactional_group_fails() {
    let mut g = Grouping::default();
    g.announce("0-1-6".into(), true, 100);
    g.begin("binlog.000001", 4, 0);
    assert!(g.rollback("x").is_err());
}
