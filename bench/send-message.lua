-- wrk script: POST /api/whatsapp/send-message with a bearer token from $TOKEN.
-- Each request is a new message (no messageId: the gateway generates one).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"number":"+62 812-3456-7890","message":"Benchmark message: your order #1234 has shipped."}'

dofile("bench/report.lua")
