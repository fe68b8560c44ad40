//! The daemon's HTTP port (being written).
