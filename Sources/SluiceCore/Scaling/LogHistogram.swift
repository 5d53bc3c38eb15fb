/// A latency histogram with fixed log-linear buckets (HdrHistogram's layout with 6 sub-bucket
/// bits): every microsecond below 128 µs has its own bucket, and each power of two above is cut
/// into 64 equal buckets, up to 2^28 µs (about 4.5 minutes; longer values land in the last
/// bucket). A bucket is at most 1/64 of its lower bound wide, so a percentile read as the
/// bucket's midpoint is within 0.8% of the exact sample value.
///
/// Fixed buckets make histograms **mergeable** by adding counts: the merge of two windows is
/// exactly the histogram of both sample sets, which is what lets sub-windows slide, gateway
/// instances combine their views, and Prometheus aggregate across instances.
public struct LogHistogram: Sendable, Equatable {
    public static let subBucketBits = 6
    public static let linearLimit: UInt64 = 128
    public static let maxOctave = 28
    /// 128 exact buckets, then 64 per octave from 2^7 to 2^28 µs.
    public static let bucketCount = Int(linearLimit) + (maxOctave - 7 + 1) * 64

    public private(set) var counts: [UInt64]
    public private(set) var count: UInt64 = 0

    public init() {
        counts = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    /// The bucket of `micros`.
    @inline(__always)
    public static func index(micros: UInt64) -> Int {
        if micros < linearLimit { return Int(micros) }
        let octave = min(63 - micros.leadingZeroBitCount, maxOctave)
        if octave == maxOctave, micros >> octave > 1 { return bucketCount - 1 }
        let sub = Int((micros >> UInt64(octave - subBucketBits)) & 63)
        return Int(linearLimit) + (octave - 7) * 64 + sub
    }

    /// The range `[lower, upper)` of bucket `index`, in µs.
    public static func bounds(_ index: Int) -> (lower: UInt64, upper: UInt64) {
        if index < Int(linearLimit) { return (UInt64(index), UInt64(index) + 1) }
        let octave = (index - Int(linearLimit)) / 64 + 7
        let sub = UInt64((index - Int(linearLimit)) % 64)
        let width = UInt64(1) << UInt64(octave - subBucketBits)
        let lower = (UInt64(1) << UInt64(octave)) + sub * width
        return (lower, lower + width)
    }

    public mutating func record(micros: UInt64, count times: UInt64 = 1) {
        counts[Self.index(micros: micros)] += times
        count += times
    }

    public mutating func record(nanoseconds: UInt64) {
        record(micros: nanoseconds / 1_000)
    }

    /// Adds bucket `index` `times` (a snapshot of atomic counters is built this way).
    /// (Counts wrap rather than trap: a corrupt count from another instance must not stop this one.)
    public mutating func add(bucket index: Int, times: UInt64) {
        guard times > 0 else { return }
        counts[index] &+= times
        count &+= times
    }

    public mutating func merge(_ other: LogHistogram) {
        for index in counts.indices where other.counts[index] != 0 { counts[index] &+= other.counts[index] }
        count &+= other.count
    }

    /// The `quantile` (0...1) by nearest rank, as the midpoint of its bucket, in µs; nil when
    /// empty.
    public func quantile(_ quantile: Double) -> UInt64? {
        guard count > 0 else { return nil }
        let rank = max(1, UInt64((quantile * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for index in counts.indices where counts[index] != 0 {
            seen += counts[index]
            if seen >= rank {
                let (lower, upper) = Self.bounds(index)
                return upper - lower == 1 ? lower : lower + (upper - lower) / 2
            }
        }
        return nil
    }

    /// Samples at or below `micros` (for Prometheus' cumulative buckets: exact at bucket bounds).
    public func countAtOrBelow(micros: UInt64) -> UInt64 {
        let last = Self.index(micros: micros)
        var total: UInt64 = 0
        for index in 0...last { total += counts[index] }
        return total
    }
}
