/// The KV-cache blocks of a simulated replica: blocks reserved by running sequences, and the
/// prompt blocks of finished prefills kept for reuse (a prefix cache), evicted least recently
/// used first when reservations need the room.
///
/// A simplification of vLLM's block manager, kept deliberately small: a sequence reserves all
/// the blocks it could need (prompt + `max_tokens`) when it is admitted, and cached blocks are
/// only those not reserved. Block identity is the chained hash of the prefix up to the block
/// (`SimTokenizer.blockHashes`), so a hit on block *i* implies the whole prefix before it.
public struct PrefixCache: Sendable {
    public let capacity: Int
    /// Blocks reserved by running sequences.
    public private(set) var reserved = 0
    /// Prompt tokens looked up and found (for `vllm:prefix_cache_queries` / `_hits`).
    public private(set) var queriedTokens = 0
    public private(set) var hitTokens = 0

    private var lru = LRUSet()

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Cached (evictable) blocks.
    public var cachedBlocks: Int { lru.count }

    /// Fraction of blocks reserved by running sequences (`vllm:kv_cache_usage_perc`).
    public var usage: Double { Double(reserved) / Double(capacity) }

    /// How many leading blocks of `hashes` are cached; those are marked as recently used.
    public mutating func lookup(_ hashes: [UInt64]) -> Int {
        var hits = 0
        for hash in hashes {
            guard lru.touch(hash) else { break }
            hits += 1
        }
        return hits
    }

    /// Counts one admitted prompt: its tokens as queried, the reused ones as hits.
    public mutating func recordQuery(promptTokens: Int, hitTokens hits: Int) {
        queriedTokens += promptTokens
        hitTokens += hits
    }

    /// Reserves `blocks` for a sequence, evicting cached blocks as needed. False (nothing
    /// changes) when even an empty cache would not make room.
    public mutating func reserve(_ blocks: Int) -> Bool {
        guard reserved + blocks <= capacity else { return false }
        reserved += blocks
        while lru.count > capacity - reserved { lru.evictOldest() }
        return true
    }

    public mutating func release(_ blocks: Int) {
        reserved = max(0, reserved - blocks)
    }

    /// Keeps a prompt's blocks for reuse (most recently used), as far as unreserved room allows.
    public mutating func insert(_ hashes: [UInt64]) {
        for hash in hashes where capacity - reserved > 0 {
            if !lru.touch(hash) {
                if lru.count >= capacity - reserved { lru.evictOldest() }
                lru.insert(hash)
            }
        }
    }

    public func contains(_ hash: UInt64) -> Bool { lru.contains(hash) }
}

/// Hashes in least-recently-used order: a dictionary into a doubly linked list kept in arrays,
/// so touch, insert and evict are O(1) and no node is allocated on its own.
struct LRUSet: Sendable {
    private struct Node: Sendable {
        var hash: UInt64
        var previous: Int
        var next: Int
    }

    private var index: [UInt64: Int] = [:]
    private var nodes: [Node] = []
    private var free: [Int] = []
    /// Most recently used, and least recently used; -1 when empty.
    private var head = -1
    private var tail = -1

    var count: Int { index.count }

    func contains(_ hash: UInt64) -> Bool { index[hash] != nil }

    /// Moves `hash` to the front; false if absent.
    mutating func touch(_ hash: UInt64) -> Bool {
        guard let slot = index[hash] else { return false }
        unlink(slot)
        pushFront(slot)
        return true
    }

    mutating func insert(_ hash: UInt64) {
        let slot: Int
        if let reused = free.popLast() {
            slot = reused
            nodes[slot] = Node(hash: hash, previous: -1, next: -1)
        } else {
            slot = nodes.count
            nodes.append(Node(hash: hash, previous: -1, next: -1))
        }
        index[hash] = slot
        pushFront(slot)
    }

    mutating func evictOldest() {
        guard tail >= 0 else { return }
        let slot = tail
        unlink(slot)
        index[nodes[slot].hash] = nil
        free.append(slot)
    }

    private mutating func unlink(_ slot: Int) {
        let node = nodes[slot]
        if node.previous >= 0 { nodes[node.previous].next = node.next } else { head = node.next }
        if node.next >= 0 { nodes[node.next].previous = node.previous } else { tail = node.previous }
    }

    private mutating func pushFront(_ slot: Int) {
        nodes[slot].previous = -1
        nodes[slot].next = head
        if head >= 0 { nodes[head].previous = slot }
        head = slot
        if tail < 0 { tail = slot }
    }
}
