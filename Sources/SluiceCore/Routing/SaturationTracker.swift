import Synchronization

/// Since when a replica has been seen saturated, without a break: the hysteresis of
/// cache-aware routing. One request that finds a replica saturated spills elsewhere and the
/// conversation stays; a replica seen saturated for `moveAfter` moves its conversations off.
///
/// Observations come from picks (the policy looks at a replica and tells what it saw), so the
/// tracker also remembers when it last saw saturation: a gap longer than the window between
/// two saturated observations restarts the count, since nothing says the replica stayed
/// saturated while no request looked at it.
public final class SaturationTracker: Sendable {
    private let since = Atomic<UInt64>(0)
    private let lastSeen = Atomic<UInt64>(0)

    public init() {}

    /// Records an observation at `now` and returns for how long (nanoseconds) the replica has
    /// been saturated without a break (0 when it is not saturated now).
    @discardableResult
    public func observe(saturated: Bool, at now: UInt64, window: UInt64) -> UInt64 {
        guard saturated else {
            if since.load(ordering: .relaxed) != 0 { since.store(0, ordering: .relaxed) }
            return 0
        }
        let last = lastSeen.exchange(max(now, lastSeen.load(ordering: .relaxed)), ordering: .relaxed)
        var start = since.load(ordering: .relaxed)
        // (Event loops read their clocks before picking, so observations may arrive out of
        // order: only a later one can open a gap.)
        if start == 0 || (now > last && now - last > window) {
            start = max(1, now)
            since.store(start, ordering: .relaxed)
        }
        return now >= start ? now - start : 0
    }

    /// When the current saturated stretch began (0: not saturated), for the admin view.
    public var saturatedSince: UInt64 { since.load(ordering: .relaxed) }
}
