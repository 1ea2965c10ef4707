//! The one place where errors become HTTP responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchyard_core::{BatchError, ErrorKind, EventError, StructureError};

/// The error table: every code the API answers with, the kind of failure it is (which
/// decides its HTTP status, in [`status`]) and its wire name. Two codes may share a wire
/// name when the same word means different statuses in different places (an event that is
/// not one is a 400 on publish and a 422 where a route tests a rule).
macro_rules! error_table {
    ($($code:ident => $kind:ident, $wire:literal;)*) => {
        /// A code of the error table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($code,)*
        }

        impl Code {
            /// Every code, in table order.
            #[cfg(test)]
            pub const ALL: &[Code] = &[$(Code::$code,)*];

            pub fn kind(self) -> ErrorKind {
                match self {
                    $(Code::$code => ErrorKind::$kind,)*
                }
            }

            /// The `code` member of the answer.
            pub fn wire(self) -> &'static str {
                match self {
                    $(Code::$code => $wire,)*
                }
            }
        }
    };
}

error_table! {
    // Requests the server could not read.
    BadRequest => InvalidInput, "bad_request";
    BadBody => InvalidInput, "bad_body";
    InvalidHeader => InvalidInput, "invalid_header";
    InvalidJson => InvalidInput, "invalid_json";
    InvalidName => InvalidInput, "invalid_name";
    InvalidQuery => InvalidInput, "invalid_query";
    InvalidCursor => InvalidInput, "invalid_cursor";
    UnsupportedQuery => InvalidInput, "unsupported_query";
    TooManyGroups => InvalidInput, "too_many_groups";
    InvalidEvent => InvalidInput, "invalid_event";
    InvalidBatch => InvalidInput, "invalid_batch";
    InvalidWebhookBody => InvalidInput, "invalid_webhook_body";
    DuplicateKey => InvalidInput, "duplicate_key";
    TooDeep => InvalidInput, "too_deep";
    LoneSurrogate => InvalidInput, "lone_surrogate";
    // Who is asking.
    Unauthenticated => Unauthenticated, "unauthenticated";
    Unauthorized => Unauthenticated, "unauthorized";
    InvalidSignature => Unauthenticated, "invalid_signature";
    Forbidden => Forbidden, "forbidden";
    // What is asked for.
    NotFound => NotFound, "not_found";
    Conflict => Conflict, "conflict";
    AmbiguousId => Conflict, "ambiguous_id";
    KeyExists => Conflict, "key_exists";
    FunctionInUse => Conflict, "function_in_use";
    RedriveRunning => Conflict, "redrive_running";
    // Limits.
    TooLarge => TooLarge, "too_large";
    RequestTimeout => TimedOut, "request_timeout";
    UnsupportedMediaType => UnsupportedMediaType, "unsupported_media_type";
    RateLimited => RateLimited, "rate_limited";
    // Well-formed input that breaks a rule.
    Unprocessable => Unprocessable, "unprocessable";
    InvalidBody => Unprocessable, "invalid_body";
    InvalidField => Unprocessable, "invalid_field";
    InvalidRule => Unprocessable, "invalid_rule";
    InvalidPattern => Unprocessable, "invalid_pattern";
    InvalidTransform => Unprocessable, "invalid_transform";
    InvalidTarget => Unprocessable, "invalid_target";
    TransformFailed => Unprocessable, "transform_failed";
    UnusableEvent => Unprocessable, "invalid_event";
    SchemaViolation => Unprocessable, "schema_violation";
    InvalidSchema => Unprocessable, "invalid_schema";
    InvalidModule => Unprocessable, "invalid_module";
    InvalidLimits => Unprocessable, "invalid_limits";
    InvalidWebhook => Unprocessable, "invalid_webhook";
    // Ours.
    Unavailable => Unavailable, "unavailable";
    Internal => Internal, "internal";
}

