//! `/v1/webhooks`: manage inbound webhooks (bearer key), and receive on them
//! (`POST /v1/webhooks/{name}`: no key; the signature is the credential when `verify` is set).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::events::{Published, append_events};
use super::extract::{ApiJson, read_body};
use super::openapi::Binary;
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;
use switchyard_core::time::{format_ms, now_ms};
use switchyard_engine::meta::WebhookRow;
use switchyard_engine::metrics::WebhookLabels;
use switchyard_engine::webhooks::Webhook;

/// Managing webhooks: these ask for a key.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks))
        .routes(routes!(get_webhook, put_webhook, delete_webhook))
}

/// Receiving deliveries: no key, the signature is the credential (checked by the route).
pub fn deliveries() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(receive))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// The bus events are published on.
    bus: String,
    /// The CloudEvents `source` of every event.
    source: String,
    #[serde(default)]
    description: Option<String>,
    /// Where `type` comes from: a header name (`x-github-event`) or a JSONPath into the
    /// JSON body (`$.type`). Default: `switchyard.webhook.<name>`.
    #[serde(default)]
    type_from: Option<String>,
    #[serde(default)]
    verify: Option<VerifyIn>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    /// `standard-webhooks`, `github`, `stripe` or `hmac-sha256`.
    scheme: String,
    secret: String,
    /// `hmac-sha256` only: the signature header (default `x-signature`).
    #[serde(default)]
    header: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyOut {
    scheme: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    name: String,
    bus: String,
    source: String,
    description: Option<String>,
    type_from: Option<String>,
    /// The scheme; the secret is never shown again.
    verify: Option<VerifyOut>,
    /// Where the provider should send its deliveries (path on this server).
    path: String,
    created_at: String,
    updated_at: String,
}

fn webhook_out(w: &Webhook) -> WebhookOut {
    WebhookOut {
        name: w.name.clone(),
        bus: w.bus.clone(),
        source: w.source.clone(),
        description: w.description.clone(),
        type_from: w.type_from_text().map(str::to_owned),
        verify: w.verify.as_ref().map(|v| VerifyOut {
            scheme: v.scheme.as_str(),
            header: v.header.clone(),
        }),
        path: format!("/v1/webhooks/{}", w.name),
        created_at: format_ms(w.created_at_ms),
        updated_at: format_ms(w.updated_at_ms),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    webhooks: Vec<WebhookOut>,
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = ["read"])), responses((status = 200, body = WebhookList)))]
async fn list_webhooks(State(state): State<Arc<AppState>>) -> Json<WebhookList> {
    let webhooks = state
        .webhooks
        .list()
        .iter()
        .map(|w| webhook_out(w))
        .collect();
    Json(WebhookList { webhooks })
}

fn find(state: &AppState, name: &str) -> ApiResult<Arc<Webhook>> {
    state
        .webhooks
        .get(name)
        .ok_or_else(|| ApiError::not_found("webhook", name))
}

#[utoipa::path(get, path = "/v1/webhooks/{name}", tag = "webhooks", security(("bearer" = ["read"])),
    params(("name" = String, Path, example = "github", pattern = "^[A-Za-z0-9._-]{1,64}$")), responses((status = 200, body = WebhookOut), (status = 404)))]
async fn get_webhook(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<WebhookOut>> {
    let w = find(&state, &name)?;
    Ok(Json(webhook_out(&w)))
}

/// Creates or replaces a webhook. The bus must exist; a bad `type_from`, scheme or secret is
/// a 422 naming the field.
#[utoipa::path(put, path = "/v1/webhooks/{name}", tag = "webhooks", request_body = WebhookIn,
    params(("name" = String, Path, example = "github", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 201, body = WebhookOut), (status = 200, body = WebhookOut), (status = 400, description = "malformed JSON, or not a valid name"), (status = 413), (status = 415), (status = 422)))]
async fn put_webhook(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<WebhookIn>,
) -> ApiResult<(StatusCode, Json<WebhookOut>)> {
    super::buses::parse_name("webhook", &name)?;
    let invalid = |m: String| ApiError::new(Code::InvalidWebhook, m);
    if state.engine.buses.get(&body.bus).is_none() {
        return Err(invalid(format!("bus: {:?} does not exist", body.bus)));
    }
    let now = now_ms();
    let existing = state.webhooks.get(&name);
    let (scheme, secret, header) = match body.verify {
        Some(v) => (Some(v.scheme), Some(v.secret), v.header),
        None => (None, None, None),
    };
    let row = WebhookRow {
        name,
        bus: body.bus,
        source: body.source,
        description: body.description,
        type_from: body.type_from,
        verify_scheme: scheme,
        secret,
        verify_header: header,
        created_at_ms: now,
        updated_at_ms: now,
    };
    // Checked before anything is stored.
    Webhook::from_row(&row).map_err(invalid)?;
    let w = state
        .webhooks
        .put(&state.engine.meta, row)
        .await
        .map_err(ApiError::internal)?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(webhook_out(&w))))
}

#[utoipa::path(delete, path = "/v1/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path, example = "github", pattern = "^[A-Za-z0-9._-]{1,64}$")), responses((status = 204), (status = 404)))]
async fn delete_webhook(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if state.webhooks.remove(&state.engine.meta, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook", &name))
    }
}

/// Receives a delivery: verifies its signature (401 `invalid_signature` when it does not
/// verify), wraps the body into a CloudEvent (`id` = the provider's delivery id when it
/// sends one, so its retries are duplicates) and publishes it on the webhook's bus. Answers
/// like a publish. No bearer key.
#[utoipa::path(post, path = "/v1/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path, example = "github", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body(content = inline(Binary), content_type = "*/*", description = "any body, as the provider sends it"),
    responses((status = 200, body = Published), (status = 400), (status = 401), (status = 404), (status = 413)))]
async fn receive(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Published>> {
    let w = find(&state, &name)?;
    let outcome = accept(&state, &w, &headers, body).await;
    // A refused delivery never becomes an event, so it has no trace: count it and log why.
    let label = match &outcome {
        Ok(_) => "accepted",
        Err(e) => {
            tracing::warn!(webhook = %w.name, code = e.code.wire(), reason = %e.message, "webhook delivery refused");
            e.code.wire()
        }
    };
    state
        .engine
        .metrics
        .webhook_requests
        .get_or_create(&WebhookLabels {
            webhook: w.name.clone(),
            outcome: label.to_owned(),
        })
        .inc();
    outcome.map(Json)
}

async fn accept(
    state: &AppState,
    w: &Webhook,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Published> {
    let body = read_body(body, state.engine.limits.max_event_bytes).await?;
    let event = w.accept(&TextHeaders(headers), &body, now_ms(), &state.engine.limits)?;
    let bus = state
        .engine
        .buses
        .get(&w.bus)
        .ok_or_else(|| ApiError::not_found("bus", &w.bus))?;
    let mut events = vec![event];
    let span = switchyard_engine::telemetry::start_publish(
        &state.engine.telemetry,
        &w.bus,
        super::events::traceparent(headers),
        &mut events,
    );
    let published = append_events(state, &bus, events, false).await;
    switchyard_engine::telemetry::end_publish(
        span,
        published.as_ref().err().map(|e| e.message.as_str()),
    );
    published
}

/// A request's headers as the webhook code reads them.
struct TextHeaders<'a>(&'a HeaderMap);

impl switchyard_engine::webhooks::Headers for TextHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}
