/**
 * A number to bind as a Float64 query parameter. A whole number beyond ±2^53 (a double such as
 * 1e20, which JSON allows anywhere a number goes) is passed as a bigint: its exact decimal
 * digits, which ClickHouse reads back as the same double. The embedded engine's binder refuses
 * such numbers as numbers, since as integers they may have lost precision.
 */
export const float64 = (v: number): number | bigint =>
  Number.isInteger(v) && !Number.isSafeInteger(v) ? BigInt(v) : v;
