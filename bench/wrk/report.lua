-- Shared by the benchmark's wrk scripts. Every response's status is counted
-- (per thread, merged at the end), so that non-2xx answers are known exactly:
-- wrk's own "status" error counts only 400 and above. done() prints the run's
-- figures as one JSON line after the marker below, which bench/api.py reads
-- (wrk's text summary rounds and changes units, so it is not parsed).
-- Latencies are in microseconds.

local threads = {}

-- Runs in the main Lua state once per wrk thread, before it starts.
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_number", #threads)
end

statuses = {}

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

local function percentiles(latency)
  local parts = {}
  for _, p in ipairs({ 50, 75, 90, 99, 99.9 }) do
    parts[#parts + 1] = string.format('"%g":%d', p, latency:percentile(p))
  end
  return table.concat(parts, ",")
end

local function merged_statuses()
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    parts[#parts + 1] = string.format('"%s":%d', status, count)
  end
  return table.concat(parts, ",")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"statuses":{%s},'
      .. '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"percentiles":{%s}}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    merged_statuses(),
    latency.min, latency.max, latency.mean, latency.stdev, percentiles(latency)
  ))
end
