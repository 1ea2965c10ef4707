//! The trace of one event: everything that happened to it, in time order.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::buses::find_bus;
use super::events::{EventRecord, GetParams, json_response, to_record};
use super::extract::ApiQuery;
use crate::error::ApiResult;
use crate::state::AppState;
use switchyard_core::time::format_ms;
use switchyard_engine::dispatch::journal::{Stage, TraceStep};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(trace))
}

/// One step of an event's life, with its time.
#[derive(Debug, Serialize, ToSchema)]
pub struct Step {
    at: String,
    #[serde(flatten)]
    step: TraceStep,
}

impl From<TraceStep> for Step {
    fn from(step: TraceStep) -> Step {
        Step {
            at: format_ms(step.at_ms),
            step,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Trace<'a> {
    event: EventRecord<'a>,
    timeline: Vec<Step>,
}

/// Everything that happened to one event, in time order.
#[utoipa::path(get, path = "/v1/buses/{bus}/events/{id}/trace", tag = "events", security(("bearer" = ["read"])),
    params(("bus" = String, Path, example = "default", pattern = "^[A-Za-z0-9._-]{1,64}$"), ("id" = String, Path, example = "order-1"), GetParams),
    responses((status = 200, body = Trace), (status = 404), (status = 409)))]
async fn trace(
    State(state): State<Arc<AppState>>,
    Path((bus, id)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<GetParams>,
) -> ApiResult<Response> {
    let bus = find_bus(&state, &bus)?;
    let record = bus.lookup(&id, params.source.as_deref()).await?;
    let entries = bus
        .dispatch
        .journal
        .entries(&record.source, &record.id, record.offset)
        .await?;
    let at = record.received_at_ms;
    let mut timeline = vec![
        TraceStep::at(at, Stage::Received),
        TraceStep {
            offset: Some(record.offset),
            ..TraceStep::at(at, Stage::Stored)
        },
    ];
    timeline.extend(record.matched_rules.iter().map(|r| TraceStep {
        rule: r.clone(),
        ..TraceStep::at(at, Stage::Matched)
    }));
    // The offset shows once, on `stored`: every journal line is about that same copy.
    timeline.extend(entries.into_iter().map(|e| TraceStep { offset: None, ..e }));
    let timeline = timeline.into_iter().map(Step::from).collect();
    json_response(&Trace {
        event: to_record(&record)?,
        timeline,
    })
}
