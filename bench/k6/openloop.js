// Open-loop load: requests start at a fixed arrival rate whatever the
// server's latency (k6's constant-arrival-rate executor), so a slow response
// does not delay the requests behind it and their wait is measured (no
// coordinated omission, as a closed loop of N connections like wrk has).
// Driven by bench/openloop.py through environment variables.
import http from "k6/http";

const rate = Number(__ENV.RATE);
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ["med", "p(90)", "p(99)", "p(99.9)", "max"],
  scenarios: {
    open: {
      executor: "constant-arrival-rate",
      rate: rate,
      timeUnit: "1s",
      duration: __ENV.DURATION,
      // Enough virtual users that every arrival finds one free: an arrival
      // that finds none is counted in dropped_iterations, not delayed. Half a
      // second of arrivals in flight are ready from the start; k6 starts more
      // only lazily (too slowly during a latency spike, which then showed as
      // drops that measured k6 rather than the server).
      preAllocatedVUs: Math.max(50, Math.ceil(rate / 2)),
      maxVUs: Math.max(200, rate * 2),
    },
  },
};

const params = { headers: { Authorization: `Bearer ${__ENV.TOKEN}` }, timeout: "10s" };

export default function () {
  http.get(__ENV.URL, params);
}

export function handleSummary(data) {
  const m = data.metrics;
  const duration = m.http_req_duration.values;
  const summary = {
    requests: m.http_reqs ? m.http_reqs.values.count : 0,
    failed: m.http_req_failed ? m.http_req_failed.values.passes : 0,
    dropped: m.dropped_iterations ? m.dropped_iterations.values.count : 0,
    p50_ms: duration.med,
    p90_ms: duration["p(90)"],
    p99_ms: duration["p(99)"],
    p999_ms: duration["p(99.9)"],
    max_ms: duration.max,
  };
  return { stdout: JSON.stringify(summary) + "\n" };
}
