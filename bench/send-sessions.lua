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

dofile("bench/report.lua")
