-- search.lua — wrk script of tests/bench/rest/run:
-- GET /fhir/Observation?patient=bench-p-<i>&date=ge2020-01-01, i drawn at random in [0, N)
-- (N: the first script argument, the number of Patients that have preloaded Observations).
-- The requests are formatted once per thread; done() prints one machine-readable line.
local counter = 0
function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
end

local reqs = {}
function init(args)
   local n = tonumber(args[1]) or 100
   math.randomseed((tid or 1) * 7919 + os.time())
   wrk.headers["Accept"] = "application/fhir+json"
   for i = 0, n - 1 do
      reqs[#reqs + 1] = wrk.format("GET",
         "/fhir/Observation?patient=bench-p-" .. i .. "&date=ge2020-01-01")
   end
end

function request()
   return reqs[math.random(#reqs)]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.status, e.connect, e.read, e.write, e.timeout))
end
