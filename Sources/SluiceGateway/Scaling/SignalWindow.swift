import NIOCore
import SluiceCore
import Synchronization

/// A pool's latency signal as the request path records it: `LogHistogram` buckets in a ring of
/// sub-windows (one per advisor tick), every bucket an atomic counter, so recording a sample is
/// one relaxed atomic add and takes no lock (like the Prometheus histograms).
///
/// The advisor's ticker owns the ring: each tick it clears the next two sub-windows before
/// their time comes, and reads the stable and panic windows as merges of the most recent ones.
/// (If the ticker stalled for two sub-windows, samples recorded meanwhile land in a sub-window
/// the readers skip, and are lost, never mixed into another window.)
final class SignalWindow: Sendable {
    let subWindow: UInt64
    let slots: Int
    /// Added to monotonic instants before they are cut into sub-windows: 0, or the wall clock's
    /// lead over the monotonic one, so sub-windows start at the same wall-clock instants on every
    /// gateway instance (the shared view merges them by number).
    let offset: UInt64
    private let buckets = LogHistogram.bucketCount
    /// `slots × bucketCount` counters, slot by slot.
    private let counts: AtomicArray<UInt64>
    /// The sub-window index each slot holds (`UInt64.max`: none yet).
    private let epochs: AtomicArray<UInt64>

    /// - Parameters:
    ///   - length: the longest window to read (the stable window), nanoseconds.
    ///   - subWindow: nanoseconds (the advisor's tick).
    init(length: UInt64, subWindow: UInt64, offset: UInt64 = 0) {
        self.subWindow = max(1, subWindow)
        self.offset = offset
        // The window, the current sub-window, and two cleared ahead.
        slots = Int((length + self.subWindow - 1) / self.subWindow) + 3
        counts = AtomicArray(repeating: 0, count: slots * LogHistogram.bucketCount)
        epochs = AtomicArray(repeating: .max, count: slots)
    }

    /// Where `bucket` of `slot` lies in `counts`.
    private func index(slot: Int, bucket: Int) -> Int {
        slot * buckets + bucket
    }

    /// Records one sample (nanoseconds) at `now`.
    func record(nanoseconds: UInt64, at now: UInt64) {
        let epoch = (now &+ offset) / subWindow
        let slot = Int(epoch % UInt64(slots))
        counts[index(slot: slot, bucket: LogHistogram.index(micros: nanoseconds / 1_000))].wrappingAdd(1, ordering: .relaxed)
        // A slot not yet labelled for this sub-window (the very first, or after a stall) is
        // claimed here; its counts were cleared when it was last labelled or at start.
        if epochs[slot].load(ordering: .relaxed) == .max {
            _ = epochs[slot].compareExchange(expected: .max, desired: epoch, ordering: .relaxed)
        }
    }

    /// The ticker's step: clears the sub-windows after `now`'s, so they start empty.
    func advance(to now: UInt64) {
        let epoch = (now &+ offset) / subWindow
        for ahead in UInt64(1)...2 {
            let next = epoch + ahead
            let slot = Int(next % UInt64(slots))
            if epochs[slot].load(ordering: .relaxed) == next { continue }
            for bucket in 0..<buckets { counts[index(slot: slot, bucket: bucket)].store(0, ordering: .relaxed) }
            epochs[slot].store(next, ordering: .relaxed)
        }
    }

    /// The samples of the last `length` nanoseconds at `now` (whole sub-windows, the current
    /// one included).
    func histogram(over length: UInt64, at now: UInt64) -> LogHistogram {
        let current = (now &+ offset) / subWindow
        let span = max(1, (length + subWindow - 1) / subWindow)
        var result = LogHistogram()
        for slot in 0..<slots {
            let epoch = epochs[slot].load(ordering: .relaxed)
            guard epoch != .max, epoch <= current, current - epoch < span else { continue }
            for bucket in 0..<buckets {
                result.add(bucket: bucket, times: counts[index(slot: slot, bucket: bucket)].load(ordering: .relaxed))
            }
        }
        return result
    }

    /// The sub-window number of `now`.
    func epoch(at now: UInt64) -> UInt64 {
        (now &+ offset) / subWindow
    }

    /// The completed sub-window before `now`'s, for publishing to other instances.
    func previousSubWindow(at now: UInt64) -> (epoch: UInt64, histogram: LogHistogram)? {
        let epoch = (now &+ offset) / subWindow
        guard epoch > 0 else { return nil }
        let previous = epoch - 1
        let slot = Int(previous % UInt64(slots))
        guard epochs[slot].load(ordering: .relaxed) == previous else { return nil }
        var result = LogHistogram()
        for bucket in 0..<buckets {
            result.add(bucket: bucket, times: counts[index(slot: slot, bucket: bucket)].load(ordering: .relaxed))
        }
        return (previous, result)
    }
}
