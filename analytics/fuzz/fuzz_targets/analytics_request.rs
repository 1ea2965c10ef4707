//! Any bytes as an analytics request body: reading returns a request or an error, never
//! panics, and an accepted request computes over a few records without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_analytics::AnalyticsRequest;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = AnalyticsRequest::from_json(data) else {
        return;
    };
    let records = [
        serde_json::json!({"type": "a", "data": {"n": 1, "tags": ["x", "y"]}}),
        serde_json::json!({"type": "b", "data": {"n": [2.5, "3"]}}),
        serde_json::json!({"data": "text"}),
    ];
    let result = request.compute(records.iter().map(|r| (request.from_ms, r)));
    let _ = serde_json::to_vec(&result);
});
