#![no_main]
//! Structured, batched and binary parsing of arbitrary bytes must never panic.

use libfuzzer_sys::fuzz_target;
use switchyard_core::Limits;
use switchyard_core::cloudevent::{BinaryEvent, from_binary, parse_batch, parse_structured};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = parse_structured(data, &limits);
    let _ = parse_batch(data, &limits);
    let (head, body) = data.split_at(data.len() / 2);
    let attrs: Vec<(&str, &[u8])> = vec![("specversion", b"1.0"), ("id", head), ("source", head), ("type", b"t")];
    let _ = from_binary(BinaryEvent { attributes: &attrs, content_type: Some("application/json"), body }, &limits);
});
