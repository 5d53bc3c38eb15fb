/// A sliding window of latency samples, kept as a ring of sub-window histograms (for example
/// 2 s each): a window of any length up to the ring's is the merge of its most recent
/// sub-windows, so the stable (60 s) and panic (6 s) windows share one ring. Sliding costs
/// nothing per sample: a sub-window is cleared when its turn comes round.
///
/// Pure: time comes in as monotonic nanoseconds.
public struct LatencyWindow: Sendable {
    public let subWindow: UInt64
    private var slots: [LogHistogram]
    /// The sub-window index (`now / subWindow`) each slot holds.
    private var epochs: [UInt64]

    /// - Parameters:
    ///   - length: the longest window to be read (the ring holds that many sub-windows).
    ///   - subWindow: the sub-window length, nanoseconds.
    public init(length: UInt64, subWindow: UInt64) {
        precondition(subWindow > 0 && length >= subWindow)
        self.subWindow = subWindow
        let count = Int((length + subWindow - 1) / subWindow)
        slots = Array(repeating: LogHistogram(), count: count)
        epochs = Array(repeating: .max, count: count)
    }

    public var capacity: UInt64 { UInt64(slots.count) * subWindow }

    public mutating func record(nanoseconds: UInt64, at now: UInt64) {
        let epoch = now / subWindow
        let slot = Int(epoch % UInt64(slots.count))
        if epochs[slot] != epoch {
            slots[slot] = LogHistogram()
            epochs[slot] = epoch
        }
        slots[slot].record(nanoseconds: nanoseconds)
    }

    /// Adds a whole sub-window's histogram for the sub-window holding `at` (another instance's,
    /// or a snapshot of atomic counters).
    public mutating func add(_ histogram: LogHistogram, at now: UInt64) {
        let epoch = now / subWindow
        let slot = Int(epoch % UInt64(slots.count))
        if epochs[slot] != epoch {
            slots[slot] = LogHistogram()
            epochs[slot] = epoch
        }
        slots[slot].merge(histogram)
    }

    /// The samples of the last `length` nanoseconds at `now`, in whole sub-windows (the current,
    /// partial one included).
    public func merged(over length: UInt64, at now: UInt64) -> LogHistogram {
        let current = now / subWindow
        let span = min(UInt64(slots.count), max(1, (length + subWindow - 1) / subWindow))
        var result = LogHistogram()
        for slot in slots.indices {
            let epoch = epochs[slot]
            guard epoch != .max, epoch <= current, current - epoch < span else { continue }
            result.merge(slots[slot])
        }
        return result
    }
}
