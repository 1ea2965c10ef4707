//! Switchyard's event query language: lexer, parser, typed AST and a reference evaluator,
//! plus analytics requests (group by, histograms, metrics) with a reference implementation.
//! Without features: no IO, no index. With `index`, [`Query`] translates into the event
//! index's filters and an [`AnalyticsRequest`] runs as index aggregations; the evaluators
//! here are the oracle those are tested against.
//!
//! ```
//! use switchyard_analytics::Query;
//! use serde_json::json;
//!
//! let q = Query::parse(r#"type = com.shop.order.* AND data.total > 100 AND NOT data.country IN (US, CA)"#)?;
//! let event = json!({"type": "com.shop.order.created", "data": {"total": 120.5, "country": "DE"}});
//! assert!(q.matches(&event));
//! assert_eq!(q.to_string(), "type = com.shop.order.* AND data.total > 100 AND NOT data.country IN (US, CA)");
//! # Ok::<(), switchyard_analytics::QueryError>(())
//! ```
//!
//! # Grammar
//!
//! ```text
//! query      = [ or_expr ] ;                       (* empty or blank: every event *)
//! or_expr    = and_expr , { "OR" , and_expr } ;
//! and_expr   = unary , { [ "AND" ] , unary } ;      (* adjacent terms are ANDed *)
//! unary      = "NOT" , unary | primary ;
//! primary    = "(" , or_expr , ")"
//!            | field , compare_op , value
//!            | field , "IN" , "(" , value , { "," , value } , ")"
//!            | "EXISTS" , field
//!            | "*"                                 (* every event *)
//!            | text ;                              (* full-text on data *)
//! compare_op = "=" | "!=" | "<" | "<=" | ">" | ">=" ;
//! value      = bare_word                           (* number, true, false, null or string *)
//!            | string                              (* always a string *)
//!            | prefix ;                            (* only after = and != *)
//! prefix     = bare_word_ending_in_star | string , "*" ;     (* type = com.shop.* *)
//! text       = bare_word | string ;
//! field      = attribute | "data" , { "." , segment } ;
//! attribute  = ( "a"…"z" | "0"…"9" | "_" ) , { "a"…"z" | "0"…"9" | "_" } ;
//! segment    = bare_segment | string ;             (* data."a.b"."key with spaces" *)
//! bare_segment = word_char but '.' and '*' , { word_char but '.' and '*' } ;
//! string     = '"' , { character | escape } , '"' ;
//! escape     = "\" , ( '"' | "\" | "/" | "b" | "f" | "n" | "r" | "t" | "u" , 4 * hex ) ;
//! bare_word  = word_char , { word_char } ;
//! word_char  = any character but whitespace, '(', ')', ',', '"', '=', '<', '>',
//!              and a '!' directly before '=' ;
//! ```
//!
//! - **Keywords** `AND`, `OR`, `NOT`, `EXISTS`, `IN` are case-insensitive whole bare words.
//!   A word directly followed by a comparison operator (or by `IN (`) is always a field,
//!   so attributes named like keywords still work. To search for a keyword as text, quote
//!   it: `"and"`.
//! - **Precedence**: `NOT` binds tightest, then `AND` (explicit or implicit), then `OR`:
//!   `a OR b c` is `a OR (b AND c)`; `NOT a b` is `(NOT a) AND b`. A comparison is one
//!   term: `NOT type = x` is `NOT (type = x)`. Because adjacency means `AND`,
//!   `data.name = Jane Doe` is `data.name = Jane AND Doe`: quote values with spaces.
//! - **Bare values**: `true`, `false`, `null` (lowercase) and JSON number syntax
//!   (`-1.5e3`) are typed; everything else is a string: `2024-01-31T12:00:00Z`,
//!   `/shop/eu`, `007` (not a number in JSON), `True`. Quote to force a string: `"42"`.
//!   A keyword is not a value: `x = and` is an error, `x = "and"` is not.
//! - **Prefix**: a value ending in `*` matches strings starting with what comes before it
//!   (`type = com.shop.*`, `data.name = "Jane D"*`), with `=` or `!=` only. A `*`
//!   elsewhere in a bare value is an error; quote to mean a literal `*`.
//! - **Fields**: `data` and paths below it read the event's `data`; any other name is a
//!   top-level attribute (CloudEvents attributes and extensions are lowercase letters and
//!   digits; `_` is allowed for delivery records' fields such as `latency_ms`). Path
//!   segments are object keys, bare (`data.customer.tier`) or quoted for keys holding dots,
//!   spaces or quotes (`data."a.b"`). There is no array index syntax: arrays are looked
//!   through (see below).
//! - **Full text**: a bare word or a quoted phrase that is not part of a comparison is a
//!   full-text term on `data`. Its text is cut into tokens by [`tokenize`]; a word like
//!   `card-declined` or a phrase `"card declined"` is the phrase `card declined`.
//!
//! # Matching
//!
//! [`Query::matches`] is the definition; the index translation must agree with it.
//!
//! - **Arrays**: a field holds every value found along its path, looking through arrays
//!   at any level; a comparison holds if any of those values satisfies it.
//! - **`=`**: numbers equal by value (`5` = `5.0`); strings exactly (case-sensitive);
//!   booleans as booleans. A number in the query also equals a string spelling it as
//!   `Display` writes the number, so `id = 42` finds the id `"42"` (but not `"042"`).
//!   A string in the query never equals a number: `data.total = "10"` does not find `10`.
//! - **`field = null`** holds when the field has no value: it is missing, `null`, or an
//!   array/object holding nothing but `null`s. It is exactly `NOT EXISTS field`.
//! - **`!=`** is exactly `NOT (field = value)`: it holds for events that lack the field,
//!   which is what "everything except" means to a user.
//! - **`<`, `<=`, `>`, `>=`** compare numbers with numbers and strings with strings (by
//!   code point); a value of the other type never satisfies them (`"9"` is not `> 5`).
//!   `true`, `false` and `null` cannot be ordered: that is a parse error.
//! - **`time`** compares as an instant at millisecond precision: the query value must be
//!   an RFC 3339 timestamp or a date (midnight UTC) — a parse error otherwise — and
//!   events whose `time` does not parse never satisfy a comparison.
//! - **`IN (a, b)`** is `field = a OR field = b`.
//! - **`EXISTS field`** holds when the field has a string, number or boolean at or below
//!   it (what an index stores): `null`, `[]` and `{}` do not count.
//! - **Full text** holds when some string value anywhere in `data` contains the term's
//!   tokens in order and adjacent. Object keys, numbers and attributes are not searched.
//!
//! # Limits
//!
//! Against hostile input, a query may be at most [`MAX_QUERY_BYTES`] long, nest
//! parentheses and `NOT` at most [`MAX_DEPTH`] deep, and hold at most [`MAX_TERMS`] leaf
//! terms (each `IN` value counts). The parser's recursion is bounded by the depth limit.
//!
//! # Translating to an index
//!
//! The tree maps node by node: `All` to match-all; `And`/`Or`/`Not` to boolean
//! must/should/must-not clauses ([`Query::to_nnf`] leaves `NOT` only above leaves, with
//! `!=` as `NOT =`); `Compare` on a number to a numeric term or range on the field, plus
//! (for `=`) a term on the number's `Display` text among the field's raw strings;
//! `Compare` on a string to a term or range on the raw (untokenized) string; `Compare` on
//! a boolean to a boolean term; `= null` to `NOT EXISTS`; `time` (`=` and `!=` too) to a
//! millisecond range on a date field ([`parse_timestamp_ms`] reads the value, and the
//! index reads events' `time` with the same function); `In` to a should of its `=`s;
//! `Prefix` to a prefix on the raw string; `Exists` to an exists query over the path and
//! everything below it; `Text` to a phrase (one token: a term) within one of `data`'s
//! strings, tokenized by [`tokenize`], which is the index's tokenizer too. Keys holding a
//! dot and `data` itself cannot be addressed in the index: the translation says so
//! (`unsupported_query`) rather than answer differently.
//!
//! # Execution
//!
//! `index::run` (with the `index` feature) answers an [`AnalyticsRequest`] from the event
//! index: grouping, histograms and metrics happen in Tantivy's aggregations (nested
//! `terms` per `group_by` field, records without a value in its `missing` bucket, read
//! back as `null`; `date_histogram` on receive time; `stats`, and for percentiles a sketch
//! asked, in a second pass, for the nearest rank of each group's own count). Every group
//! is read, up to `index::MAX_GROUPS` (past it, and past Tantivy's bucket limit, the
//! request fails rather than rank a sample), then ranked by the same code as
//! [`AnalyticsRequest::compute`]. Counts are exact, sums and means up to floating-point
//! rounding, percentiles within 1% of the nearest-rank value. `tests/oracle.rs` holds the
//! index to the reference over random records and requests.

