//! `GET /metrics`: Prometheus text format, with no personal data.

use std::collections::BTreeMap;

use crate::helpers::spawn_app;

/// `name{labels}` → value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("name value");
            (k.to_string(), v.parse::<f64>().expect("a number"))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_jobs_sends_latency_and_requests() {
    let app = spawn_app().await;
    let ok = app.send_ok("6281234567890", "counted").await;
    let bad = app.send_ok("6281200000000", "not registered").await;
    app.wait_finished(&ok).await;
    app.wait_finished(&bad).await;
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    let m = parse(&text);
    let get = |k: &str| {
        *m.get(k)
            .unwrap_or_else(|| panic!("{k} missing in:\n{text}"))
    };
    assert_eq!(get("wa_gateway_jobs{state=\"completed\"}"), 1.0);
    assert_eq!(get("wa_gateway_jobs{state=\"failed\"}"), 1.0);
    assert_eq!(
        get("wa_gateway_sends_total{session=\"default\",outcome=\"completed\",code=\"\"}"),
        1.0
    );
    assert_eq!(
        get(
            "wa_gateway_sends_total{session=\"default\",outcome=\"failed\",code=\"not-registered\"}"
        ),
        1.0
    );
    assert_eq!(
        get("wa_gateway_send_duration_seconds_count{session=\"default\"}"),
        2.0
    );
    assert_eq!(
        get("wa_gateway_send_duration_seconds_bucket{session=\"default\",le=\"+Inf\"}"),
        2.0
    );
    assert_eq!(get("wa_gateway_queue_wait_seconds_count"), 2.0);
    assert_eq!(get("wa_gateway_job_attempts_count"), 2.0);
    assert_eq!(
        get("wa_gateway_whatsapp_state{session=\"default\",state=\"connected\"}"),
        1.0
    );
    assert_eq!(
        get("wa_gateway_whatsapp_state{session=\"default\",state=\"qr\"}"),
        0.0
    );
    assert_eq!(
        get(
            "wa_gateway_http_requests_total{method=\"POST\",route=\"/api/whatsapp/send-message\",status=\"202\"}"
        ),
        2.0
    );
    // Route templates, never raw paths: a job id must not become a label.
    assert!(
        text.contains("route=\"/api/whatsapp/jobs/{job_id}\""),
        "{text}"
    );
    assert!(!text.contains(&ok), "a job id leaked into the metrics");
    assert!(!text.contains("6281234567890"));
}