impl Code {
    /// The code for any error of `kind`, when nothing more precise names it.
    pub fn generic(kind: ErrorKind) -> Code {
        match kind {
            ErrorKind::InvalidInput => Code::BadRequest,
            ErrorKind::Unauthenticated => Code::Unauthenticated,
            ErrorKind::Forbidden => Code::Forbidden,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::Conflict => Code::Conflict,
            ErrorKind::TooLarge => Code::TooLarge,
            ErrorKind::TimedOut => Code::RequestTimeout,
            ErrorKind::UnsupportedMediaType => Code::UnsupportedMediaType,
            ErrorKind::Unprocessable => Code::Unprocessable,
            ErrorKind::RateLimited => Code::RateLimited,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::Internal => Code::Internal,
        }
    }
}

/// An error on its way to the client: `{"error": {"code", "message", "details"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} {name:?} does not exist"))
    }

    /// A library's error: its `kind()` decides the status. `code` names it when `code` is
    /// of that kind, else the kind's generic code does; an internal fault is logged and
    /// answered generically.
    pub fn classified(kind: ErrorKind, code: Code, error: impl std::fmt::Display) -> Self {
        match kind {
            ErrorKind::Internal => Self::internal(error),
            _ if code.kind() == kind => Self::new(code, error.to_string()),
            _ => Self::new(Code::generic(kind), error.to_string()),
        }
    }

    /// A fault on our side: the cause goes to the log, a generic message to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(Code::Internal, "internal error; see the server log")
    }
}

pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::TimedOut => StatusCode::REQUEST_TIMEOUT,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Every error answer of the API (the OpenAPI document's one error schema).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorResponse<'a> {
    error: ErrorBody<'a>,
}

/// The wire form of an error, fields in the order a reader wants them.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// Machine-readable, snake_case (`not_found`, `invalid_field`, ...).
    code: &'a str,
    /// A sentence for humans.
    message: &'a str,
    /// More about the error, when there is more: any JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    details: Option<&'a Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.wire(),
            message: &self.message,
            details: self.details.as_ref(),
        };
        (
            status(self.code.kind()),
            axum::Json(ErrorResponse { error: body }),
        )
            .into_response()
    }
}

/// The JSON error body for `code` and `message`, for errors made outside a handler.
pub fn error_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&ErrorResponse {
        error: ErrorBody {
            code,
            message,
            details: None,
        },
    })
    .unwrap_or_default()
}

/// The error code for a status that something other than our handlers chose (axum's
/// extractors, the router, the HTTP parser). Three statuses only the transport answers
/// with have wire names outside the table.
pub fn code_for(status: StatusCode) -> &'static str {
    let code = match status.as_u16() {
        405 => return "method_not_allowed",
        414 => return "uri_too_long",
        431 => return "headers_too_large",
        400 => Code::BadRequest,
        401 => Code::Unauthenticated,
        403 => Code::Forbidden,
        404 => Code::NotFound,
        408 => Code::RequestTimeout,
        413 => Code::TooLarge,
        415 => Code::UnsupportedMediaType,
        422 => Code::Unprocessable,
        429 => Code::RateLimited,
        503 => Code::Unavailable,
        s if s >= 500 => Code::Internal,
        _ => return "error",
    };
    code.wire()
}

impl From<switchyard_event_store::LogError> for ApiError {
    fn from(e: switchyard_event_store::LogError) -> Self {
        match e {
            switchyard_event_store::LogError::Closed => {
                ApiError::new(Code::Unavailable, "the bus log is shutting down")
            }
            e @ switchyard_event_store::LogError::Unavailable { .. } => {
                tracing::warn!(error = %e, "the bus log is unavailable");
                ApiError::new(Code::Unavailable, "the bus log is unavailable; try again")
            }
            e @ (switchyard_event_store::LogError::Io { .. }
            | switchyard_event_store::LogError::Corrupt { .. }) => ApiError::internal(e),
        }
    }
}

/// JSON that parses but that no event may hold, wherever an event enters (publish, webhooks,
/// the pattern and transform tests). `details.problems` as for other refused events.
impl From<StructureError> for ApiError {
    fn from(e: StructureError) -> Self {
        let message = e.to_string();
        let (code, details) = match e {
            StructureError::DuplicateKey { key, path } => (
                Code::DuplicateKey,
                json!({"problems": [message], "key": key, "path": path}),
            ),
            StructureError::TooDeep { limit } => (
                Code::TooDeep,
                json!({"problems": [message], "limit": limit}),
            ),
            StructureError::LoneSurrogate { escape, location } => (
                Code::LoneSurrogate,
                json!({"problems": [message], "escape": escape, "location": location}),
            ),
        };
        ApiError::new(code, message).with_details(details)
    }
}

