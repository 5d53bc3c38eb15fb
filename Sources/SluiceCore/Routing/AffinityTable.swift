import Synchronization

/// Where each affinity key (a session, a tenant, a user) lives: the replica it was placed on,
/// or moved to when that one stayed saturated or left. A key this table has not seen is placed
/// by the hash ring (`CacheAwarePolicy`), which every gateway instance computes alike; the
/// table is what lets a key stay put while its replica is briefly busy (the hysteresis), and
/// follow its cache after a move.
///
/// Bounded: `capacity` entries in 4-way sets, least recently used replaced first, so memory is
/// fixed (24 bytes an entry) and a flood of one-off keys evicts only idle ones. One lock guards
/// it; a lookup or a record is a few loads and stores under it.
public final class AffinityTable: Sendable {
    public static let ways = 4

    struct Entry {
        /// 0 marks an empty slot; key hashes are forced odd so none is 0.
        var key: UInt64 = 0
        var replica: UInt64 = 0
        /// Last use, in monotonic nanoseconds: the LRU order within a set.
        var usedAt: UInt64 = 0
    }

    private let storage: Mutex<[Entry]>
    private let setMask: Int

    /// `capacity` is rounded up to a power of two sets of `ways` entries.
    public init(capacity: Int = 65_536) {
        var sets = 1
        while sets * Self.ways < capacity { sets <<= 1 }
        setMask = sets - 1
        storage = Mutex(Array(repeating: Entry(), count: sets * Self.ways))
    }

    public var capacity: Int { (setMask + 1) * Self.ways }

    /// The replica (its `Replica.hashKey`) `key` was last recorded on, refreshing its recency.
    public func lookup(_ key: UInt64, now: UInt64) -> UInt64? {
        storage.withLock { entries in
            guard let slot = find(key, in: entries) else { return nil }
            entries[slot].usedAt = now
            return entries[slot].replica
        }
    }

    /// Records `key` on `replica`.
    public func record(_ key: UInt64, replica: UInt64, now: UInt64) {
        storage.withLock { entries in
            entries[slot(for: key, in: entries).index] = Entry(key: key | 1, replica: replica, usedAt: now)
        }
    }

    /// The first slot of `hash`'s set.
    private func base(of hash: UInt64) -> Int {
        (Int(truncatingIfNeeded: hash >> 1) & setMask) * Self.ways
    }

    /// The slot holding `hash`, if any.
    private func find(_ hash: UInt64, in entries: [Entry]) -> Int? {
        let tag = hash | 1
        let base = base(of: hash)
        return (base..<(base + Self.ways)).first { entries[$0].key == tag }
    }

    /// Where `hash` goes: its own slot (found), else the set's first empty slot, else the set's
    /// least recently used one. (Nothing is ever removed, so empty slots follow filled ones.)
    private func slot(for hash: UInt64, in entries: [Entry]) -> (index: Int, found: Bool) {
        let tag = hash | 1
        let base = base(of: hash)
        var victim = base
        for slot in base..<(base + Self.ways) {
            if entries[slot].key == tag { return (slot, true) }
            if entries[slot].key == 0 { return (slot, false) }
            if entries[slot].usedAt < entries[victim].usedAt { victim = slot }
        }
        return (victim, false)
    }

    /// Keys currently held (for tests and the admin view; O(capacity)).
    public var count: Int {
        storage.withLock { entries in entries.reduce(0) { $0 + ($1.key == 0 ? 0 : 1) } }
    }
}
