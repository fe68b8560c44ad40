//! The schema registry (being written).
