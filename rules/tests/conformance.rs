//! The EventBridge conformance corpus: every case must agree with what AWS answered.
//! The corpus path comes from `SWITCHYARD_CONFORMANCE`, else `../shared/conformance/`
//! beside the repository.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use switchyard_rules::Matcher;

fn corpus_path() -> PathBuf {
    match std::env::var_os("SWITCHYARD_CONFORMANCE").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/conformance/event-patterns.jsonl"
        )),
    }
}

#[test]
fn event_patterns_conformance() {
    let path = corpus_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "conformance corpus not found at {} ({e}); set SWITCHYARD_CONFORMANCE",
            path.display()
        )
    });
    let mut total = 0;
    let mut misses = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = case["name"].as_str().unwrap();
        let expect = case["expect"].as_str().unwrap();
        let pattern = case["pattern"].to_string();
        let event = case["event"].to_string();
        total += 1;
        let mut matcher = Matcher::new();
        let got = match matcher.add_rule(name, &pattern) {
            Err(e) => format!("invalid ({e})"),
            Ok(()) => {
                let hits = matcher.matches_json(event.as_bytes()).unwrap();
                let by_value = matcher.matches_value(&case["event"]).unwrap();
                assert_eq!(hits, by_value, "{name}: byte and value matching disagree");
                if hits.is_empty() {
                    "no_match".to_owned()
                } else {
                    "match".to_owned()
                }
            }
        };
        let outcome = got.split(' ').next().unwrap_or_default();
        if outcome != expect {
            misses.push(format!("{name}: expected {expect}, got {got}"));
        }
    }
    println!("conformance: {}/{}", total - misses.len(), total);
    for miss in &misses {
        println!("  miss: {miss}");
    }
    assert_eq!(total, 155, "the corpus should hold 155 cases");
    assert!(
        misses.is_empty(),
        "{} conformance misses:\n{}",
        misses.len(),
        misses.join("\n")
    );
}
