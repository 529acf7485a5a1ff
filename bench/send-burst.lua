-- wrk script: the same send as send-message.lua, and each of wrk's threads stops once it has
-- had its share of BURST (default 10,000) answers; requests still in flight then are answered
-- by the server all the same, so a few more than BURST may be accepted (the bench counts them).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"number":"+62 812-3456-7890","message":"Benchmark message: your order #1234 has shipped."}'

local threads = 2
local share = math.floor(tonumber(os.getenv("BURST") or "10000") / threads)
local answered = 0

response = function(status, headers, body)
  answered = answered + 1
  if answered >= share then
    wrk.thread:stop()
  end
end
