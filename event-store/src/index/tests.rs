use std::ops::Bound;

use serde_json::{Value, json};

use super::*;

fn events() -> Vec<Value> {
    vec![
        json!({"specversion": "1.0", "id": "a", "source": "/shop", "type": "order.created", "time": "2024-01-01T10:00:00Z",
               "tier": "gold", "data": {"total": 120, "customer": {"name": "Ada Lovelace", "country": "DE"}, "items": [{"sku": "A"}, {"sku": "B"}]}}),
        json!({"specversion": "1.0", "id": "b", "source": "/shop", "type": "order.created", "time": "2024-01-01T11:00:00Z",
               "data": {"total": 80.5, "customer": {"name": "Grace Hopper", "country": "US"}, "items": []}}),
        json!({"specversion": "1.0", "id": "c", "source": "/billing", "type": "invoice.paid",
               "data": {"total": 100.0, "paid": true, "customer": {"country": "DE"}}}),
        // A time far outside Tantivy's date range must not break indexing.
        json!({"specversion": "1.0", "id": "d", "source": "/billing", "type": "ping", "data_base64": "AAE=", "time": "9999-12-31T23:59:59Z"}),
    ]
}

fn index() -> (tempfile::TempDir, EventIndex) {
    let dir = tempfile::tempdir().unwrap();
    let idx = EventIndex::open(dir.path()).unwrap();
    let evs = events();
    let docs: Vec<IndexDoc> = evs
        .iter()
        .enumerate()
        .map(|(i, e)| IndexDoc {
            offset: i as u64,
            received_at_ms: 1_000 * i as i64,
            event: e,
            matched_rules: &[],
        })
        .collect();
    idx.add(&docs).unwrap();
    idx.commit(4).unwrap();
    (dir, idx)
}

fn attr(name: &str) -> FieldRef {
    FieldRef::Attr(name.to_owned())
}

fn data(path: &str) -> FieldRef {
    FieldRef::Data(path.to_owned())
}

fn s(v: &str) -> Scalar {
    Scalar::Str(v.to_owned())
}

fn text(t: &str) -> Filter {
    Filter::Text(switchyard_core::text::tokenize(t))
}

fn hits(idx: &EventIndex, f: Filter) -> Vec<u64> {
    idx.search(&f, None, 100).unwrap()
}

#[test]
fn equality_on_attributes_and_data_paths() {
    let (_d, idx) = index();
    assert_eq!(
        hits(&idx, Filter::Eq(attr("type"), s("order.created"))),
        [1, 0]
    );
    assert_eq!(hits(&idx, Filter::Eq(attr("tier"), s("gold"))), [0]);
    assert_eq!(
        hits(&idx, Filter::Eq(data("customer.country"), s("DE"))),
        [2, 0]
    );
    assert_eq!(hits(&idx, Filter::Eq(data("items.sku"), s("B"))), [0]);
    assert_eq!(
        hits(&idx, Filter::Eq(data("paid"), Scalar::Bool(true))),
        [2]
    );
    // 120 and 100.0 are numbers whatever their JSON form.
    assert_eq!(
        hits(&idx, Filter::Eq(data("total"), Scalar::Num(100.0))),
        [2]
    );
    assert_eq!(
        hits(&idx, Filter::Eq(data("total"), Scalar::Num(120.0))),
        [0]
    );
    assert_eq!(hits(&idx, Filter::All), [3, 2, 1, 0]);
}

