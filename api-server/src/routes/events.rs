//! `/v1/buses/{bus}/events`: publish in the three CloudEvents HTTP modes, list, get.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use switchyard_core::CloudEvent;
use switchyard_core::cloudevent::{self, BinaryEvent};
use switchyard_core::time::format_ms;
use switchyard_engine::events::PageRequest;
use switchyard_event_store::{Appended, Record};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::buses::find_bus;
use super::extract::{ApiQuery, page_limit, parse_cursor, read_body};
use super::openapi::{Binary, CloudEventJson};
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(publish, list_events))
        .routes(routes!(get_event))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    accepted: usize,
    events: Vec<PublishedEvent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedEvent {
    id: String,
    source: String,
    offset: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

/// Publishes events. The mode comes from the request: `ce-specversion` header → binary;
/// `application/cloudevents+json` (or plain `application/json`) → structured;
/// `application/cloudevents-batch+json` → batched. Answers after the events are durable.
#[utoipa::path(post, path = "/v1/buses/{bus}/events", tag = "events", security(("bearer" = ["publish"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"),
        ("ce-specversion" = Option<String>, Header, nullable = false, description = "binary mode: present (`1.0`) with `ce-id`, `ce-source`, `ce-type`; the body is the event's data"),
        ("ce-id" = Option<String>, Header, nullable = false), ("ce-source" = Option<String>, Header, nullable = false), ("ce-type" = Option<String>, Header, nullable = false)),
    request_body(description = "a CloudEvent (structured), an array of them (batched), or any body with ce-* headers (binary)",
        content((inline(CloudEventJson) = "application/cloudevents+json"),
            (inline(Vec<CloudEventJson>) = "application/cloudevents-batch+json"),
            (inline(CloudEventJson) = "application/json"),
            (inline(Binary) = "*/*"))),
    responses((status = 200, body = Published), (status = 400), (status = 404), (status = 413), (status = 415),
        (status = 422, description = "the bus enforces schemas and an event breaks its schema"), (status = 503, description = "the bus is shutting down")))]
async fn publish(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Published>> {
    let started = Instant::now();
    let bus = find_bus(&state, &bus)?;
    let body = read_body(body, state.config.max_batch_bytes).await?;
    let mut events = parse_events(&headers, &body, &state.engine.limits)?;
    let span = switchyard_engine::telemetry::start_publish(
        &state.engine.telemetry,
        &bus.settings.name,
        traceparent(&headers),
        &mut events,
    );
    let published = append_events(&state, &bus, events, is_batch(&headers)).await;
    switchyard_engine::telemetry::end_publish(
        span,
        published.as_ref().err().map(|e| e.message.as_str()),
    );
    let published = published?;
    state
        .engine
        .metrics
        .ingest_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(published))
}

/// The request's `traceparent` header, if it is text.
pub fn traceparent(headers: &HeaderMap) -> Option<&str> {
    headers.get("traceparent").and_then(|v| v.to_str().ok())
}

/// Appends validated events and reports them the way a publish answers (webhooks too).
pub async fn append_events(
    state: &AppState,
    bus: &switchyard_engine::buses::Bus,
    events: Vec<switchyard_core::CloudEvent>,
    batched: bool,
) -> ApiResult<Published> {
    let appended = state
        .engine
        .ingest
        .append(bus, events)
        .await
        .map_err(|e| ingest_error(e, batched))?;
    let events = appended
        .into_iter()
        .map(|(id, source, a)| PublishedEvent {
            id,
            source,
            offset: a.offset(),
            duplicate: matches!(a, Appended::Duplicate { .. }),
        })
        .collect::<Vec<_>>();
    Ok(Published {
        accepted: events.len(),
        events,
    })
}

fn is_batch(headers: &HeaderMap) -> bool {
    !headers.contains_key("ce-specversion")
        && headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/cloudevents-batch+json")
            })
}

/// Schema violations on an enforcing bus are a 422 naming every problem; batches say which
/// event each one is about.
fn ingest_error(e: switchyard_engine::ingest::IngestError, batched: bool) -> ApiError {
    match e {
        switchyard_engine::ingest::IngestError::Log(e) => e.into(),
        switchyard_engine::ingest::IngestError::Schema(found) => {
            let violations: Vec<Value> = found
                .iter()
                .flat_map(|(i, vs)| {
                    vs.iter().map(move |v| {
                        if batched {
                            json!({"index": i, "pointer": v.pointer, "message": v.message})
                        } else {
                            json!({"pointer": v.pointer, "message": v.message})
                        }
                    })
                })
                .collect();
            ApiError::new(
                Code::SchemaViolation,
                format!(
                    "{} event(s) break their declared schema; nothing was stored",
                    found.len()
                ),
            )
            .with_details(json!({ "violations": violations }))
        }
    }
}

