-- Shared by the wrk scripts here (loaded with dofile): at the end of a run,
-- prints one JSON line that bench-scripts/run.sh reads.
-- how to run: not on its own; healthz.lua, static.lua and publish.lua load it.
function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      '{"tool":"wrk","requests":%d,"duration_s":%.6f,"req_per_sec":%.3f,' ..
      '"bytes":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,' ..
      '"errors_status":%d,"errors_timeout":%d,"latency_p50_us":%d,' ..
      '"latency_p99_us":%d,"latency_p999_us":%d,"latency_max_us":%d}\n',
      summary.requests, secs, summary.requests / secs, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end
