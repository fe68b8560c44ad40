//! The connector against a real, private MariaDB (see `live/harness.rs`):
//! preflight, transactions and resume, decoded values of every type, DDL.
//! Every test skips with a notice when the machine has no `mariadbd`.

#[path = "live/harness.rs"]
mod harness;
#[path = "live/preflight_checks.rs"]
mod preflight_checks;
#[path = "live/statements.rs"]
mod statements;
#[path = "live/transactions.rs"]
mod transactions;
#[path = "live/values.rs"]
mod values;
