-- wrk script: POST /api/whatsapp/send-message with a bearer token from $TOKEN.
-- Each request is a new message (no messageId: the gateway generates one).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"number":"+62 812-3456-7890","message":"Benchmark message: your order #1234 has shipped."}'

done = function(summary, latency, requests)
  io.write(string.format("BENCH accepted_per_s=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