//! # Analytics
//!
//! [`AnalyticsRequest::from_json`] reads the body of `POST /v1/buses/{bus}/analytics` (and
//! `POST /v1/analytics/deliveries`) into a validated [`AnalyticsRequest`]:
//!
//! ```
//! use switchyard_analytics::{AnalyticsRequest, Metric, Order};
//! let r = AnalyticsRequest::from_json(br#"{"q": "type = com.shop.*", "from": "2024-01-31",
//!     "to": "2024-02-01", "group_by": ["data.country"], "interval": "1h",
//!     "metric": "p95:data.total", "order": "desc", "limit": 5}"#)?;
//! assert_eq!((r.interval.map(|i| i.as_ms()), r.metric.to_string(), r.order, r.limit),
//!            (Some(3_600_000), "p95:data.total".to_owned(), Order::Desc, 5));
//! # Ok::<(), switchyard_analytics::AnalyticsError>(())
//! ```
//!
//! - `from` (inclusive) and `to` (exclusive) are required: RFC 3339 or dates. They apply
//!   to each record's own time (`received_at` for events, as in search).
//! - `q` defaults to every record; `group_by` to none (one overall row); `metric` to
//!   `count`; `order` to `desc`; `limit` to [`DEFAULT_LIMIT`].
//! - `group_by`: at most [`MAX_GROUP_BY`] distinct fields, written as in queries.
//! - `interval`: `<n>s|m|h|d`, 1s to 365d, buckets aligned to the Unix epoch (UTC), and at
//!   most [`MAX_BUCKETS`] buckets over the window.
//! - `metric`: `count`, or `avg`, `sum`, `min`, `max` or `pNN` (1 to 99, nearest rank)
//!   followed by `:field`, over the numbers in that field. `-0` is `0`, in groups and in
//!   metrics alike.
//! - `limit`: 1 to [`MAX_LIMIT`] rows, or series with an `interval`.
//!
//! [`AnalyticsRequest::compute`] is the reference result over a slice of records; its doc
//! says exactly how records fall into groups and how rows are ranked.

mod aggregate;
mod ast;
mod bare;
mod display;
mod error;
mod eval;
#[cfg(feature = "index")]
pub mod index;
mod lexer;
mod parser;
mod request;
mod text;
mod time;

pub use aggregate::{AnalyticsResult, Group, Point, Row, Series};
pub use ast::{CompareOp, Field, Query, Value};
pub use error::{AnalyticsError, QueryError};
pub use parser::{MAX_DEPTH, MAX_QUERY_BYTES, MAX_TERMS};
pub use request::{
    AnalyticsBody, AnalyticsRequest, DEFAULT_LIMIT, Interval, MAX_BUCKETS, MAX_GROUP_BY, MAX_LIMIT,
    Metric, Order,
};
pub use text::tokenize;
pub use time::{format_timestamp_ms, parse_timestamp_ms};
