//! The web console: plain HTML, CSS and JavaScript modules compiled into the binary, served
//! at `/` and `/console/{file}` without a key. The page asks for the API key and sends it on
//! every `/v1` call it makes; the files themselves hold no data.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::{ApiError, Code};
use crate::state::AppState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// An embedded file of the top-level `web/`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../../../web/", $name)),
        }
    };
}

const INDEX: Asset = asset!("index.html", HTML);

/// Everything under `/console/`; a name not listed here is a 404, so no path reaches the
/// file system.
const ASSETS: &[Asset] = &[
    INDEX,
    asset!("app.css", CSS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("events.js", JS),
    asset!("rules.js", JS),
    asset!("deliveries.js", JS),
    asset!("analytics.js", JS),
    asset!("catalog.js", JS),
];

/// Event data is attacker-controlled and the page holds an admin key: nothing but our own
/// files may run, load or be connected to.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { serve(&INDEX) }))
        .route("/console/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == file)
        .map(serve)
        .ok_or_else(|| ApiError::new(Code::NotFound, format!("no console file {file:?}")))
}

fn serve(asset: &Asset) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
        ],
        asset.body,
    )
        .into_response()
}