/// An event refused where it enters, with `details.problems`.
impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        let problems = json!({ "problems": e.problems() });
        match e {
            EventError::Structure(e) => e.into(),
            e => ApiError::classified(e.kind(), Code::InvalidEvent, &e).with_details(problems),
        }
    }
}

/// A batch refused whole; `details.invalid` lists each invalid entry's problems.
impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        let kind = e.kind();
        match &e {
            BatchError::InvalidEntries { entries } => {
                let invalid: Vec<Value> = entries
                    .iter()
                    .map(|(index, err)| json!({"index": index, "problems": err.problems()}))
                    .collect();
                let message = format!("{e}; nothing was stored");
                ApiError::classified(kind, Code::InvalidBatch, message)
                    .with_details(json!({ "invalid": invalid }))
            }
            _ => ApiError::classified(kind, Code::InvalidBatch, &e),
        }
    }
}

impl From<switchyard_engine::StoreError> for ApiError {
    fn from(e: switchyard_engine::StoreError) -> Self {
        match e {
            switchyard_engine::StoreError::Meta(e) => e.into(),
            switchyard_engine::StoreError::Log(e) => e.into(),
            e @ switchyard_engine::StoreError::Start(_) => ApiError::internal(e),
        }
    }
}

impl From<switchyard_engine::events::ReadError> for ApiError {
    fn from(e: switchyard_engine::events::ReadError) -> Self {
        use switchyard_engine::events::ReadError;
        match e {
            ReadError::Log(e) => e.into(),
            ReadError::Index(e) => e.into(),
            ReadError::NotFound(id) => ApiError::not_found("event", &id),
            ReadError::Ambiguous { ref sources, .. } => {
                let details = json!({ "sources": sources });
                ApiError::new(Code::AmbiguousId, e.to_string()).with_details(details)
            }
        }
    }
}

/// A webhook delivery refused: 401 when it is not the provider's, 400 when its body cannot
/// become an event.
impl From<switchyard_engine::webhooks::Refused> for ApiError {
    fn from(e: switchyard_engine::webhooks::Refused) -> Self {
        use switchyard_engine::webhooks::{BodyError, Refused};
        match e {
            e @ Refused::Signature { .. } => ApiError::new(Code::InvalidSignature, e.to_string()),
            Refused::Body(BodyError::Structure(e)) => e.into(),
            e @ (Refused::Body(BodyError::NoType(_)) | Refused::Event(_)) => {
                ApiError::new(Code::InvalidWebhookBody, e.to_string())
            }
        }
    }
}

/// 409 naming the rules that still run the function.
impl From<switchyard_engine::FunctionInUse> for ApiError {
    fn from(e: switchyard_engine::FunctionInUse) -> Self {
        use switchyard_engine::FunctionInUse;
        match e {
            FunctionInUse::Rules { ref rules, .. } => {
                let details = json!({ "rules": rules });
                ApiError::new(Code::FunctionInUse, e.to_string()).with_details(details)
            }
            FunctionInUse::Store(e) => e.into(),
        }
    }
}

impl From<switchyard_engine::RuleError> for ApiError {
    fn from(e: switchyard_engine::RuleError) -> Self {
        use switchyard_engine::RuleError;
        match e {
            RuleError::NoBus(bus) => ApiError::not_found("bus", &bus),
            RuleError::NoRule(rule) => ApiError::not_found("rule", &rule),
            RuleError::Spec(e) => e.into(),
            e @ RuleError::Inactive { .. } => ApiError::new(Code::InvalidRule, e.to_string()),
            RuleError::Store(e) => e.into(),
        }
    }
}

