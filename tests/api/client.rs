//! The one HTTP client of the tests and the benches: a gateway's base URL, a bearer token, and
//! a helper per route they use. `TestApp` (in-process gateways), the process tests' `Gateway`
//! (the real binary) and the WebDriver bench all talk through it.

use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
}

impl Api {
    /// Logs in at `base` (e.g. `http://127.0.0.1:8080`) and keeps the access token.
    pub async fn login_at(base: String, email: &str, password: &str) -> Api {
        let mut api = Api {
            base,
            client: reqwest::Client::new(),
            token: String::new(),
        };
        let r = api.login(email, password).await;
        assert_eq!(r.status(), StatusCode::OK, "login");
        let body: Value = r.json().await.unwrap();
        api.token = body["accessToken"].as_str().unwrap().to_string();
        api
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_auth(
            "/api/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// POST without a token.
    pub async fn post_auth(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// GET with the token, expecting 200 and JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// `POST /api/media` with `bytes` as the raw body.
    pub async fn upload_raw(&self, bytes: &[u8], content_type: &str, filename: &str) -> Response {
        self.client
            .post(self.url("/api/media"))
            .query(&[("filename", filename)])
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// `POST /api/media` as a form with a `file` part; the stored media's description (201).
    pub async fn upload(&self, bytes: &[u8], content_type: &str, filename: &str) -> Value {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name(filename.to_string())
            .mime_str(content_type)
            .unwrap();
        let r = self
            .client
            .post(self.url("/api/media"))
            .bearer_auth(&self.token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "upload: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn send(&self, body: &Value) -> Response {
        self.post("/api/whatsapp/send-message", body).await
    }

    /// A text message, without panicking when the gateway is gone (for the crash tests).
    pub async fn try_send_text(&self, number: &str, text: &str) -> reqwest::Result<Response> {
        self.client
            .post(self.url("/api/whatsapp/send-message"))
            .bearer_auth(&self.token)
            .json(&json!({"number": number, "message": text}))
            .send()
            .await
    }

    /// Sends and expects 202; returns the job id.
    pub async fn send_ok(&self, number: &str, text: &str) -> String {
        let r = self.send(&json!({"number": number, "message": text})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let body: Value = r.json().await.unwrap();
        body["jobId"].as_str().unwrap().to_string()
    }

    /// Sends through a session and expects 202; returns the job id.
    pub async fn send_via(&self, session: &str, number: &str, text: &str) -> String {
        let r = self
            .send(&json!({"session": session, "number": number, "message": text}))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "send through {session}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["session"], session);
        body["jobId"].as_str().unwrap().to_string()
    }

    /// A session as `GET /api/sessions/{name}` shows it.
    pub async fn session(&self, name: &str) -> Value {
        self.get_json(&format!("/api/sessions/{name}")).await
    }

    /// `POST /api/sessions/{name}/{action}` (start, stop, restart, logout), expecting success.
    pub async fn session_action(&self, name: &str, action: &str) -> Value {
        let r = self
            .post(&format!("/api/sessions/{name}/{action}"), &json!({}))
            .await;
        assert!(r.status().is_success(), "{action} {name}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Polls a session until its state is one of `want`.
    pub async fn wait_session_state(&self, name: &str, want: &[&str], within: Duration) -> Value {
        eventually(within, &format!("session {name} in {want:?}"), || async {
            let s = self.session(name).await;
            want.iter().any(|w| s["state"] == *w).then_some(s)
        })
        .await
    }

    pub async fn job(&self, id: &str) -> Value {
        self.get_json(&format!("/api/whatsapp/jobs/{id}")).await
    }

    /// Polls the job until it is completed or failed.
    pub async fn wait_finished_within(&self, id: &str, within: Duration) -> Value {
        eventually(within, &format!("job {id} finished"), || async {
            let job = self.job(id).await;
            (job["status"] == "completed" || job["status"] == "failed").then_some(job)
        })
        .await
    }

    /// Polls the job until it is completed or failed (20 s at most).
    pub async fn wait_finished(&self, id: &str) -> Value {
        self.wait_finished_within(id, Duration::from_secs(20)).await
    }

    pub async fn status(&self) -> Value {
        self.get_json("/api/whatsapp/status").await
    }

    /// Waits until `whatsapp.state` is one of `want`; returns the status and how long it took.
    pub async fn wait_state(&self, want: &[&str], within: Duration) -> (Value, Duration) {
        let t0 = Instant::now();
        let s = eventually(within, &format!("WhatsApp state in {want:?}"), || async {
            let s = self.status().await;
            want.iter()
                .any(|w| s["whatsapp"]["state"] == *w)
                .then_some(s)
        })
        .await;
        (s, t0.elapsed())
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> String {
        let r = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    }
}

/// Polls `check` every 20 ms until it gives `Some`, and returns that; panics after `within`,
/// naming what was awaited. The tests' one way to wait: on a fact, never a fixed sleep.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_shows(within, what, || {
        let seen = check();
        async move { seen.await.ok_or_else(String::new) }
    })
    .await
}

/// As [`eventually`], for a check that says what it saw instead (`Err`): the panic shows the
/// last of it, so a failure says what did come.
pub async fn eventually_shows<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "not within {within:?}: {what}{}",
                if seen.is_empty() {
                    String::new()
                } else {
                    format!("; last seen: {seen}")
                }
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
