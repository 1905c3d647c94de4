//! Conversions for the times callers pass in.

use std::time::{SystemTime, UNIX_EPOCH};

/// Whole seconds since 1970-01-01T00:00:00Z; times before the epoch are 0.
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
