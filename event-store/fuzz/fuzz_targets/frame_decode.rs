//! Any bytes as the contents of a segment file: reading frames back returns records or a
//! reason, never panics, and a frame that decodes accounts for every byte of its body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_event_store::{decode_frame, frame_len};

/// The fixed part of a frame body: offset, time and the three lengths.
const FIXED_BODY_LEN: usize = 28;

fuzz_target!(|data: &[u8]| {
    // As recovery and reads do: walk the frames from the start until one does not decode.
    let mut pos = 0;
    while let Some(Ok(len)) = frame_len(&data[pos..]) {
        let Some(frame) = data.get(pos..pos + len) else {
            break;
        };
        if decode_frame(frame).is_err() {
            break;
        }
        pos += len;
    }

    // The fuzzer cannot forge a CRC32C, so most inputs stop at the checksum. Make the header
    // (length and checksum) match the rest of the input, to reach the field decoding behind
    // it with arbitrary bodies.
    if data.len() < 8 {
        return;
    }
    let mut frame = data.to_vec();
    let body_len = frame.len() - 8;
    let Ok(len_field) = u32::try_from(body_len) else {
        return;
    };
    frame[..4].copy_from_slice(&len_field.to_le_bytes());
    let crc = crc32c::crc32c(&frame[8..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    if let Ok(record) = decode_frame(&frame) {
        let rules_len = record
            .matched_rules
            .iter()
            .map(|name| name.len() + 1)
            .sum::<usize>()
            .saturating_sub(1);
        assert_eq!(
            FIXED_BODY_LEN
                + record.source.len()
                + record.id.len()
                + rules_len
                + record.payload.len(),
            body_len,
            "a decoded frame accounts for every byte of its body"
        );
        assert_eq!(frame_len(&frame), Some(Ok(frame.len())));
    }
});