impl From<switchyard_engine::rulespec::SpecError> for ApiError {
    fn from(e: switchyard_engine::rulespec::SpecError) -> Self {
        use switchyard_engine::rulespec::SpecPart;
        let code = match e.part {
            SpecPart::Pattern => Code::InvalidPattern,
            SpecPart::Transform => Code::InvalidTransform,
            SpecPart::Target => Code::InvalidTarget,
        };
        let error = ApiError::classified(e.kind(), code, &e.message);
        match e.path {
            Some(path) => error.with_details(json!({ "path": path })),
            None => error,
        }
    }
}

impl From<switchyard_analytics::QueryError> for ApiError {
    fn from(e: switchyard_analytics::QueryError) -> Self {
        let details = json!({"position": e.position, "line": e.line, "column": e.column});
        let message = format!("query: {} (at position {})", e.message, e.position);
        ApiError::classified(e.kind(), Code::InvalidQuery, message).with_details(details)
    }
}

impl From<switchyard_analytics::AnalyticsError> for ApiError {
    fn from(e: switchyard_analytics::AnalyticsError) -> Self {
        use switchyard_analytics::AnalyticsError;
        let kind = e.kind();
        match e {
            AnalyticsError::Body(m) => ApiError::classified(
                kind,
                Code::InvalidJson,
                format!("the body is not a valid analytics request: {m}"),
            ),
            AnalyticsError::Query(q) => {
                let details = json!({"position": q.position, "line": q.line, "column": q.column});
                let message = format!("q: {} (at position {})", q.message, q.position);
                ApiError::classified(kind, Code::InvalidQuery, message).with_details(details)
            }
            AnalyticsError::Invalid { field, message } => {
                ApiError::classified(kind, Code::InvalidField, format!("{field}: {message}"))
            }
        }
    }
}

impl From<switchyard_analytics::index::RunError> for ApiError {
    fn from(e: switchyard_analytics::index::RunError) -> Self {
        use switchyard_analytics::index::RunError;
        let code = match e {
            RunError::Unsupported(_) => Code::UnsupportedQuery,
            _ => Code::TooManyGroups,
        };
        ApiError::classified(e.kind(), code, e)
    }
}

impl From<switchyard_event_store::IndexError> for ApiError {
    fn from(e: switchyard_event_store::IndexError) -> Self {
        match e {
            switchyard_event_store::IndexError::Unsupported(m) => {
                ApiError::new(Code::UnsupportedQuery, format!("query: {m}"))
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<switchyard_schema_registry::SchemaError> for ApiError {
    fn from(e: switchyard_schema_registry::SchemaError) -> Self {
        ApiError::classified(e.kind(), Code::InvalidSchema, e)
    }
}

impl From<switchyard_rules::TransformError> for ApiError {
    fn from(e: switchyard_rules::TransformError) -> Self {
        ApiError::classified(e.kind(), Code::TransformFailed, e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_snake_case_and_name_one_status() {
        let mut seen: Vec<(&str, StatusCode)> = Vec::new();
        for code in Code::ALL {
            let wire = code.wire();
            assert!(
                wire.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{wire}"
            );
            let status = status(code.kind());
            if let Some((_, other)) = seen.iter().find(|(w, _)| *w == wire) {
                // A shared wire name is for one word meaning two statuses, never the same one.
                assert_ne!(*other, status, "{wire} is in the table twice");
            }
            seen.push((wire, status));
        }
    }

    #[test]
    fn every_kind_has_a_generic_code_of_that_kind() {
        for code in Code::ALL {
            let kind = code.kind();
            assert_eq!(Code::generic(kind).kind(), kind);
        }
    }

    #[test]
    fn a_library_error_answers_with_the_status_of_its_kind() {
        let invalid = switchyard_analytics::AnalyticsError::Invalid {
            field: "limit".into(),
            message: "too big".into(),
        };
        let kind = invalid.kind();
        let error = ApiError::from(invalid);
        assert_eq!((error.code, error.code.kind()), (Code::InvalidField, kind));
        let stored = switchyard_schema_registry::SchemaError::NotDiscovered {
            pointer: String::new(),
            message: "not an object".into(),
        };
        assert_eq!(ApiError::from(stored).code, Code::Internal);
        // A code whose kind is not the library's gives way to the kind's generic code.
        let e = ApiError::classified(ErrorKind::Conflict, Code::InvalidField, "x");
        assert_eq!(e.code, Code::Conflict);
    }
}
