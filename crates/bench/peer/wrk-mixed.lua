-- wrk script for warden serve: the serve bench's mixed actions (four templates,
-- 200,000 agents, 25 to a session) as POST /v1/decide bodies. Run against
-- `warden serve` on its defaults:
--   wrk -t1 -c64 -d10s --latency -s crates/bench/peer/wrk-mixed.lua http://127.0.0.1:7878
local t = {
 '{"point":"pre_tool_call","tool":"db.query","agent":"bench-%d","session":"s-%d","args":{"sql":"SELECT name, email FROM customers WHERE id = 42"}}',
 '{"point":"pre_tool_call","tool":"db.execute","agent":"bench-%d","session":"s-%d","args":{"sql":"DROP TABLE customers"}}',
 '{"point":"pre_tool_call","tool":"ticket.create","agent":"bench-%d","session":"s-%d","args":{"title":"refund","body":"customer asks for a refund"}}',
 '{"point":"pre_tool_call","tool":"email.send","agent":"bench-%d","session":"s-%d","args":{"to":"ops@example.com","subject":"daily","body":"all good"}}',
}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local agent = math.floor(i / 4) % 200000
  local body = string.format(t[(i % 4) + 1], agent, math.floor(agent / 25))
  i = i + 1
  return wrk.format(nil, "/v1/decide", nil, body)
end
