/// What kind of failure an error is, independent of transport.
///
/// Library crates map each of their error variants to one of these; the API server maps
/// each kind to exactly one HTTP status in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed (bad JSON, missing field, bad header).
    InvalidInput,
    /// No credential, or a wrong one.
    Unauthenticated,
    /// The credential is valid but lacks the role.
    Forbidden,
    /// The named resource does not exist.
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// The request or one of its parts is over a size limit.
    TooLarge,
    /// The client took too long to send the request.
    TimedOut,
    /// The media type is not one we accept.
    UnsupportedMediaType,
    /// Well-formed input that breaks a rule (bad pattern, schema violation).
    Unprocessable,
    /// The caller is over a rate limit.
    RateLimited,
    /// The server is temporarily unable to take the request.
    Unavailable,
    /// A fault on our side; details go to the log, not to the client.
    Internal,
}
