// SPDX-License-Identifier: MIT
// What the operations page and the chat page both take from /stats: percentiles of the publish
// latency histogram between two samples. Loaded before either page's own script, it defines one
// global, ringcastStats, and runs nothing.
'use strict';

window.ringcastStats = (function () {
  // histogram_quantile as Prometheus computes it: find the bucket that holds rank q * total and
  // interpolate linearly inside it. <counts> are per bucket (not cumulative), the last is +Inf:
  // a rank there answers the last finite bound, "at least this".
  function quantile(q, le, counts) {
    let total = 0;
    for (const c of counts) total += c;
    if (total <= 0) return null;
    const rank = q * total;
    let cum = 0;
    for (let i = 0; i < counts.length; i++) {
      const below = cum;
      cum += counts[i];
      if (counts[i] > 0 && cum >= rank) {
        if (i >= le.length) return le[le.length - 1];
        const lo = i === 0 ? 0 : le[i - 1];
        return lo + (le[i] - lo) * ((rank - below) / counts[i]);
      }
    }
    return le[le.length - 1];
  }

  // p50 and p99 of the deliveries between two /stats objects, <older> and <newer> (null when
  // there is no older one yet, or the broker restarted in between).
  function latency(older, newer) {
    const hb = newer.publish_latency;
    const ha = older ? older.publish_latency : null;
    if (!hb || !ha || ha.counts.length !== hb.counts.length) return { p50: null, p99: null };
    const diff = hb.counts.map((c, i) => c - ha.counts[i]);
    if (diff.some((d) => d < 0)) return { p50: null, p99: null };
    return { p50: quantile(0.5, hb.le_seconds, diff), p99: quantile(0.99, hb.le_seconds, diff) };
  }

  return Object.freeze({ quantile, latency });
})();
