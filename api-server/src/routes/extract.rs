//! Extractors whose rejections use the API's JSON error format.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Code};

/// Request bodies of the management API are small; this bounds what one may hold.
const MAX_JSON_BODY: usize = 1 << 20;

/// Reads a body up to `limit` bytes; larger is a 413, answered before reading when the
/// declared length already says so. A body past its deadline is a 408.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            Code::TooLarge,
            format!("the request body is over the limit of {limit} bytes"),
        )
    };
    if hyper::body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            if let Some(timed_out) = s.downcast_ref::<crate::serve::BodyTimedOut>() {
                return ApiError::new(Code::RequestTimeout, timed_out.to_string());
            }
            source = s.source();
        }
        ApiError::new(
            Code::BadBody,
            format!("could not read the request body: {e}"),
        )
    })
}

/// A JSON body. Empty bodies decode as `{}` so that `PUT` with defaults needs no body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            // curl -d sends form-urlencoded by default; its bodies are JSON all the same.
            if !(ct.starts_with("application/json")
                || ct.contains("+json")
                || ct.starts_with("application/x-www-form-urlencoded"))
            {
                return Err(ApiError::new(
                    Code::UnsupportedMediaType,
                    format!("expected Content-Type application/json, got {ct:?}"),
                ));
            }
        }
        let bytes = read_body(req.into_body(), MAX_JSON_BODY).await?;
        let text: &[u8] = if bytes.trim_ascii().is_empty() {
            b"{}"
        } else {
            &bytes
        };
        // serde fills a struct from a JSON array too (`["name", "reader"]`): every body of
        // this API is an object.
        if text.trim_ascii_start().first() != Some(&b'{') {
            serde_json::from_slice::<serde::de::IgnoredAny>(text).map_err(|e| {
                ApiError::new(
                    Code::InvalidJson,
                    format!("the body is not valid JSON: {e}"),
                )
            })?;
            return Err(ApiError::new(
                Code::InvalidBody,
                "the body must be a JSON object",
            ));
        }
        parse_json(text).map(ApiJson)
    }
}

/// Decodes JSON: bad syntax is a 400, valid JSON of the wrong shape a 422.
pub fn parse_json<T: DeserializeOwned>(text: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::new(Code::InvalidField, e.to_string()),
        serde_json::error::Category::Io
        | serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof => ApiError::new(
            Code::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        ),
    })
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))
    }
}

/// The page size of a listing: 1 to 1000, 50 when absent.
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(50);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::new(
            Code::InvalidQuery,
            format!("limit must be 1 to 1000, got {limit}"),
        ))
    }
}

/// A cursor this API gave out (a number in its decimal form).
pub fn parse_cursor<T: std::str::FromStr>(cursor: Option<&str>) -> Result<Option<T>, ApiError> {
    cursor
        .map(|c| {
            c.parse::<T>().map_err(|_| {
                ApiError::new(
                    Code::InvalidCursor,
                    format!("cursor {c:?} is not one this API gave out"),
                )
            })
        })
        .transpose()
}

/// A `q` parameter as an index filter: 400 `invalid_query` where it does not parse,
/// `unsupported_query` where search cannot answer it yet.
pub fn parse_query(q: &str) -> Result<switchyard_event_store::Filter, ApiError> {
    query_filter(&switchyard_analytics::Query::parse(q)?)
}

/// A parsed query as an index filter; 400 `unsupported_query` where search cannot answer it.
pub fn query_filter(
    query: &switchyard_analytics::Query,
) -> Result<switchyard_event_store::Filter, ApiError> {
    switchyard_analytics::index::filter_for(query)
        .map_err(|m| ApiError::new(Code::UnsupportedQuery, format!("query: {m}")))
}

/// A `from` or `to` parameter: an RFC 3339 timestamp, in milliseconds.
pub fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    switchyard_core::time::parse_rfc3339_ms(value).ok_or_else(|| {
        ApiError::new(
            Code::InvalidQuery,
            format!("{name} {value:?} is not an RFC 3339 timestamp"),
        )
    })
}
