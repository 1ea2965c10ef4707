//! Any bytes as a query: parsing returns a query or a `QueryError`, never panics; an error
//! points inside the text; whatever parses writes back (`Display`) to text that parses to
//! the same tree, and evaluates like its normal form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_analytics::Query;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Query::parse(text) {
        Ok(query) => {
            let canonical = query.to_string();
            let reparsed = Query::parse(&canonical).expect("canonical text parses");
            assert_eq!(reparsed, query, "{canonical:?}");
            let event = serde_json::json!({
                "id": "1", "type": "a.b", "time": "2024-01-31T00:00:00Z", "n": 5,
                "data": {"a": [1, "x y", null, {"b": true}], "a.b": "z", "n": 1.5}
            });
            assert_eq!(query.matches(&event), query.to_nnf().matches(&event));
        }
        Err(e) => {
            assert!(e.position <= text.len() && text.is_char_boundary(e.position));
        }
    }
});