fn parse_events(
    headers: &HeaderMap,
    body: &[u8],
    limits: &switchyard_core::Limits,
) -> ApiResult<Vec<CloudEvent>> {
    let content_type = match headers.get(CONTENT_TYPE).map(|v| v.to_str()) {
        None => None,
        Some(Ok(ct)) => Some(ct),
        Some(Err(_)) => {
            return Err(ApiError::new(
                Code::InvalidHeader,
                "Content-Type is not ASCII",
            ));
        }
    };
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if headers.contains_key("ce-specversion") {
        return parse_binary(headers, content_type, body, limits).map(|e| vec![e]);
    }
    match media.as_str() {
        "application/cloudevents+json" | "application/json" => {
            cloudevent::parse_structured(body, limits)
                .map(|e| vec![e])
                .map_err(ApiError::from)
        }
        "application/cloudevents-batch+json" => {
            cloudevent::parse_batch(body, limits).map_err(ApiError::from)
        }
        _ => Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!(
                "Content-Type {media:?} is not a CloudEvents mode: send application/cloudevents+json (one event), \
                 application/cloudevents-batch+json (an array), or ce-* headers with any body (binary mode)"
            ),
        )),
    }
}

fn parse_binary(
    headers: &HeaderMap,
    content_type: Option<&str>,
    body: &[u8],
    limits: &switchyard_core::Limits,
) -> ApiResult<CloudEvent> {
    let attributes: Vec<(&str, &[u8])> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().strip_prefix("ce-")?, value.as_bytes())))
        .collect();
    cloudevent::from_binary(
        BinaryEvent {
            attributes: &attributes,
            content_type,
            body,
        },
        limits,
    )
    .map_err(ApiError::from)
}

/// One stored event as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventRecord<'a> {
    /// The CloudEvent in JSON format, as published.
    #[schema(value_type = Object)]
    event: &'a RawValue,
    offset: u64,
    received_at: String,
    /// Rules the event matched when it was published.
    matched_rules: &'a [String],
}

pub fn to_record(r: &Record) -> ApiResult<EventRecord<'_>> {
    let event: &RawValue = serde_json::from_slice(&r.payload).map_err(|e| {
        ApiError::internal(format!(
            "stored event at offset {} is not JSON: {e}",
            r.offset
        ))
    })?;
    Ok(EventRecord {
        event,
        offset: r.offset,
        received_at: format_ms(r.received_at_ms),
        matched_rules: &r.matched_rules,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage<'a> {
    events: Vec<EventRecord<'a>>,
    next_cursor: Option<String>,
}

/// Serialises straight to bytes, so stored events (raw JSON) go out exactly as published;
/// a detour through `serde_json::Value` would re-order their members.
pub fn json_response<T: Serialize>(value: &T) -> ApiResult<Response> {
    let body = serde_json::to_vec(value).map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Search query (see the query language in the README); without it the listing reads
    /// straight from the log.
    q: Option<String>,
    /// Oldest `received_at` to include (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Newest `received_at` to include (RFC 3339, exclusive).
    #[param(format = DateTime)]
    to: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]+$")]
    cursor: Option<String>,
}

/// Lists events newest first: from the log, or with `q` through the index.
#[utoipa::path(get, path = "/v1/buses/{bus}/events", tag = "events", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ListParams),
    responses((status = 200, body = EventPage), (status = 400), (status = 404)))]
async fn list_events(
    State(state): State<Arc<AppState>>,
    Path(bus): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    let bus = find_bus(&state, &bus)?;
    let time = |name, t: &Option<String>| {
        t.as_deref()
            .map(|t| super::extract::parse_time(name, t))
            .transpose()
    };
    let page = PageRequest {
        from_ms: time("from", &params.from)?,
        to_ms: time("to", &params.to)?,
        before: parse_cursor::<u64>(params.cursor.as_deref())?,
        limit: page_limit(params.limit)?,
    };
    let filter = match params.q.as_deref().filter(|q| !q.trim().is_empty()) {
        Some(q) => Some(super::extract::parse_query(q)?),
        None => None,
    };
    let page = bus.events_page(filter, page).await?;
    json_response(&EventPage {
        events: page
            .records
            .iter()
            .map(to_record)
            .collect::<ApiResult<_>>()?,
        next_cursor: page.next.map(|n| n.to_string()),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Which source's event, when several sources used the same id.
    pub source: Option<String>,
}

/// One event by id.
#[utoipa::path(get, path = "/v1/buses/{bus}/events/{id}", tag = "events", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("id" = String, Path, example = "order-1"), GetParams),
    responses((status = 200, body = EventRecord), (status = 404), (status = 409, description = "several sources used this id; pass ?source=")))]
async fn get_event(
    State(state): State<Arc<AppState>>,
    Path((bus, id)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<GetParams>,
) -> ApiResult<Response> {
    let bus = find_bus(&state, &bus)?;
    let record = bus.lookup(&id, params.source.as_deref()).await?;
    json_response(&to_record(&record)?)
}
