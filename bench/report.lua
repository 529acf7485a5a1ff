-- wrk's end-of-run report for the bench scripts (loaded with dofile): one BENCH line that
-- bench.sh and cluster.sh read.
done = function(summary, latency, requests)
  io.write(string.format("BENCH accepted_per_s=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
