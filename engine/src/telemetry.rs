//! Distributed tracing (SPEC §10): W3C trace context carried from publish to every delivery,
//! and OpenTelemetry spans exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! The trace context lives on the event itself, as the CloudEvents distributed-tracing
//! extension `traceparent`: a publish that brings a `traceparent` header for an event that
//! has none records it there, and with export on, an event without one gets the publish
//! span's. Each delivery attempt is a span, child of the event's context, and what a target
//! sends onward (the `traceparent` header of an HTTP delivery) is that span's context.

use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span};

/// The exporter, when one is configured.
pub struct Telemetry {
    tracing: Option<(SdkTracerProvider, SdkTracer)>,
}

/// Whether an OTLP endpoint is configured in the environment.
fn endpoint_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

impl Telemetry {
    /// Exports spans when the standard OTLP environment variables say where; otherwise
    /// only carries trace context. `OTEL_SERVICE_NAME` names the service (`switchyard`).
    pub fn from_env() -> anyhow::Result<Telemetry> {
        if !endpoint_configured() {
            return Ok(Telemetry { tracing: None });
        }
        use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(Duration::from_secs(10))
            .with_http_client(Exporting {
                client: reqwest::Client::new(),
                runtime: tokio::runtime::Handle::current(),
            })
            .build()?;
        let service =
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "switchyard".to_owned());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service)
                    .build(),
            )
            .build();
        let tracer = provider.tracer("switchyard");
        tracing::info!("exporting OpenTelemetry traces over OTLP/HTTP");
        Ok(Telemetry {
            tracing: Some((provider, tracer)),
        })
    }

    pub fn exporting(&self) -> bool {
        self.tracing.is_some()
    }

    /// A span, child of `parent` (a W3C `traceparent`) when it is valid.
    pub fn span(&self, name: String, kind: SpanKind, parent: Option<&str>) -> Option<Span> {
        let (_, tracer) = self.tracing.as_ref()?;
        let cx = parent
            .and_then(parse_traceparent)
            .map_or_else(Context::new, |sc| {
                Context::new().with_remote_span_context(sc)
            });
        Some(
            tracer
                .span_builder(name)
                .with_kind(kind)
                .start_with_context(tracer, &cx),
        )
    }

    /// Sends what is buffered and stops the exporter (at shutdown).
    pub fn shutdown(&self) {
        if let Some((provider, _)) = &self.tracing
            && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            tracing::warn!(error = %e, "flushing traces failed");
        }
    }
}

/// Starts a publish request's span (child of the request's `traceparent` header, or of the
/// one event's own context) and gives every event without a `traceparent` the request's
/// context: the span's when exporting, else the header's.
pub fn start_publish(
    telemetry: &Telemetry,
    bus: &str,
    traceparent_header: Option<&str>,
    events: &mut [switchyard_core::CloudEvent],
) -> Option<Span> {
    let header = traceparent_header
        .filter(|v| parse_traceparent(v).is_some())
        .map(str::to_owned);
    if header.is_none() && !telemetry.exporting() {
        return None;
    }
    let parent = header.clone().or_else(|| match events {
        [one] => event_traceparent(&one.json),
        _ => None,
    });
    let mut span = telemetry.span(
        format!("publish {bus}"),
        SpanKind::Server,
        parent.as_deref(),
    );
    if let Some(span) = &mut span {
        span.set_attributes([
            KeyValue::new("switchyard.bus", bus.to_owned()),
            KeyValue::new("switchyard.events", events.len() as i64),
        ]);
    }
    if let Some(tp) = span.as_ref().map(traceparent_of).or(header) {
        for e in events.iter_mut() {
            if event_traceparent(&e.json).is_none()
                && let Some(json) = with_traceparent(&e.json, &tp)
            {
                e.json = json;
            }
        }
    }
    span
}

/// Ends a publish span with the request's outcome.
pub fn end_publish(span: Option<Span>, error: Option<&str>) {
    end_attempt(span, None, error);
}

