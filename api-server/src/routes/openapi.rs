//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, assembled from the routers'
//! annotations and then finished here with what holds for the whole API: the bearer scheme
//! (and which routes need no key), and the one error shape of every 4xx/5xx answer.

use std::sync::Arc;

use axum::{Extension, Json};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, HttpMethod, RefOr, ResponseBuilder};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use crate::error::ErrorResponse;

/// The security scheme's name in `components.securitySchemes`.
use crate::auth::BEARER_SCHEME as BEARER;

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchyard", description = "A self-hosted event bus: CloudEvents in, rules, deliveries, search."),
    tags((name = "buses"), (name = "events"), (name = "rules"), (name = "deliveries"), (name = "schemas"), (name = "functions"), (name = "webhooks"), (name = "keys"), (name = "operations")),
    components(schemas(ErrorResponse))
)]
pub struct ApiDoc;

/// Finishes the collected documents of the keyed and the open routes into one: version,
/// bearer scheme, key-less routes, error bodies.
pub fn finish(
    mut doc: utoipa::openapi::OpenApi,
    mut open: utoipa::openapi::OpenApi,
) -> utoipa::openapi::OpenApi {
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "an API key: the admin key in <data-dir>/admin.key, or one made with POST /v1/keys",
                ))
                .build(),
        ),
    );
    doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    for item in doc.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            add_errors(operation, &["401", "403"]);
        }
    }
    for item in open.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            operation.security = Some(Vec::new());
        }
    }
    doc.merge(open);
    for item in doc.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            // `ApiQuery` answers a bad or unknown query parameter with a 400, and a path
            // segment that is not UTF-8 is one too.
            if has_parameter_in(operation, ParameterIn::Query)
                || has_parameter_in(operation, ParameterIn::Path)
            {
                add_errors(operation, &["400"]);
            }
            fill_error_bodies(operation);
        }
    }
    doc
}

fn operations(item: &mut utoipa::openapi::PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Head, item.head.as_mut()),
        (HttpMethod::Options, item.options.as_mut()),
        (HttpMethod::Trace, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

fn has_parameter_in(operation: &Operation, place: ParameterIn) -> bool {
    operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == place)
}

/// Adds error answers the annotations left out; their bodies come from `fill_error_bodies`.
fn add_errors(operation: &mut Operation, statuses: &[&str]) {
    for &status in statuses {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description(status))
                        .build(),
                )
            });
    }
}

/// Every error answer is `{"error": {"code", "message", "details"?}}`, whatever the route.
fn fill_error_bodies(operation: &mut Operation) {
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !status.starts_with(['4', '5']) {
            continue;
        }
        if response.description.is_empty() {
            response.description = description(status).to_owned();
        }
        response.content.insert(
            "application/json".to_owned(),
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                ErrorResponse::name(),
            )))),
        );
    }
}

fn description(status: &str) -> &'static str {
    match status {
        "400" => "malformed request",
        "401" => "no key, or not a valid one",
        "403" => "the key's role does not allow this",
        "404" => "no such resource",
        "409" => "conflict",
        "413" => "too large",
        "415" => "unsupported media type",
        "422" => "valid JSON that breaks a rule",
        "429" => "rate limited",
        "503" => "unavailable",
        _ => "error",
    }
}

/// The document itself; no key.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "this document (OpenAPI 3.1)", content_type = "application/json", body = Object)))]
pub async fn openapi_json(
    Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json(doc.as_ref().clone())
}

/// Any bytes, as a request body: `{"type": "string", "format": "binary"}`.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// One CloudEvent in the JSON format (structured mode). Parsing is `switchyard_core`'s; this
/// only describes the wire form. Extension attributes are allowed.
pub struct CloudEventJson;

impl PartialSchema for CloudEventJson {
    fn schema() -> RefOr<Schema> {
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        let required = |description: &str| text(description).min_length(Some(1));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "specversion",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["1.0"])),
            )
            .property("id", required("unique per source"))
            .property("source", required("a URI-reference"))
            .property("type", required("the kind of event"))
            .property(
                "subject",
                text("what the event is about, within the source"),
            )
            .property(
                "time",
                text("RFC 3339").format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .property("datacontenttype", text("the media type of data"))
            .property("dataschema", text("a URI"))
            .property(
                "data",
                ObjectBuilder::new().schema_type(SchemaType::AnyValue),
            )
            .property("data_base64", text("binary data, base64"))
            .required("specversion")
            .required("id")
            .required("source")
            .required("type")
            .into()
    }
}

impl ToSchema for CloudEventJson {
    fn name() -> std::borrow::Cow<'static, str> {
        "CloudEvent".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which routes need a key comes from the router they are in: the document says the
    /// same (`security: []` exactly on the open ones, 401 on the others).
    #[test]
    fn only_v1_routes_but_webhook_deliveries_need_a_key() {
        let mut doc = crate::routes::document();
        let mut open = Vec::new();
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                let keyless = operation.security.as_ref().is_some_and(Vec::is_empty);
                let says_401 = operation.responses.responses.contains_key("401");
                let name = match method {
                    HttpMethod::Get => "GET",
                    HttpMethod::Post => "POST",
                    _ => "OTHER",
                };
                let route = format!("{name} {path}");
                if keyless {
                    open.push(route.clone());
                }
                // A delivery answers 401 of its own, for a bad signature.
                if route != "POST /v1/webhooks/{name}" {
                    assert_eq!(says_401, !keyless, "{route}");
                }
            }
        }
        open.sort();
        assert_eq!(
            open,
            [
                "GET /healthz",
                "GET /metrics",
                "GET /openapi.json",
                "GET /readyz",
                "POST /v1/webhooks/{name}"
            ]
        );
        let put = doc.paths.paths["/v1/webhooks/{name}"].put.as_ref();
        assert!(put.is_some_and(|op| op.security.is_none()));
    }
}
