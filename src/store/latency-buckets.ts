/**
 * The fine log-scale latency buckets of the report counters (migration 16): bucket 0 holds
 * 0 ms, bucket b >= 1 the ms in [2^((b-1)/16), 2^(b/16)), 16 buckets per doubling, so a
 * bucket spans at most 4.4% of its values. The trigger computes the same in SQL
 * (`1 + floor(16 * log2(ms))`); the two may disagree only for a value a floating-point
 * rounding away from a bucket edge, which moves it to the neighbouring bucket.
 */
export const BUCKETS_PER_DOUBLING = 16;

export function latencyBucket(ms: number): number {
  return ms < 1 ? 0 : 1 + Math.floor(BUCKETS_PER_DOUBLING * Math.log2(ms));
}

/**
 * The value reported for a bucket: the whole ms nearest its geometric middle, kept inside
 * the bucket's whole ms (so a bucket that holds one whole ms reports it exactly). Within
 * 2.2% of every value in the bucket, give or take the rounding to whole ms.
 */
export function bucketValue(bucket: number): number {
  if (bucket <= 0) return 0;
  const lo = Math.ceil(2 ** ((bucket - 1) / BUCKETS_PER_DOUBLING));
  const hi = Math.max(lo, Math.ceil(2 ** (bucket / BUCKETS_PER_DOUBLING)) - 1);
  return Math.min(hi, Math.max(lo, Math.round(2 ** ((bucket - 0.5) / BUCKETS_PER_DOUBLING))));
}
