import Synchronization

/// What each replica was recently sent, as prompt block hashes (`PromptChain`): an approximate
/// prefix tree, as SGLang's router keeps one per worker, for clients that name no session.
/// A prompt's longest match is the deepest of its blocks some replica holds, and the replicas
/// holding it are where most of its prefix is cached.
///
/// Why hashes and not a radix tree of text: a chain hash already names a whole prefix, so the
/// tree's edges are implicit (block `i` present means the prefix through `i` was sent), a
/// lookup is a binary search over the prompt's blocks (O(log n) probes: presence is monotone
/// in depth, since recording a prompt records all its prefixes and eviction takes a prompt's
/// deepest blocks first), and memory is a fixed number of bytes per block.
///
/// Bounded like a replica's own cache: each replica holds at most `capacity / replicas` blocks
/// (at least `minimumPerReplica`), least recently sent evicted first, so one busy replica
/// cannot push another's prompts out. A block keeps up to four holders (the most recent); a
/// prefix every replica holds (a system prompt) needs no more to be matched.
///
/// Recency is kept lazily: each replica has a log of (block, stamp) in the order sent; a block
/// sent again gets a new stamp and a new log entry, and an entry whose stamp is no longer the
/// block's is skipped when evicting. The log is cut to twice the budget. One lock guards it all.
public final class PromptIndex: Sendable {
    public static let maxHolders = 4

    struct Holder {
        var replica: UInt64
        var stamp: UInt64
    }

    struct Node {
        var holders: [Holder]
        /// The anchor (`PromptChain.anchor`) of the conversation that first sent this block:
        /// tells a conversation's own history from a prefix other conversations share.
        var anchor: UInt64
    }

    struct Log {
        var entries: [(block: UInt64, stamp: UInt64)] = []
        var head = 0
        var live = 0

        var length: Int { entries.count - head }

        mutating func popFirst() -> (block: UInt64, stamp: UInt64)? {
            guard head < entries.count else { return nil }
            let first = entries[head]
            head += 1
            if head > 4_096, head * 2 > entries.count {
                entries.removeFirst(head)
                head = 0
            }
            return first
        }
    }

    struct State {
        var nodes: [UInt64: Node] = [:]
        var logs: [UInt64: Log] = [:]
        var clock: UInt64 = 0
        /// The membership generation last retained.
        var generation: UInt64 = 0
    }

    /// The deepest block of a prompt some replica holds.
    public struct Match: Sendable, Equatable {
        /// How many of the prompt's blocks are matched.
        public var blocks: Int
        /// The bytes they cover.
        public var bytes: Int
        /// The replicas (`Replica.hashKey`) holding the deepest matched block, most recent first.
        public var replicas: [UInt64]
        /// The anchor of the conversation that first sent that block: the prompt's own when the
        /// match is its conversation's history, another's when it is a shared prefix.
        public var anchor: UInt64
    }

    public let capacity: Int
    public let minimumPerReplica: Int
    private let state = Mutex(State())

    public init(capacity: Int = 65_536, minimumPerReplica: Int = 256) {
        self.capacity = max(1, capacity)
        self.minimumPerReplica = max(1, minimumPerReplica)
    }

    /// The longest match of `prompt` among what was recorded.
    public func longestMatch(_ prompt: PromptChain) -> Match? {
        state.withLock { state in
            var low = 0
            var high = prompt.blocks.count
            // The number of leading blocks held: the first depth whose block nobody holds.
            while low < high {
                let middle = (low + high) / 2
                if state.nodes[prompt.blocks[middle]] != nil { low = middle + 1 } else { high = middle }
            }
            guard low > 0, let node = state.nodes[prompt.blocks[low - 1]] else { return nil }
            let replicas = node.holders.sorted { $0.stamp > $1.stamp }.map(\.replica)
            return Match(blocks: low, bytes: PromptChain.bytes(inBlocks: low), replicas: replicas, anchor: node.anchor)
        }
    }

    /// Records that `replica` was sent `prompt` (every block, deepest first in its log, so the
    /// prefix outlives its extensions), then evicts its least recently sent blocks past its budget.
    public func record(_ prompt: PromptChain, replica: UInt64) {
        guard !prompt.blocks.isEmpty else { return }
        state.withLock { state in
            state.clock += 1
            let stamp = state.clock
            var log = state.logs.removeValue(forKey: replica) ?? Log()
            for block in prompt.blocks.reversed() {
                // Modified in place (a copy out and back would copy its holders on every block).
                let (added, dropped) = Self.touch(&state.nodes[block, default: Node(holders: [], anchor: prompt.anchor)], replica: replica, stamp: stamp)
                if added { log.live += 1 }
                if let dropped { state.logs[dropped]?.live -= 1 }
                log.entries.append((block, stamp))
            }
            let budget = max(minimumPerReplica, capacity / (state.logs.count + 1))
            while log.live > budget || log.length > 2 * budget + prompt.blocks.count {
                guard let (block, stamp) = log.popFirst() else { break }
                guard var node = state.nodes[block],
                      let index = node.holders.firstIndex(where: { $0.replica == replica && $0.stamp == stamp })
                else { continue }  // sent again since, or its place taken
                node.holders.remove(at: index)
                state.nodes[block] = node.holders.isEmpty ? nil : node
                log.live -= 1
            }
            state.logs[replica] = log
        }
    }

    /// Marks `replica` a holder of `node` as of `stamp`: whether it was added, and the stalest
    /// holder it displaced when the node was full (that one's log entry goes stale).
    private static func touch(_ node: inout Node, replica: UInt64, stamp: UInt64) -> (added: Bool, dropped: UInt64?) {
        if let index = node.holders.firstIndex(where: { $0.replica == replica }) {
            node.holders[index].stamp = stamp
            return (false, nil)
        }
        var dropped: UInt64?
        if node.holders.count == maxHolders {
            let oldest = node.holders.indices.min { node.holders[$0].stamp < node.holders[$1].stamp }!
            dropped = node.holders.remove(at: oldest).replica
        }
        node.holders.append(Holder(replica: replica, stamp: stamp))
        return (true, dropped)
    }

    /// Forgets replicas that are no longer members, when `generation` (the pool snapshot's) is
    /// newer than the last one seen (a pick still holding an older snapshot changes nothing).
    public func retain(generation: UInt64, members: () -> Set<UInt64>) {
        state.withLock { state in
            guard generation > state.generation else { return }
            state.generation = generation
            let members = members()
            let gone = state.logs.keys.filter { !members.contains($0) }
            guard !gone.isEmpty else { return }
            for replica in gone { state.logs[replica] = nil }
            state.nodes = state.nodes.compactMapValues { node in
                let holders = node.holders.filter { members.contains($0.replica) }
                return holders.isEmpty ? nil : Node(holders: holders, anchor: node.anchor)
            }
        }
    }

    /// Blocks held by `replica` (for tests and the admin view).
    public func blocks(heldBy replica: UInt64) -> Int {
        state.withLock { $0.logs[replica]?.live ?? 0 }
    }

    /// Distinct blocks held by any replica.
    public var count: Int {
        state.withLock { $0.nodes.count }
    }
}
