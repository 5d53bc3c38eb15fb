import Synchronization

/// Where each affinity key (a session, a tenant, a prompt prefix) was last sent: the memory that
/// lets cache-aware routing place a key once, by load, and then keep it where its cache is.
///
/// Why remember instead of hashing: a hash places keys where the hash says, and a replica that
/// drew more (or heavier) sessions keeps them; 400 sessions over 4 replicas land 20-28% per
/// replica on the rings measured in `loadtest/compare.sh`. Remembering lets a new key go to the
/// least-loaded replica and every later request follow it, so load evens out without moving any
/// session off its cache. A key this table has not seen (another gateway instance placed it, or
/// it was evicted) is placed again by load (`CacheAwarePolicy`).
///
/// It also holds prompts, as chains of block hashes (`PromptChain`), for clients that send no
/// session key. The last block of each prompt recorded is marked as an end, with the prompt's
/// tail; a block recorded from two replicas is marked shared. A conversation's next prompt
/// contains its previous prompt whole, so its deepest recorded block is that prompt's end, held
/// by one replica, and it goes on with that prompt's tail: the replica with the conversation's
/// cache. A new conversation over a known system prompt matches only blocks inside it, which
/// are shared, not an end, or an end whose tail (another conversation's first question) it
/// does not share; so it is new, and is placed by load instead of piling onto whichever replica
/// saw the system prompt first. Keys and blocks are hashed apart, so one table serves both.
///
/// Bounded: `capacity` entries in 4-way sets, least recently used replaced first, so memory is
/// fixed (40 bytes an entry) and a flood of one-off keys evicts only idle ones. One lock guards
/// it; a lookup or a record is a few loads and stores under it.
public final class AffinityTable: Sendable {
    public static let ways = 4

    struct Entry {
        /// 0 marks an empty slot; key hashes are forced odd so none is 0.
        var key: UInt64 = 0
        var replica: UInt64 = 0
        /// Last use, in monotonic nanoseconds: the LRU order within a set.
        var usedAt: UInt64 = 0
        /// Recorded from more than one replica: a prefix many conversations share.
        var shared = false
        /// The last complete block of the latest prompt recorded to end here, and that
        /// prompt's tail (the bytes after it, fewer than a block).
        var end = false
        var tailLength: UInt8 = 0
        var tailHash: UInt64 = 0
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

    /// Records every block of a prompt on `replica`, under one lock, the last as its end (with
    /// its tail). A block already held by another replica becomes shared, unless the prompt is
    /// `moving` there (a conversation moved off an overloaded replica, or sent elsewhere than
    /// chosen): then its blocks change hands, so the conversation follows its newest cache.
    public func record(_ prompt: PromptChain, replica: UInt64, now: UInt64, moving: Bool = false) {
        let (tailLength, tailHash) = prompt.tail
        storage.withLock { entries in
            for (depth, block) in prompt.blocks.enumerated() {
                let (index, found) = slot(for: block, in: entries)
                var entry = found ? entries[index] : Entry(key: block | 1)
                entry.shared = found && (entry.shared || (entry.replica != replica && !moving))
                entry.replica = replica
                entry.usedAt = now
                if depth == prompt.blocks.count - 1 {
                    entry.end = true
                    entry.tailLength = UInt8(tailLength)
                    entry.tailHash = tailHash
                }
                entries[index] = entry
            }
        }
    }

    /// The replica holding the conversation `prompt` continues: the prompt's deepest recorded
    /// block must be the end of a recorded prompt, held by one replica, and this prompt must go
    /// on with that prompt's tail (so it contains that prompt whole). Scans from the deepest
    /// block up and stops at the first recorded one.
    public func conversation(of prompt: PromptChain, now: UInt64) -> UInt64? {
        storage.withLock { entries in
            for depth in prompt.blocks.indices.reversed() {
                guard let slot = find(prompt.blocks[depth], in: entries) else { continue }
                let entry = entries[slot]
                guard !entry.shared, entry.end,
                      prompt.continues(afterBlock: depth, tailLength: Int(entry.tailLength), tailHash: entry.tailHash)
                else { return nil }
                entries[slot].usedAt = now
                return entry.replica
            }
            return nil
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
