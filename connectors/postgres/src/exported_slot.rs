//! Creating a slot together with an exported snapshot: the hand-off point
//! between an initial copy and the replication stream.
//!
//! `CREATE_REPLICATION_SLOT … LOGICAL pgoutput EXPORT_SNAPSHOT` on a
//! replication connection returns the slot's consistent point and the name of
//! a snapshot that sees exactly the transactions committed before it. Worker
//! sessions that run `SET TRANSACTION SNAPSHOT '<name>'` read the tables as of
//! that point, and the slot streams every transaction committed after it: no
//! change is lost or seen twice at the hand-off. The snapshot stays importable
//! only while the creating connection is open and idle, so [`ExportedSlot`]
//! holds that connection until every worker has imported it.

use pg_walstream::{PgReplicationConnection, ReplicationSlotOptions, SlotType};

use crate::error::PgError;
use crate::lsn::Lsn;
use crate::replication::replication_conninfo;

/// A freshly created slot whose snapshot is still exported.
pub struct ExportedSlot {
    /// Keeps the exported snapshot alive; dropping it ends the export.
    connection: PgReplicationConnection,
    /// Snapshot name for `SET TRANSACTION SNAPSHOT`.
    pub snapshot_name: String,
    /// The slot streams transactions committing after this point.
    pub consistent_point: Lsn,
}

impl std::fmt::Debug for ExportedSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedSlot")
            .field("snapshot_name", &self.snapshot_name)
            .field("consistent_point", &self.consistent_point)
            .finish_non_exhaustive()
    }
}

impl ExportedSlot {
    /// Creates `slot` (pgoutput) on a replication connection and exports its
    /// snapshot. `temporary` slots vanish when this connection closes (a
    /// one-off copy that must not retain WAL afterwards).
    pub async fn create(
        conninfo: &str,
        slot: &str,
        temporary: bool,
    ) -> Result<ExportedSlot, PgError> {
        let mut connection =
            PgReplicationConnection::connect_async(&replication_conninfo(conninfo)).await?;
        let options = ReplicationSlotOptions {
            temporary,
            snapshot: Some("export".to_string()),
            ..ReplicationSlotOptions::default()
        };
        let result = connection
            .create_replication_slot_with_options_async(
                slot,
                SlotType::Logical,
                Some("pgoutput"),
                &options,
            )
            .await?;
        // Columns: slot_name, consistent_point, snapshot_name, output_plugin.
        let consistent_point: Lsn = result
            .get_value(0, 1)
            .ok_or_else(|| PgError::Protocol {
                message: "CREATE_REPLICATION_SLOT returned no consistent point".into(),
            })?
            .parse()?;
        let snapshot_name = result
            .get_value(0, 2)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| PgError::Protocol {
                message: "CREATE_REPLICATION_SLOT exported no snapshot".into(),
            })?;
        tracing::info!(slot, %consistent_point, snapshot = %snapshot_name, "created slot with exported snapshot");
        Ok(ExportedSlot {
            connection,
            snapshot_name,
            consistent_point,
        })
    }

    /// Ends the export (call once every worker imported the snapshot). For a
    /// temporary slot this also drops the slot.
    pub fn release(self) {
        drop(self.connection);
    }
}
