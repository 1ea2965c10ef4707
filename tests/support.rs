//! Starting the real binary and talking to it. Every test gets its own server, data dir
//! and (for PostgreSQL) database.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh PostgreSQL database, dropped when the test ends.
struct PgDatabase {
    name: String,
}

impl PgDatabase {
    async fn create() -> PgDatabase {
        use sqlx::Connection as _;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "sy_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let mut conn = sqlx::PgConnection::connect(PG_ADMIN_URL)
            .await
            .expect("PostgreSQL must run on 127.0.0.1:5432 (scripts/test.sh starts it)");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        PgDatabase { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection as _;
                if let Ok(mut conn) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub key: String,
    dir: tempfile::TempDir,
    db: Option<PgDatabase>,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
    pub client: reqwest::Client,
}

/// What a finished request returned.
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    pub async fn start(backend: Backend) -> Server {
        Self::start_with(backend, &[]).await
    }

    pub async fn start_with(backend: Backend, args: &[&str]) -> Server {
        Self::start_with_env(backend, args, &[]).await
    }

    /// Starts with extra flags and environment variables.
    pub async fn start_with_env(backend: Backend, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_seeded(backend, args, env, &[]).await
    }

    /// Starts with these files (name, contents) in the data dir first, e.g. another node's
    /// `admin.key`.
    pub async fn start_seeded(
        backend: Backend,
        args: &[&str],
        env: &[(&str, &str)],
        files: &[(&str, String)],
    ) -> Server {
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create().await),
        };
        let mut server = Server {
            child: None,
            base: String::new(),
            key: String::new(),
            dir: tempfile::tempdir().unwrap(),
            db,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            client: reqwest::Client::new(),
        };
        for (name, contents) in files {
            std::fs::write(server.dir.path().join(name), contents).unwrap();
        }
        server.launch().await;
        server
    }

    /// The PostgreSQL database this server's metadata is in (`Backend::Postgres`).
    pub fn db_url(&self) -> Option<String> {
        self.db.as_ref().map(PgDatabase::url)
    }

    /// Sets an environment variable for the next launch (a restart).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .env("SWITCHYARD_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(db) = &self.db {
            cmd.arg("--database-url").arg(db.url());
        }
        cmd
    }

    async fn launch(&mut self) {
        let mut child = self.command().spawn().expect("start the switchyard binary");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the server printed no ready line within 30 s")
            .unwrap()
            .expect("the server exited before it was ready");
        let addr = line
            .strip_prefix("switchyard listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        self.base = addr.to_owned();
        self.key = std::fs::read_to_string(self.dir.path().join("admin.key"))
            .map(|k| k.trim().to_owned())
            .unwrap_or_default();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// SIGTERM, wait for exit, return its code.
    pub async fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id()?;
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the server did not exit within 30 s of SIGTERM")
            .unwrap();
        status.code()
    }

    /// SIGKILL: no chance to flush anything.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    pub async fn restart(&mut self) {
        assert_eq!(self.stop().await, Some(0));
        self.launch().await;
    }

    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop or kill the server first");
        self.launch().await;
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request failed");
        Reply {
            status: resp.status(),

            body: resp.bytes().await.unwrap().to_vec(),
        }
    }

    /// Sends a JSON request and checks the status; returns the decoded body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let mut req = self.request(method.clone(), path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let reply = self.send(req).await;
        assert_eq!(
            reply.status.as_u16(),
            expect,
            "{method} {path} answered {}: {}",
            reply.status,
            reply.text()
        );
        if reply.body.is_empty() {
            Value::Null
        } else {
            reply.json()
        }
    }

    /// Follows `next_cursor` from `path` (which already has a query string) to the end;
    /// returns the offsets of every record, in page order.
    pub async fn all_offsets(&self, path: &str) -> Vec<u64> {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                None => path.to_owned(),
                Some(c) => format!("{path}&cursor={c}"),
            };
            let page = self.call(Method::GET, &page_path, None, 200).await;
            seen.extend(
                page["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["offset"].as_u64().unwrap()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return seen,
            }
        }
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.send(self.client.get(format!("{}/metrics", self.base)))
            .await
            .text()
    }

    /// An event's trace timeline (on the default bus) once it has reached stage `done`.
    pub async fn timeline_until(&self, id: &str, done: &str) -> Vec<Value> {
        let path = format!("/v1/buses/default/events/{id}/trace");
        crate::receiver::eventually(Duration::from_secs(10), || async {
            let t = self.call(Method::GET, &path, None, 200).await;
            let steps = t["timeline"].as_array().cloned().unwrap_or_default();
            steps.iter().any(|st| st["stage"] == done).then_some(steps)
        })
        .await
    }

    /// Creates a rule on a bus (expects 201).
    pub async fn put_rule(&self, bus: &str, rule: &str, body: Value) -> Value {
        self.call(
            Method::PUT,
            &format!("/v1/buses/{bus}/rules/{rule}"),
            Some(body),
            201,
        )
        .await
    }

    /// Publishes one structured event; returns the response.
    pub async fn publish(&self, bus: &str, event: &Value) -> Reply {
        self.send(
            self.request(Method::POST, &format!("/v1/buses/{bus}/events"))
                .header("content-type", "application/cloudevents+json")
                .body(event.to_string()),
        )
        .await
    }

    pub async fn publish_batch(&self, bus: &str, events: &[Value]) -> Reply {
        self.send(
            self.request(Method::POST, &format!("/v1/buses/{bus}/events"))
                .header("content-type", "application/cloudevents-batch+json")
                .body(Value::Array(events.to_vec()).to_string()),
        )
        .await
    }
}

/// A minimal valid CloudEvent.
pub fn event(id: &str, data: Value) -> Value {
    serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/tests", "type": "test.event", "data": data
    })
}

/// Asserts a 4xx JSON error with this status and code.
pub fn assert_error(reply: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    body
}

/// Runs an async test body once per metadata backend.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    };
}
