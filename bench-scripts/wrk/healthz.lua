-- how to run: wrk -t1 -c100 -d10s --latency -s bench-scripts/wrk/healthz.lua http://127.0.0.1:8080
-- GET /healthz over keep-alive connections (HTTP/1.1), whatever path the URL has.
wrk.method = "GET"
wrk.path = "/healthz"
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
