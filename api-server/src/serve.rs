//! The HTTP server loop: accepts connections and serves the router on each, with the
//! bounds that keep slow or hostile clients from holding the process.
//!
//! - At most `--max-connections` connections at once; one more is answered 503 (JSON,
//!   `Retry-After: 1`) and closed, so the process never runs out of file descriptors.
//! - `--header-timeout-seconds` for a request's headers, counted from when the connection
//!   opens or its previous response went out: slow headers and idle keep-alive
//!   connections are closed after it.
//! - `--body-timeout-seconds` for a request's whole body ([`body_deadline`]): a body that
//!   trickles in is answered 408 however steadily it trickles.
//! - The request line and headers fit in [`MAX_HEAD_BYTES`] and at most 100 headers; a
//!   request target is at most 65,534 bytes. The HTTP parser answers those (and
//!   unparseable requests) itself, before any handler runs; [`JsonParseErrors`] rewrites
//!   its empty answers into the API's JSON error shape.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use crate::error::{Code, code_for, error_body};

/// Largest request line plus headers, in bytes (the parser's buffer). Above the longest
/// request target (65,534 bytes), so a long target is told 414 rather than 431.
pub const MAX_HEAD_BYTES: usize = 96 * 1024;
/// How long shutdown waits for requests in flight before it closes their connections.
const DRAIN: Duration = Duration::from_secs(30);

/// The connection bounds, from the config.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let trimmer = tokio::spawn(trim_after_bursts(permits.clone(), limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(JsonParseErrors::new(stream));
        let conn = http.serve_connection(io, TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Errors here are the client's (reset, timed out, unparseable); the parser
            // has already answered what can be answered.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    trimmer.abort();
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {} s; closing them",
            DRAIN.as_secs()
        );
    }
}

/// Connections that must have closed since the last look before freed memory is handed
/// back to the OS.
const TRIM_AFTER_CLOSED: usize = 1024;

/// Hands memory back to the OS after a burst of connections has gone: glibc's malloc keeps
/// freed heap pages for reuse, so 10,000 half-open connections (about 15 KiB each in the
/// parser's buffers) would otherwise leave the process ~150 MiB larger for good.
async fn trim_after_bursts(permits: Arc<Semaphore>, max: usize) {
    let mut peak = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let open = max.saturating_sub(permits.available_permits());
        peak = peak.max(open);
        if peak.saturating_sub(open) >= TRIM_AFTER_CLOSED {
            peak = open;
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_memory() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim takes no pointers; it walks glibc's own arenas under their locks
    // and returns whole free pages to the kernel (glibc >= 2.8).
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// Answers a connection over the cap with 503 and closes it, within a second or two.
async fn refuse(mut stream: TcpStream) {
    let bytes = raw_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many connections; try again shortly",
        &[("retry-after", "1")],
    );
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await?;
        // Let the client's request bytes arrive before closing, so it reads our answer
        // rather than a reset.
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < 64 * 1024 {
            match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? {
                0 => break,
                n => read += n,
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

/// A complete HTTP/1.1 response carrying the JSON error shape; the connection closes.
fn raw_response(status: StatusCode, message: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let body = error_body(code_for(status), message);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    for (name, value) in extra {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

/// The parser's own answer to a request it could not read (400, 414, 431) has no body;
/// the API promises JSON errors everywhere, so that answer is replaced on its way out.
/// It is recognised as a head with one of those statuses, no `content-type` and nothing
/// after it: every response a handler makes carries a content type.
pub struct JsonParseErrors<S> {
    inner: S,
    /// A replacement still being written, and how much of it is out.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonParseErrors<S> {
    pub fn new(inner: S) -> Self {
        JsonParseErrors {
            inner,
            pending: None,
        }
    }
}

/// The JSON replacement for a parser-made response, if `buf` is one.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    let status = match buf.get(..13)? {
        b"HTTP/1.1 400 " => StatusCode::BAD_REQUEST,
        b"HTTP/1.1 414 " => StatusCode::URI_TOO_LONG,
        b"HTTP/1.1 431 " => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end])
        .ok()?
        .to_ascii_lowercase();
    if head_end != buf.len() || head.contains("\r\ncontent-type:") {
        return None;
    }
    let message = match status {
        StatusCode::URI_TOO_LONG => "the request target is longer than 65534 bytes",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "the request line and headers are over 98304 bytes or 100 headers"
        }
        _ => "the request is not valid HTTP/1.1 (method, target, header name or value)",
    };
    Some(raw_response(status, message, &[]))
}

impl<S: AsyncWrite + Unpin> JsonParseErrors<S> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(json) = replacement(buf) {
            self.pending = Some((json, 0));
            // The original counts as written; flush and shutdown finish the replacement.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The error a body past its deadline fails with; [`crate::routes::extract::read_body`]
/// answers it 408.
#[derive(Debug)]
pub struct BodyTimedOut(pub Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body took longer than {} s",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body that fails once its deadline has passed.
struct Deadline {
    inner: Body,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // Checked first, so a body that keeps trickling cannot outrun it.
        if self.sleep.is_elapsed() {
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(timeout)))));
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: gives every request body a deadline, and answers a declared body larger
/// than any route takes with 413 before a byte of it is read.
pub async fn body_deadline(
    axum::extract::State(bounds): axum::extract::State<BodyBounds>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > bounds.max_body as u64) {
        return closing(
            crate::error::ApiError::new(
                Code::TooLarge,
                format!(
                    "the request body is over the limit of {} bytes",
                    bounds.max_body
                ),
            )
            .into_response(),
        );
    }
    let req = req.map(|inner| {
        Body::new(Deadline {
            inner,
            timeout: bounds.timeout,
            sleep: Box::pin(tokio::time::sleep(bounds.timeout)),
        })
    });
    let response = next.run(req).await;
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT => closing(response),
        _ => response,
    }
}

/// A refusal made before the body was read: the rest of the body may still be on its way,
/// so the connection cannot carry another request; say so, or a client would reuse it and
/// find it closed under its next request.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// What [`body_deadline`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct BodyBounds {
    pub timeout: Duration,
    /// The largest body any route accepts.
    pub max_body: usize,
}

/// Middleware: an error response that is not JSON (made by axum's extractors or the
/// router, e.g. a path parameter that is not valid percent-encoding) gets the API's JSON
/// error shape, with its text as the message.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Rejection texts are short; anything longer is cut.
    let text = match http_body_util::Limited::new(body, 4096).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let body = error_body(code_for(status), &message);
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_answers_are_recognised_and_ours_are_not() {
        let canned = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 15:00:00 GMT\r\n\r\n";
        let json = replacement(canned).unwrap();
        let text = String::from_utf8(json).unwrap();
        assert!(text.starts_with(
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        ));
        assert!(text.ends_with(
            r#"{"error":{"code":"headers_too_large","message":"the request line and headers are over 98304 bytes or 100 headers"}}"#
        ));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(replacement(ours), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(replacement(ok), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(replacement(with_body), None);
    }
}
