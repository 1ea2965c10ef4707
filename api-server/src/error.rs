//! The one place where errors become HTTP responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchyard_core::{ErrorKind, StructureError};

/// An error on its way to the client: `{"error": {"code", "message", "details"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, code, message)
    }

    pub fn not_found(what: &str, name: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{what} {name:?} does not exist"),
        )
    }

    /// A fault on our side: the cause goes to the log, a generic message to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorKind::Internal,
            "internal",
            "internal error; see the server log",
        )
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
            code: self.code,
            message: &self.message,
            details: self.details.as_ref(),
        };
        (status(self.kind), axum::Json(ErrorResponse { error: body })).into_response()
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
/// extractors, the router, the HTTP parser).
pub fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "rate_limited",
        431 => "headers_too_large",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

impl From<switchyard_event_store::LogError> for ApiError {
    fn from(e: switchyard_event_store::LogError) -> Self {
        match e {
            switchyard_event_store::LogError::Closed => ApiError::new(
                ErrorKind::Unavailable,
                "unavailable",
                "the bus log is shutting down",
            ),
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
                "duplicate_key",
                json!({"problems": [message], "key": key, "path": path}),
            ),
            StructureError::TooDeep { limit } => {
                ("too_deep", json!({"problems": [message], "limit": limit}))
            }
            StructureError::LoneSurrogate { escape, location } => (
                "lone_surrogate",
                json!({"problems": [message], "escape": escape, "location": location}),
            ),
        };
        ApiError::bad_request(code, message).with_details(details)
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

impl From<switchyard_engine::rulespec::SpecError> for ApiError {
    fn from(e: switchyard_engine::rulespec::SpecError) -> Self {
        let error = ApiError::new(ErrorKind::Unprocessable, e.code, e.message);
        match e.path {
            Some(path) => error.with_details(json!({ "path": path })),
            None => error,
        }
    }
}

impl From<switchyard_analytics::QueryError> for ApiError {
    fn from(e: switchyard_analytics::QueryError) -> Self {
        ApiError::bad_request(
            "invalid_query",
            format!("query: {} (at position {})", e.message, e.position),
        )
        .with_details(json!({"position": e.position, "line": e.line, "column": e.column}))
    }
}

impl From<switchyard_event_store::IndexError> for ApiError {
    fn from(e: switchyard_event_store::IndexError) -> Self {
        match e {
            switchyard_event_store::IndexError::Unsupported(m) => {
                ApiError::bad_request("unsupported_query", format!("query: {m}"))
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