#[test]
fn ranges_exists_text_and_logic() {
    let (_d, idx) = index();
    let over = |n: f64| Filter::Range {
        field: data("total"),
        lower: Bound::Excluded(Scalar::Num(n)),
        upper: Bound::Unbounded,
    };
    assert_eq!(hits(&idx, over(100.0)), [0]);
    assert_eq!(hits(&idx, over(80.0)), [2, 1, 0]);
    let at_most = Filter::Range {
        field: data("total"),
        lower: Bound::Unbounded,
        upper: Bound::Included(Scalar::Num(100.0)),
    };
    assert_eq!(hits(&idx, at_most), [2, 1]);
    assert_eq!(hits(&idx, Filter::Exists(attr("tier"))), [0]);
    assert_eq!(hits(&idx, Filter::Exists(data("customer.name"))), [1, 0]);
    assert_eq!(hits(&idx, Filter::Exists(data("customer"))), [2, 1, 0]);
    assert_eq!(hits(&idx, text("lovelace")), [0]);
    assert_eq!(hits(&idx, text("GRACE hopper")), [1]);
    // A phrase: in order, adjacent, and within one string.
    assert!(hits(&idx, text("hopper grace")).is_empty());
    assert!(hits(&idx, text("lovelace de")).is_empty());
    assert!(hits(&idx, Filter::Text(Vec::new())).is_empty());
    let de_or_cheap = Filter::Or(vec![
        Filter::Eq(data("customer.country"), s("US")),
        over(110.0),
    ]);
    assert_eq!(hits(&idx, de_or_cheap), [1, 0]);
    let not_shop = Filter::Not(Box::new(Filter::Eq(attr("source"), s("/shop"))));
    assert_eq!(hits(&idx, not_shop), [3, 2]);
    let t = |h: u32| {
        chrono::DateTime::parse_from_rfc3339(&format!("2024-01-01T{h:02}:00:00Z"))
            .unwrap()
            .timestamp_millis()
    };
    let morning = Filter::Range {
        field: FieldRef::Time,
        lower: Bound::Included(Scalar::TimeMs(t(10))),
        upper: Bound::Excluded(Scalar::TimeMs(t(11))),
    };
    assert_eq!(hits(&idx, morning), [0]);
    let recent = Filter::Range {
        field: FieldRef::ReceivedAt,
        lower: Bound::Included(Scalar::TimeMs(2_000)),
        upper: Bound::Unbounded,
    };
    assert_eq!(hits(&idx, recent), [3, 2]);
    assert_eq!(
        idx.count(&Filter::Eq(attr("source"), s("/billing")))
            .unwrap(),
        2
    );
}

#[test]
fn pages_and_deletes_and_resumes() {
    let (dir, idx) = index();
    assert_eq!(idx.search(&Filter::All, Some(3), 2).unwrap(), [2, 1]);
    assert_eq!(idx.search(&Filter::All, Some(1), 2).unwrap(), [0]);
    assert_eq!(idx.indexed_upto(), 4);
    idx.delete_before(2).unwrap();
    idx.commit(4).unwrap();
    assert_eq!(hits(&idx, Filter::All), [3, 2]);
    drop(idx);
    let again = EventIndex::open(dir.path()).unwrap();
    assert_eq!(again.indexed_upto(), 4);
    assert_eq!(hits(&again, Filter::All), [3, 2]);
    let bool_range = Filter::Range {
        field: data("paid"),
        lower: Bound::Included(Scalar::Bool(false)),
        upper: Bound::Unbounded,
    };
    assert!(matches!(
        again.search(&bool_range, None, 10),
        Err(IndexError::Unsupported(_))
    ));
}

#[test]
fn prefixes_and_string_ranges() {
    let (_d, idx) = index();
    let prefix = |field: FieldRef, p: &str| hits(&idx, Filter::Prefix(field, p.to_owned()));
    assert_eq!(prefix(attr("type"), "order."), [1, 0]);
    assert_eq!(prefix(attr("type"), "in"), [2]);
    assert_eq!(prefix(attr("type"), ""), [3, 2, 1, 0]);
    assert_eq!(prefix(attr("type"), "Order"), Vec::<u64>::new());
    assert_eq!(prefix(data("customer.name"), "Grace"), [1]);
    assert_eq!(prefix(data("items.sku"), "B"), [0]);
    // A prefix stays within its path: "/shop" sources are not types.
    assert_eq!(prefix(attr("source"), "/s"), [1, 0]);
    let range = |lower: Bound<Scalar>, upper: Bound<Scalar>| {
        hits(
            &idx,
            Filter::Range {
                field: attr("type"),
                lower,
                upper,
            },
        )
    };
    assert_eq!(range(Bound::Included(s("j")), Bound::Unbounded), [3, 1, 0]);
    assert_eq!(range(Bound::Unbounded, Bound::Excluded(s("order"))), [2]);
    assert_eq!(
        range(
            Bound::Excluded(s("invoice.paid")),
            Bound::Included(s("order.created"))
        ),
        [1, 0]
    );
}

