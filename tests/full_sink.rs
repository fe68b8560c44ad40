//! A full sink directory stops the daemon with a message that says so, the
//! checkpoint never moves past unwritten data, and after space is freed a
//! restart completes the lake exactly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::daemon::{DaemonProcess, TestConfig, wait_caught_up};
use crate::harness::lake::assert_manifests_sound;
use crate::harness::postgres::PgCluster;
use crate::harness::truth::assert_lake_matches_source;

/// A small tmpfs mounted on the lake directory (needs root, as CI has).
struct TmpfsMount(PathBuf);

impl TmpfsMount {
    fn new(dir: &Path, size: &str) -> TmpfsMount {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs on {} failed: this test needs root (CI runs as root)",
            dir.display()
        );
        TmpfsMount(dir.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("running mount");
        assert!(status.success(), "remount failed");
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sink_stops_without_advancing_the_checkpoint() {
    let db = PgCluster::shared().create_database("full_sink").await;
    db.execute("CREATE TABLE blobs (id int PRIMARY KEY, payload text)")
        .await;
    let mut config = TestConfig::new(&db, "app", &["blobs"]);
    config.flush_interval_ms = 100;
    let mount = TmpfsMount::new(&config.lake, "1m");
    let mut daemon = DaemonProcess::start(&config);
    crate::harness::daemon::wait_streaming(&db, &config, &mut daemon).await;

    // ~6 MB of incompressible text in 60 transactions: more than the sink holds.
    for batch in 0..60 {
        db.execute(&format!(
            "INSERT INTO blobs SELECT g, string_agg(md5(random()::text || g || i), '')
               FROM generate_series({lo}, {hi}) g, generate_series(1, 30) i GROUP BY g",
            lo = batch * 100,
            hi = batch * 100 + 99
        ))
        .await;
    }
    let status = daemon.wait(Duration::from_secs(60));
    assert!(
        !status.success(),
        "the daemon must stop when the sink is full"
    );
    let log = daemon.log_text(40);
    assert!(
        log.contains("no space left on device") && log.contains("free space"),
        "{log}"
    );

    // Whatever the checkpoint says is durable really is: every manifest's
    // files exist and the checkpoint does not point past the last manifest.
    let manifests = assert_manifests_sound(&config.lake, &config.source);
    if let Some(checkpoint) = crate::harness::lake::read_checkpoint(&config.lake, &config.source) {
        let seq = checkpoint["manifest_seq"].as_u64().unwrap();
        assert!(
            seq as usize <= manifests.len(),
            "checkpoint {checkpoint} is ahead of {} manifests",
            manifests.len()
        );
    }

    // Free space, restart: the lake completes and equals the source.
    mount.grow("256m");
    daemon.restart();
    wait_caught_up(
        &db,
        &config.lake,
        &config.source,
        Duration::from_secs(120),
        &mut daemon,
    )
    .await;
    daemon.stop_gracefully(Duration::from_secs(30));
    assert_lake_matches_source(&db, &config.lake, &config.source, &["public.blobs"]).await;
}
