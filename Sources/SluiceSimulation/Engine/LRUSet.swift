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

    mutating func remove(_ hash: UInt64) {
        guard let slot = index[hash] else { return }
        unlink(slot)
        index[hash] = nil
        free.append(slot)
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
