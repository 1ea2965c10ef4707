//! Bearer-key authentication for `/v1`: which key a request came with, and whether its role
//! may call the route.

use std::sync::Arc;

use std::collections::HashMap;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{ApiError, Code};
use crate::state::AppState;
use switchyard_engine::keys::Role;

/// The role of the key a request came with, for handlers that show less to some roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller(pub Role);

impl Caller {
    /// Whether the caller may see secrets (target headers, signing secrets, passwords).
    pub fn sees_secrets(caller: Option<&Caller>) -> bool {
        caller.is_some_and(|c| c.0 == Role::Admin)
    }
}

/// Which roles besides admin may call a route, as its OpenAPI operation declares with the
/// bearer scheme's scopes (`read`, `publish`); a route that declares none is for admins.
/// Built once from the keyed router's document, so the routes' own metadata is the only
/// table of permissions.
#[derive(Debug, Default)]
pub struct Access {
    scopes: HashMap<(Method, String), Vec<String>>,
}

impl Access {
    pub fn from_document(doc: &utoipa::openapi::OpenApi) -> Access {
        let mut scopes = HashMap::new();
        for (path, item) in &doc.paths.paths {
            let operations = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let declared: Vec<String> = operation
                    .security
                    .iter()
                    .flatten()
                    .filter_map(|s| serde_json::to_value(s).ok())
                    .filter_map(|v| v.get(BEARER_SCHEME).cloned())
                    .filter_map(|v| serde_json::from_value::<Vec<String>>(v).ok())
                    .flatten()
                    .collect();
                scopes.insert((method, path.clone()), declared);
            }
        }
        Access { scopes }
    }

    /// Whether `role` may call the route `path` (a template, as routed) with `method`.
    pub fn allows(&self, role: Role, method: &Method, path: &str) -> bool {
        let needed = match role {
            Role::Admin => return true,
            Role::Publisher => "publish",
            Role::Reader => "read",
        };
        self.scopes
            .get(&(method.clone(), path.to_owned()))
            .is_some_and(|s| s.iter().any(|s| s == needed))
    }
}

/// The security scheme's name in the OpenAPI document.
pub const BEARER_SCHEME: &str = "bearer";

/// Middleware: lets a request through only with the right bearer key.
pub async fn require_key(
    State((state, access)): State<(Arc<AppState>, Arc<Access>)>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = state.admin_key.as_deref() else {
        req.extensions_mut().insert(Caller(Role::Admin));
        return Ok(next.run(req).await);
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(key) = presented else {
        return Err(ApiError::new(
            Code::Unauthorized,
            "missing API key: send Authorization: Bearer <key> (the admin key is in <data-dir>/admin.key)",
        ));
    };
    if constant_time_eq(key.as_bytes(), expected.as_bytes()) {
        req.extensions_mut().insert(Caller(Role::Admin));
        return Ok(next.run(req).await);
    }
    let Some(stored) = state.keys.find(key) else {
        return Err(ApiError::new(
            Code::Unauthorized,
            "the API key is not valid",
        ));
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    if access.allows(stored.role, req.method(), &route) {
        req.extensions_mut().insert(Caller(stored.role));
        Ok(next.run(req).await)
    } else {
        Err(ApiError::new(
            Code::Forbidden,
            format!(
                "the key {:?} has the {} role, which does not allow {} {}",
                stored.name,
                stored.role.as_str(),
                req.method(),
                req.uri().path()
            ),
        ))
    }
}

/// The token of a `Bearer` credential; the scheme name is case-insensitive (RFC 9110
/// §11.1), and any run of spaces may separate it from the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without an early exit, so timing does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::{Access, Method, Role, bearer_token};

    /// Roles allow what the routes declare, read from the real router's document.
    #[test]
    fn roles_allow_what_the_routes_declare() {
        let access = Access::from_document(&crate::routes::document());
        let cases = [
            (Method::POST, "/v1/buses/{bus}/events", [true, true, false]),
            (Method::GET, "/v1/buses/{bus}/events", [true, false, true]),
            (
                Method::PUT,
                "/v1/buses/{bus}/rules/{rule}",
                [true, false, false],
            ),
            (
                Method::POST,
                "/v1/buses/{bus}/analytics",
                [true, false, true],
            ),
            (
                Method::POST,
                "/v1/analytics/deliveries",
                [true, false, true],
            ),
            (
                Method::POST,
                "/v1/functions/{name}/invoke",
                [true, false, true],
            ),
            (Method::PUT, "/v1/functions/{name}", [true, false, false]),
            (
                Method::POST,
                "/v1/buses/{bus}/dead-letters/redrive",
                [true, false, false],
            ),
            (Method::POST, "/v1/keys", [true, false, false]),
            (Method::GET, "/v1/keys", [true, false, false]),
            (Method::DELETE, "/v1/buses/{bus}", [true, false, false]),
            (
                Method::GET,
                "/v1/buses/{bus}/events/{id}/trace",
                [true, false, true],
            ),
        ];
        for (method, path, expected) in cases {
            let got = [Role::Admin, Role::Publisher, Role::Reader]
                .map(|r| access.allows(r, &method, path));
            assert_eq!(got, expected, "{method} {path}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer k1", "bearer k1", "BEARER   k1 ", "  bEaReR k1"] {
            assert_eq!(bearer_token(header), Some("k1"), "{header:?}");
        }
        for header in ["Basic k1", "Bearer", "Bearer   ", "Bearerk1", "k1"] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }
}
