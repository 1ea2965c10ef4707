//! Any bytes as a pattern: parsing must return a value or a `PatternError`, never panic,
//! and whatever parses must compile into a matcher and be removable again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pattern) = switchyard_rules::Pattern::parse(text) {
        let mut matcher = switchyard_rules::Matcher::new();
        if matcher.add_pattern("fuzz", &pattern).is_ok() {
            let _ = matcher.matches_json(br#"{"a": "b", "c": [1, {"d": null}]}"#);
            assert!(matcher.remove_rule("fuzz"));
            assert_eq!(matcher.state_count(), 1);
        }
    }
});
