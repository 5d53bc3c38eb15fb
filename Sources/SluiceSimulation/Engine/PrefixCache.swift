/// The KV-cache blocks of a simulated replica, as vLLM's block manager keeps them in outline:
/// - **private** blocks a running sequence reserved for what is not shared (the uncached part of
///   its prompt until prefill ends, and room for its output);
/// - **shared** prompt blocks, identified by the chained hash of the prefix up to them
///   (`SimTokenizer.blockHashes`, so a hit on block *i* implies the prefix before it), held by
///   the running sequences that use them (reference counted, never evicted while held);
/// - **idle cached** blocks no running sequence holds: the prefix cache proper, evicted least
///   recently used first when a sequence needs room.
///
/// A sequence reserves everything it could need (prompt + `max_tokens`) at admission, minus the
/// blocks it finds cached. Simplified from vLLM: no preemption, and output blocks become cached
/// only when the answer ends (`BatchEngine`), not block by block as they fill.
public struct PrefixCache: Sendable {
    public let capacity: Int
    /// Private blocks of running sequences.
    public private(set) var reserved = 0
    /// Prompt tokens looked up and found (for `vllm:prefix_cache_queries` / `_hits`).
    public private(set) var queriedTokens = 0
    public private(set) var hitTokens = 0

    private var lru = LRUSet()
    /// Shared blocks held by running sequences, with how many hold each.
    private var held: [UInt64: Int] = [:]

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Cached prompt blocks, held or idle.
    public var cachedBlocks: Int { lru.count + held.count }

    /// Fraction of blocks in use by running sequences (`vllm:kv_cache_usage_perc`).
    public var usage: Double { Double(reserved + held.count) / Double(capacity) }

    public func contains(_ hash: UInt64) -> Bool { held[hash] != nil || lru.contains(hash) }

    /// Counts one admitted prompt: its tokens as queried, the reused ones as hits.
    public mutating func recordQuery(promptTokens: Int, hitTokens hits: Int) {
        queriedTokens += promptTokens
        hitTokens += hits
    }

    /// Admits a sequence needing `totalBlocks` whose prompt has `hashes`: the leading cached
    /// blocks are shared (and held), the rest reserved, evicting idle cached blocks as needed.
    /// Returns the shared (hit) block count, or nil (nothing changes) when there is no room.
    public mutating func admit(_ hashes: [UInt64], totalBlocks: Int) -> Int? {
        var hits = 0
        for hash in hashes {
            guard contains(hash) else { break }
            hits += 1
        }
        let hitHashes = hashes.prefix(hits)
        // Idle hits become held: they stop being evictable.
        let newlyHeld = hitHashes.filter { held[$0] == nil }.count
        let need = totalBlocks - hits
        guard reserved + held.count + newlyHeld + need <= capacity else { return nil }
        for hash in hitHashes { hold(hash) }
        reserved += need
        evictToFit()
        return hits
    }

    /// After prefill: the sequence's newly computed full prompt blocks become shared cached
    /// blocks (one private block each fewer). Returns how many were promoted.
    public mutating func promote(_ hashes: ArraySlice<UInt64>) -> Int {
        for hash in hashes { hold(hash) }
        reserved = max(0, reserved - hashes.count)
        evictToFit()
        return hashes.count
    }

    /// A sequence ended: its private blocks are freed and its shared ones let go (idle once no
    /// sequence holds them, most recently used first).
    public mutating func release(shared: [UInt64], privateBlocks: Int) {
        reserved = max(0, reserved - privateBlocks)
        for hash in shared {
            guard let count = held[hash] else { continue }
            if count > 1 {
                held[hash] = count - 1
            } else {
                held[hash] = nil
                if !lru.touch(hash) { lru.insert(hash) }
            }
        }
        evictToFit()
    }

    private mutating func hold(_ hash: UInt64) {
        if let count = held[hash] {
            held[hash] = count + 1
        } else {
            lru.remove(hash)
            held[hash] = 1
        }
    }

    private mutating func evictToFit() {
        while lru.count > 0, reserved + held.count + lru.count > capacity { lru.evictOldest() }
    }
}
