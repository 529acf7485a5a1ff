use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{EMAIL, PASSWORD, SECRET, error_code, spawn_app};

#[tokio::test]
async fn login_returns_a_bearer_pair() {
    let app = spawn_app().await;
    let r = app.login(EMAIL, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    assert!(body["accessToken"].as_str().unwrap().split('.').count() == 3);
    assert!(body["refreshToken"].as_str().unwrap().starts_with("rt_"));
}

#[tokio::test]
async fn login_returns_401_for_wrong_password_and_unknown_email() {
    let app = spawn_app().await;
    let r = app.login(EMAIL, "wrong password").await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "invalid_credentials"
    );
    let r = app.login("nobody@example.com", PASSWORD).await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "invalid_credentials"
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_with_429() {
    let app = spawn_app().await; // login_max_failures = 3 in tests
    for _ in 0..3 {
        let r = app.login(EMAIL, "wrong password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app.login(EMAIL, PASSWORD).await;
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    assert_eq!(
        error_code(r, StatusCode::TOO_MANY_REQUESTS).await,
        "rate_limited"
    );
}

fn forge(claims: Value, secret: &[u8]) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn whatsapp_routes_reject_missing_tampered_expired_and_alg_none_tokens() {
    let app = spawn_app().await;
    let status_url = app.url("/api/whatsapp/status");

    let r = app.client.get(&status_url).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );

    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts: Vec<String> = app.token.split('.').map(String::from).collect();
    let payload = String::from_utf8(b64.decode(&parts[1]).unwrap()).unwrap();
    parts[1] = b64.encode(payload.replace("admin@", "evil@"));
    let tampered = parts.join(".");

    let claims = |exp: u64| json!({"sub": "1", "email": EMAIL, "iat": now() - 100, "exp": exp, "typ": "access"});
    let expired = forge(claims(now() - 60), SECRET.as_bytes());
    let foreign = forge(
        claims(now() + 600),
        b"another-secret-another-secret-another",
    );
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims(now() + 600).to_string())
    );
    let valid = forge(claims(now() + 600), SECRET.as_bytes());

    for (name, token) in [
        ("tampered", &tampered),
        ("expired", &expired),
        ("foreign", &foreign),
        ("alg none", &none),
        ("garbage", &"abc".to_string()),
    ] {
        let r = app
            .client
            .get(&status_url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name} token");
        assert_eq!(
            error_code(r, StatusCode::UNAUTHORIZED).await,
            "unauthorized",
            "{name}"
        );
    }
    // The forging helper itself produces accepted tokens, so the rejections above are real.
    let r = app
        .client
        .get(&status_url)
        .bearer_auth(&valid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = app
        .client
        .get(&status_url)
        .header("authorization", "Basic YWRtaW46eA==")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
}

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_stops_working() {
    let app = spawn_app().await;
    let first: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    let r = app
        .post_auth(
            "/api/auth/refresh",
            &json!({"refreshToken": first["refreshToken"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["refreshToken"], first["refreshToken"]);
    let r = app
        .client
        .get(app.url("/api/whatsapp/status"))
        .bearer_auth(second["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = app
        .post_auth(
            "/api/auth/refresh",
            &json!({"refreshToken": first["refreshToken"]}),
        )
        .await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_all_of_the_users_refresh_tokens() {
    let app = spawn_app().await;
    let a: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    let other_session: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    let b: Value = app
        .post_auth(
            "/api/auth/refresh",
            &json!({"refreshToken": a["refreshToken"]}),
        )
        .await
        .json()
        .await
        .unwrap();

    // The thief replays the spent token.
    let r = app
        .post_auth(
            "/api/auth/refresh",
            &json!({"refreshToken": a["refreshToken"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Now neither the fresh token nor the user's other session can refresh.
    for token in [&b["refreshToken"], &other_session["refreshToken"]] {
        let r = app
            .post_auth("/api/auth/refresh", &json!({"refreshToken": token}))
            .await;
        assert_eq!(
            error_code(r, StatusCode::UNAUTHORIZED).await,
            "unauthorized"
        );
    }
    // A new login still works.
    assert_eq!(app.login(EMAIL, PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let app = spawn_app().await;
    let s: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    let r = app
        .post_auth(
            "/api/auth/logout",
            &json!({"refreshToken": s["refreshToken"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .post_auth(
            "/api/auth/refresh",
            &json!({"refreshToken": s["refreshToken"]}),
        )
        .await;
    assert_eq!(
        error_code(r, StatusCode::UNAUTHORIZED).await,
        "unauthorized"
    );
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let s: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    let token = s["refreshToken"].as_str().unwrap().to_string();
    let (dir, config) = app.stop().await;
    // Every byte the database holds: the SQLite file, or a dump of the PostgreSQL database.
    let db = match &config.storage.database_url {
        Some(url) => crate::pg::dump(secrecy::ExposeSecret::expose_secret(url)),
        None => std::fs::read(config.database_path()).unwrap(),
    };
    let needle = token.as_bytes();
    assert!(
        !db.windows(needle.len()).any(|w| w == needle),
        "the raw refresh token is in the database file"
    );
    let hash = wa_gateway::auth::hash_token(&token);
    assert!(
        db.windows(hash.len()).any(|w| w == hash.as_bytes()),
        "its hash is stored"
    );
    drop(dir);
}
