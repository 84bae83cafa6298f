-- how to run: wrk -t1 -c100 -d10s --latency -s bench-scripts/wrk/publish.lua http://127.0.0.1:8080
-- POST /publish/bench with a 64-byte body over keep-alive connections (a
-- room with no subscribers: measures the publish path alone).
wrk.method = "POST"
wrk.path = "/publish/bench"
wrk.headers["Content-Type"] = "text/plain"
wrk.body = string.rep("p", 64)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
