//! The file name of a ROTATE event. The artificial ROTATE that opens a dump
//! can arrive before the format description that says whether events
//! carry a CRC32 checksum, so the driver may leave the 4 checksum bytes at
//! the end of the name: they are dropped when they are the event's CRC32.

use mysql_async::binlog::events::{Event, RotateEvent};

/// The name `rotate` (read from `event`) announces.
pub(super) fn rotate_name(event: &Event, rotate: &RotateEvent<'_>) -> String {
    let name = rotate.name_raw();
    let data = event.data();
    if name.len() > 4 && data.len() >= 4 {
        let (body, trailer) = data.split_at(data.len() - 4);
        let header = event.header();
        let mut bytes = Vec::with_capacity(19 + body.len());
        bytes.extend_from_slice(&header.timestamp().to_le_bytes());
        bytes.push(header.event_type_raw());
        bytes.extend_from_slice(&header.server_id().to_le_bytes());
        bytes.extend_from_slice(&header.event_size().to_le_bytes());
        bytes.extend_from_slice(&header.log_pos().to_le_bytes());
        bytes.extend_from_slice(&header.flags_raw().to_le_bytes());
        bytes.extend_from_slice(body);
        if name.ends_with(trailer) && crc32(&bytes).to_le_bytes() == trailer {
            return String::from_utf8_lossy(&name[..name.len() - 4]).into_owned();
        }
    }
    String::from_utf8_lossy(name).into_owned()
}

/// CRC-32 (IEEE 802.3, as `binlog_checksum = CRC32` uses).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
    }
}