#[test]
fn aggregations_run_under_a_filter_and_report_the_match_count() {
    use crate::aggregation::Key;
    use crate::aggregation::agg_req::Aggregations;
    use crate::aggregation::agg_result::{AggregationResult, BucketResult};

    let (_d, idx) = index();
    let request: Aggregations = serde_json::from_value(json!({
        "g": {"terms": {"field": attr("source").column(), "size": 10}}
    }))
    .unwrap();
    let (total, results) = idx
        .aggregate(&Filter::Eq(attr("type"), s("order.created")), request)
        .unwrap();
    assert_eq!(total, 2);
    let Some(AggregationResult::BucketResult(BucketResult::Terms { buckets, .. })) =
        results.0.get("g")
    else {
        panic!("no terms result in {results:?}");
    };
    let got: Vec<(Key, u64)> = buckets
        .iter()
        .map(|b| (b.key.clone(), b.doc_count))
        .collect();
    assert_eq!(got, [(Key::Str("/shop".into()), 2)]);
}

#[test]
fn too_many_buckets_is_its_own_error() {
    let (_d, idx) = index();
    // Offsets 0 to 3 in buckets a millionth wide: millions of buckets.
    let request = serde_json::from_value(json!({
        "h": {"histogram": {"field": "offset", "interval": 1e-6}}
    }))
    .unwrap();
    let err = idx.aggregate(&Filter::All, request).unwrap_err();
    assert!(
        matches!(err, IndexError::TooManyBuckets { limit: MAX_BUCKETS }),
        "{err:?}"
    );
}

#[test]
fn negative_zero_is_zero() {
    let dir = tempfile::tempdir().unwrap();
    let idx = EventIndex::open(dir.path()).unwrap();
    let e = json!({"id": "z", "data": {"n": -0.0}});
    idx.add(&[IndexDoc {
        offset: 0,
        received_at_ms: 0,
        event: &e,
        matched_rules: &[],
    }])
    .unwrap();
    idx.commit(1).unwrap();
    assert_eq!(hits(&idx, Filter::Eq(data("n"), Scalar::Num(0.0))), [0]);
    let below_zero = Filter::Range {
        field: data("n"),
        lower: Bound::Unbounded,
        upper: Bound::Excluded(Scalar::Num(0.0)),
    };
    assert!(hits(&idx, below_zero).is_empty());
}

/// An index written under another schema (an older version's) is derived data: opening it
/// starts it again empty, so the indexer refills it from the log's first offset.
#[test]
fn an_index_with_an_older_schema_is_rebuilt_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut b = tantivy::schema::Schema::builder();
        let x = b.add_text_field("x", tantivy::schema::STRING | tantivy::schema::STORED);
        let old = tantivy::Index::create_in_dir(dir.path(), b.build()).unwrap();
        let mut writer: tantivy::IndexWriter = old.writer_with_num_threads(1, 15_000_000).unwrap();
        writer.add_document(tantivy::doc!(x => "old")).unwrap();
        writer.commit().unwrap();
    }
    let idx = EventIndex::open(dir.path()).unwrap();
    assert_eq!((idx.num_docs(), idx.indexed_upto()), (0, 0));
    let ev = json!({"specversion": "1.0", "id": "a", "source": "/s", "type": "t"});
    let doc = IndexDoc {
        offset: 0,
        received_at_ms: 0,
        event: &ev,
        matched_rules: &[],
    };
    idx.add(&[doc]).unwrap();
    idx.commit(1).unwrap();
    assert_eq!((idx.num_docs(), idx.indexed_upto()), (1, 1));
}
