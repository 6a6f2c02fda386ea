-- create.lua — wrk script of tests/bench/auth/run: POST /fhir/Observation (~1 KB heart-rate
-- Observation of Patient/bench-p-<i>, i at random in [0, N), N the first argument), with the
-- bearer token of the second argument unless it is "-". 512 distinct requests per thread.
local counter = 0
function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
end

local function observation(patient, day, value)
   return string.format([[{"resourceType":"Observation","status":"final",]] ..
      [["category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],]] ..
      [["code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},]] ..
      [["subject":{"reference":"Patient/bench-p-%d"},"effectiveDateTime":"%s",]] ..
      [["valueQuantity":{"value":%d,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},]] ..
      [["note":[{"text":"%s"}]}]], patient, day, value, string.rep("x", 500))
end

local reqs = {}
function init(args)
   local n = tonumber(args[1]) or 1000
   local token = args[2] or "-"
   math.randomseed((tid or 1) * 7919 + os.time())
   local headers = { ["Content-Type"] = "application/fhir+json",
                     ["Accept"] = "application/fhir+json" }
   if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
   for _ = 1, 512 do
      local day = string.format("%04d-%02d-%02d", math.random(2016, 2025), math.random(1, 12),
         math.random(1, 28))
      reqs[#reqs + 1] = wrk.format("POST", "/fhir/Observation", headers,
         observation(math.random(0, n - 1), day, math.random(50, 110)))
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
