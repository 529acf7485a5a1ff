-- wrk script: POST /api/whatsapp/send-message with a bearer token from $TOKEN, each request
-- to the next session of $SESSION_LIST (comma-separated), in turn.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

local sessions = {}
for s in string.gmatch(os.getenv("SESSION_LIST") or "default", "[^,]+") do
  sessions[#sessions + 1] = s
end
local i = 0

request = function()
  i = i + 1
  local s = sessions[(i % #sessions) + 1]
  return wrk.format(nil, nil, nil,
    '{"session":"' .. s .. '","number":"+62 812-3456-7890","message":"Benchmark message: your order #1234 has shipped."}')
end

done = function(summary, latency, requests)
  io.write(string.format("BENCH accepted_per_s=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
