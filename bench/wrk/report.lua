-- Shared by the benchmark's wrk scripts: done() prints the run's figures as
-- one JSON line after the marker below, which bench/api.py reads (wrk's text
-- summary rounds and changes units, so it is not parsed).
-- Latencies are in microseconds. wrk counts a response as a status error
-- when its status is 400 or above.

local function percentiles(latency)
  local parts = {}
  for _, p in ipairs({ 50, 75, 90, 99, 99.9 }) do
    parts[#parts + 1] = string.format('"%g":%d', p, latency:percentile(p))
  end
  return table.concat(parts, ",")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"percentiles":{%s}}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, percentiles(latency)
  ))
end
