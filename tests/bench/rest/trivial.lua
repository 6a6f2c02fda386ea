-- trivial.lua — wrk script of tests/bench/rest/run for the ceiling: GET /bench on
-- bench_http_server (tests/bench/http); done() prints one machine-readable line.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.status, e.connect, e.read, e.write, e.timeout))
end