/// What a delivery attempt's span is about.
pub struct AttemptNames {
    pub bus: String,
    pub rule: String,
    pub target: String,
    pub event: String,
}

/// A delivery attempt's span, child of the event's trace context; ended by [`end_attempt`].
pub fn start_attempt(
    telemetry: &Telemetry,
    event_traceparent: Option<&str>,
    names: AttemptNames,
    attempt: u32,
) -> Option<Span> {
    let mut span = telemetry.span(
        format!("deliver {}/{}", names.rule, names.target),
        SpanKind::Producer,
        event_traceparent,
    )?;
    span.set_attributes([
        KeyValue::new("switchyard.bus", names.bus),
        KeyValue::new("switchyard.rule", names.rule),
        KeyValue::new("switchyard.target", names.target),
        KeyValue::new("cloudevents.event_id", names.event),
        KeyValue::new("switchyard.attempt", i64::from(attempt)),
    ]);
    Some(span)
}

/// Records an attempt's outcome and ends its span.
pub fn end_attempt(span: Option<Span>, status: Option<u16>, error: Option<&str>) {
    let Some(mut span) = span else {
        return;
    };
    if let Some(status) = status {
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    match error {
        Some(e) => span.set_status(Status::error(e.to_owned())),
        None => span.set_status(Status::Ok),
    }
    span.end();
}

/// The `traceparent` of a span of ours.
pub fn traceparent_of(span: &Span) -> String {
    format_traceparent(span.span_context())
}

/// `00-<trace id>-<span id>-<flags>`.
pub fn format_traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// Parses a W3C `traceparent` (version 00); anything invalid is ignored, as the spec says.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if version != "00"
        || parts.next().is_some()
        || !hex(trace, 32)
        || !hex(span, 16)
        || !hex(flags, 2)
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// Adds `"traceparent"` as the first member of an event in JSON format. The rest of the
/// publisher's bytes are kept as they were.
pub fn with_traceparent(json: &[u8], traceparent: &str) -> Option<Vec<u8>> {
    let start = json.iter().position(|b| !b.is_ascii_whitespace())?;
    if json[start] != b'{' {
        return None;
    }
    let empty = json[start + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'}');
    let member = format!(
        "\"traceparent\":{}{}",
        serde_json::Value::from(traceparent),
        if empty { "" } else { "," }
    );
    let mut out = Vec::with_capacity(json.len() + member.len());
    out.extend_from_slice(&json[..=start]);
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(&json[start + 1..]);
    Some(out)
}

/// The event's own `traceparent` extension, if it has one.
pub fn event_traceparent(json: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Only {
        traceparent: Option<String>,
    }
    serde_json::from_slice::<Only>(json)
        .ok()
        .and_then(|o| o.traceparent)
}

/// The OTLP exporter's HTTP client: our reqwest, driven on the server's runtime (the
/// exporter calls it from its own thread).
#[derive(Debug)]
struct Exporting {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporting {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let sent = self.runtime.spawn(async move {
            let mut req = client
                .request(parts.method, parts.uri.to_string())
                .body(body);
            for (name, value) in &parts.headers {
                req = req.header(name, value);
            }
            let resp = req.send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = sent.await??;
        let mut response = opentelemetry_http::Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_round_trip_and_invalid_ones_are_ignored() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let sc = parse_traceparent(tp).unwrap();
        assert_eq!(format_traceparent(&sc), tp);
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_extension_is_added_without_touching_the_rest() {
        let json = br#"  {"specversion": "1.0",  "id":"1"}"#;
        let out = with_traceparent(json, "00-a-b-01").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"  {"traceparent":"00-a-b-01","specversion": "1.0",  "id":"1"}"#
        );
        assert_eq!(
            with_traceparent(b"{ }", "t").unwrap(),
            br#"{"traceparent":"t" }"#
        );
        assert!(with_traceparent(b"[1]", "t").is_none());
        assert_eq!(
            event_traceparent(br#"{"id":"1","traceparent":"x"}"#).as_deref(),
            Some("x")
        );
        assert_eq!(event_traceparent(br#"{"id":"1"}"#), None);
    }
}
