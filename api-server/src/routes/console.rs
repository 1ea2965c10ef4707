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
use switchyard_core::ErrorKind;

use crate::app::AppState;
use crate::error::ApiError;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: HTML,
    body: include_str!("../console/index.html"),
};

/// Everything under `/console/`; a name not listed here is a 404, so no path reaches the
/// file system.
const ASSETS: &[Asset] = &[
    INDEX,
    Asset {
        name: "app.css",
        content_type: CSS,
        body: include_str!("../console/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_str!("../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_str!("../console/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: JS,
        body: include_str!("../console/dom.js"),
    },
    Asset {
        name: "events.js",
        content_type: JS,
        body: include_str!("../console/events.js"),
    },
    Asset {
        name: "rules.js",
        content_type: JS,
        body: include_str!("../console/rules.js"),
    },
    Asset {
        name: "deliveries.js",
        content_type: JS,
        body: include_str!("../console/deliveries.js"),
    },
    Asset {
        name: "analytics.js",
        content_type: JS,
        body: include_str!("../console/analytics.js"),
    },
    Asset {
        name: "catalog.js",
        content_type: JS,
        body: include_str!("../console/catalog.js"),
    },
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
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                "not_found",
                format!("no console file {file:?}"),
            )
        })
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
