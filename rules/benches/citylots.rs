//! CityLots: event-ruler's standard workload (213,068 GeoJSON lots, ~940 bytes each)
//! against its 14 rule banks plus PARTIAL_COMBO and COMBO. Per-rule match counts must equal
//! `expected_counts.json` (the process exits non-zero otherwise); throughput is the median
//! of several single-threaded passes, printed next to the `quamina` crate measured in the
//! same run on the same events, and next to event-ruler's published figures.
//!
//! `cargo bench -p switchyard-rules --bench citylots` (generates the 200 MB events file
//! into the target directory on first run; `CITYLOTS_PASSES` sets the pass count).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use switchyard_rules::Matcher;

const SINGLE_BANKS: &[&str] = &[
    "EXACT",
    "WILDCARD",
    "PREFIX",
    "PREFIX_EIC",
    "SUFFIX",
    "SUFFIX_EIC",
    "EQUALS_IGNORE_CASE",
    "NUMERIC",
    "ANYTHING_BUT",
    "ANYTHING_BUT_IGNORE_CASE",
    "ANYTHING_BUT_PREFIX",
    "ANYTHING_BUT_SUFFIX",
    "ANYTHING_BUT_WILDCARD",
    "COMPLEX_ARRAYS",
];

const PARTIAL_COMBO: &[&str] = &[
    "NUMERIC",
    "EXACT",
    "PREFIX",
    "ANYTHING_BUT",
    "ANYTHING_BUT_IGNORE_CASE",
    "ANYTHING_BUT_PREFIX",
    "ANYTHING_BUT_SUFFIX",
    "ANYTHING_BUT_WILDCARD",
];

/// event-ruler 2.0.1 on this kind of machine (citylots README, run A), events/s.
fn event_ruler(bank: &str) -> Option<u32> {
    Some(match bank {
        "EXACT" => 228_521,
        "WILDCARD" => 183_649,
        "PREFIX" => 235_736,
        "PREFIX_EIC" => 197_993,
        "SUFFIX" => 233_531,
        "SUFFIX_EIC" => 228_533,
        "EQUALS_IGNORE_CASE" => 197_387,
        "NUMERIC" => 133_108,
        "ANYTHING_BUT"
        | "ANYTHING_BUT_IGNORE_CASE"
        | "ANYTHING_BUT_PREFIX"
        | "ANYTHING_BUT_SUFFIX"
        | "ANYTHING_BUT_WILDCARD" => 134_521,
        "COMPLEX_ARRAYS" => 28_010,
        "PARTIAL_COMBO" => 43_561,
        "COMBO" => 16_772,
        _ => return None,
    })
}

struct Rule {
    name: String,
    pattern: String,
    expected: u64,
}

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/citylots")
}

fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // target/release/deps/citylots-<hash>
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn load_events() -> Vec<Vec<u8>> {
    let path = target_dir().join("citylots.jsonl");
    if !path.exists() {
        eprintln!("generating {} (about 13 s)...", path.display());
        let status = std::process::Command::new("python3")
            .arg(shared_dir().join("generate.py"))
            .arg(&path)
            .status()
            .expect("run python3 generate.py");
        assert!(status.success(), "generate.py failed");
    }
    let bytes = std::fs::read(&path).expect("read citylots.jsonl");
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn load_bank(category: &str, counts: &serde_json::Value) -> Vec<Rule> {
    let text = std::fs::read_to_string(shared_dir().join(format!("patterns/{category}.json")))
        .expect("read rule bank");
    let bank: serde_json::Value = serde_json::from_str(&text).unwrap();
    bank["rules"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| Rule {
            name: format!("{category}/{}", r["name"].as_str().unwrap()),
            pattern: r["pattern"].as_str().unwrap().to_owned(),
            expected: counts["counts"][category][i].as_u64().unwrap(),
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Events per second: median over `passes` full passes.
fn throughput(events: &[Vec<u8>], passes: usize, mut count: impl FnMut(&[u8]) -> usize) -> f64 {
    let mut rates = Vec::with_capacity(passes);
    let mut sink = 0usize;
    for _ in 0..passes {
        let start = Instant::now();
        for e in events {
            sink = sink.wrapping_add(count(e));
        }
        rates.push(events.len() as f64 / start.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    median(rates)
}

struct Row {
    bank: String,
    ours: f64,
    quamina: Option<f64>,
    quamina_note: String,
}

fn run_bank(bank: &str, rules: &[Rule], events: &[Vec<u8>], passes: usize) -> (Row, Vec<String>) {
    let mut failures = Vec::new();
    let mut matcher = Matcher::new();
    let start = Instant::now();
    for r in rules {
        matcher.add_rule(&r.name, &r.pattern).unwrap();
    }
    let compile = start.elapsed();

    let mut counts: HashMap<String, u64> = HashMap::new();
    for e in events {
        matcher
            .for_each_match(e, |name| *counts.entry(name.to_owned()).or_default() += 1)
            .unwrap();
    }
    for r in rules {
        let got = counts.get(&r.name).copied().unwrap_or(0);
        if got != r.expected {
            failures.push(format!(
                "{bank}: {} matched {got} events, expected {}",
                r.name, r.expected
            ));
        }
    }
    let ours = throughput(events, passes, |e| matcher.count_matches(e).unwrap());

    // The quamina crate, on every bank whose patterns it accepts.
    let mut q = quamina::Quamina::<String>::new();
    let mut refused = None;
    for r in rules {
        if let Err(e) = q.add_pattern(r.name.clone(), &r.pattern) {
            refused = Some(format!("refuses {}: {e}", r.name));
            break;
        }
    }
    let (quamina, quamina_note) = match refused {
        Some(note) => (None, note),
        None => {
            let mut qcounts: HashMap<String, u64> = HashMap::new();
            for e in events {
                for id in q.matches_for_event(e).unwrap() {
                    *qcounts.entry(id).or_default() += 1;
                }
            }
            let wrong: Vec<String> = rules
                .iter()
                .filter(|r| qcounts.get(&r.name).copied().unwrap_or(0) != r.expected)
                .map(|r| {
                    format!(
                        "{}={} (want {})",
                        r.name,
                        qcounts.get(&r.name).copied().unwrap_or(0),
                        r.expected
                    )
                })
                .collect();
            let rate = throughput(events, passes, |e| q.count_matches(e).unwrap());
            let note = if wrong.is_empty() {
                "counts agree".to_owned()
            } else {
                format!("counts differ: {}", wrong.join(", "))
            };
            (Some(rate), note)
        }
    };
    eprintln!(
        "{bank}: compiled {} rules in {:.2?}, {} states",
        rules.len(),
        compile,
        matcher.state_count()
    );
    (
        Row {
            bank: bank.to_owned(),
            ours,
            quamina,
            quamina_note,
        },
        failures,
    )
}

fn main() {
    let passes: usize = std::env::var("CITYLOTS_PASSES")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5);
    let only: Option<String> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.to_uppercase());
    let counts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared_dir().join("expected_counts.json")).unwrap(),
    )
    .unwrap();
    let mut events = load_events();
    assert_eq!(
        events.len() as u64,
        counts["events"].as_u64().unwrap(),
        "event count"
    );
    // CITYLOTS_LIMIT=N uses the first N events only (for profiling): counts are not checked.
    let limit: Option<usize> = std::env::var("CITYLOTS_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok());
    if let Some(n) = limit {
        events.truncate(n);
    }
    eprintln!(
        "{} events loaded, {passes} timed passes per bank",
        events.len()
    );

    let mut banks: Vec<(String, Vec<Rule>)> = SINGLE_BANKS
        .iter()
        .map(|b| (b.to_string(), load_bank(b, &counts)))
        .collect();
    let partial: Vec<Rule> = PARTIAL_COMBO
        .iter()
        .flat_map(|b| load_bank(b, &counts))
        .collect();
    let mut combo: Vec<Rule> = PARTIAL_COMBO
        .iter()
        .flat_map(|b| load_bank(b, &counts))
        .collect();
    combo.extend(load_bank("COMPLEX_ARRAYS", &counts));
    banks.push(("PARTIAL_COMBO".to_owned(), partial));
    banks.push(("COMBO".to_owned(), combo));

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (bank, rules) in &banks {
        if only.as_ref().is_some_and(|o| o != bank) {
            continue;
        }
        let (row, failed) = run_bank(bank, rules, &events, passes);
        if limit.is_none() {
            failures.extend(failed);
        }
        rows.push(row);
    }

    println!();
    println!(
        "| bank | switchyard-rules (events/s) | quamina 0.7 (events/s) | ratio | event-ruler (events/s) | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        let (q, qr) = match row.quamina {
            Some(q) => (format!("{q:.0}"), format!("{:.2}x", row.ours / q)),
            None => ("n/a".to_owned(), "–".to_owned()),
        };
        let (er, err) = match event_ruler(&row.bank) {
            Some(e) => (e.to_string(), format!("{:.1}x", row.ours / f64::from(e))),
            None => ("–".to_owned(), "–".to_owned()),
        };
        println!(
            "| {} | {:.0} | {} | {} | {} | {} |",
            row.bank, row.ours, q, qr, er, err
        );
    }
    println!();
    for row in &rows {
        println!("quamina on {}: {}", row.bank, row.quamina_note);
    }
    if failures.is_empty() {
        println!("\nall per-rule counts equal expected_counts.json");
    } else {
        for f in &failures {
            eprintln!("COUNT MISMATCH: {f}");
        }
        std::process::exit(1);
    }
}
