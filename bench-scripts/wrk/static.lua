-- how to run: wrk -t1 -c100 -d10s --latency -s bench-scripts/wrk/static.lua http://127.0.0.1:8080 -- /index.html
-- GET a static file over keep-alive connections; the path is the argument
-- after "--" (default "/": ringcast's built-in index page).
wrk.method = "GET"
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

function init(args)
   wrk.path = args[1] or "/"
end
