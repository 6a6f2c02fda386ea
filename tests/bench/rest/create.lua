-- create.lua — wrk script of tests/bench/rest/run: POST /fhir/Observation with a ~1 KB
-- heart-rate Observation whose subject is Patient/bench-p-<i> (i at random in [0, N), N the
-- first script argument) and whose date and value vary. 512 distinct requests are formatted
-- once per thread; done() prints one machine-readable line.
local counter = 0
function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
end

-- The Observation, padded with a note to about `size` bytes.
function observation(patient, day, value, size)
   local head = string.format([[{"resourceType":"Observation","status":"final",]] ..
      [["category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}],]] ..
      [["code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},]] ..
      [["subject":{"reference":"Patient/bench-p-%d"},]] ..
      [["effectiveDateTime":"%s","issued":"%sT09:30:00.000+09:00",]] ..
      [["performer":[{"display":"Bench Nurse"}],]] ..
      [["valueQuantity":{"value":%d,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},]] ..
      [["interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}]}],]] ..
      [["referenceRange":[{"low":{"value":60,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},"high":{"value":100,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}],]],
      patient, day, day, value)
   local tail = [["note":[{"text":"%s"}]}]]
   local pad = size - #head - #tail + 2
   if pad < 1 then pad = 1 end
   return head .. string.format(tail, string.rep("x", pad))
end

local reqs = {}
function init(args)
   local n = tonumber(args[1]) or 1000
   local size = tonumber(args[2]) or 1024
   math.randomseed((tid or 1) * 7919 + os.time())
   local headers = { ["Content-Type"] = "application/fhir+json",
                     ["Accept"] = "application/fhir+json" }
   for _ = 1, 512 do
      local day = string.format("%04d-%02d-%02d", math.random(2016, 2025), math.random(1, 12),
         math.random(1, 28))
      reqs[#reqs + 1] = wrk.format("POST", "/fhir/Observation", headers,
         observation(math.random(0, n - 1), day, math.random(50, 110), size))
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
