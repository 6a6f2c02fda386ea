-- read.lua — wrk script of tests/bench/auth/run: GET /fhir/Patient/bench-p-<i>, i at random
-- in [0, N) (N: the first argument), with the bearer token of the second argument when it is
-- not "-" (auth on) and without one otherwise. done() prints one machine-readable line.
local counter = 0
function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
end

local reqs = {}
function init(args)
   local n = tonumber(args[1]) or 1000
   local token = args[2] or "-"
   math.randomseed((tid or 1) * 7919 + os.time())
   wrk.headers["Accept"] = "application/fhir+json"
   if token ~= "-" then wrk.headers["Authorization"] = "Bearer " .. token end
   for i = 0, n - 1 do
      reqs[#reqs + 1] = wrk.format("GET", "/fhir/Patient/bench-p-" .. i)
   end
end

function request()
   return reqs[math.random(#reqs)]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.status + e.connect + e.read + e.write + e.timeout))
end
