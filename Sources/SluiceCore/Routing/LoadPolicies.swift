/// Uniformly random among available replicas: a baseline.
public struct RandomPolicy: BalancingPolicy {
    public init() {}

    public func choose(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> RoutingChoice? {
        let replicas = snapshot.replicas
        guard !replicas.isEmpty else { return nil }
        let start = Int(facts.random % UInt64(replicas.count))
        for offset in 0..<replicas.count {
            let candidate = replicas[(start + offset) % replicas.count]
            if candidate.isAvailable(at: now) { return RoutingChoice(replica: candidate, reason: .random) }
        }
        return nil
    }
}

/// Join the shortest queue: a replica's load is the gateway's own in-flight requests to it plus
/// the waiting queue it reports (`Replica.load`, stale reports ignored).
///
/// Pools of up to `exactUpTo` replicas get the exact minimum, scanning from a random start so
/// that ties (common: idle replicas) spread instead of herding onto the first one. Larger pools
/// use power of two choices (Mitzenmacher): two distinct random replicas, the less loaded wins,
/// which keeps the maximum load within O(log log n) of the mean at O(1) cost.
public struct LeastQueuePolicy: BalancingPolicy {
    public let exactUpTo: Int
    /// Reports older than this (nanoseconds) count as no queue.
    public let staleAfter: UInt64

    public init(exactUpTo: Int = 16, staleAfter: UInt64 = 5_000_000_000) {
        self.exactUpTo = exactUpTo
        self.staleAfter = staleAfter
    }

    public func choose(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> RoutingChoice? {
        choose(random: facts.random, in: snapshot, now: now).map { RoutingChoice(replica: $0, reason: .leastQueue) }
    }

    /// Two distinct indexes below `count` (≥ 2) from one random draw.
    public static func twoChoices(random: UInt64, count: Int) -> (Int, Int) {
        let first = Int(random % UInt64(count))
        let second = (first + 1 + Int((random >> 32) % UInt64(count - 1))) % count
        return (first, second)
    }

    func choose(random: UInt64, in snapshot: PoolSnapshot, now: UInt64) -> Replica? {
        let replicas = snapshot.replicas
        let count = replicas.count
        guard count > 0 else { return nil }
        if count > exactUpTo {
            let (first, second) = Self.twoChoices(random: random, count: count)
            let a = replicas[first]
            let b = replicas[second]
            switch (a.isAvailable(at: now), b.isAvailable(at: now)) {
            case (true, true):
                return b.load(at: now, staleAfter: staleAfter) < a.load(at: now, staleAfter: staleAfter) ? b : a
            case (true, false): return a
            case (false, true): return b
            case (false, false): break  // rare: fall back to a full scan
            }
        }
        let start = Int(random % UInt64(count))
        var best: Replica?
        var bestLoad = Int.max
        for offset in 0..<count {
            let candidate = replicas[(start + offset) % count]
            guard candidate.isAvailable(at: now) else { continue }
            let load = candidate.load(at: now, staleAfter: staleAfter)
            if load < bestLoad {
                best = candidate
                bestLoad = load
            }
        }
        return best
    }
}

/// Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing
/// with Bounded Loads", SODA 2018): the key's replica on the ring takes the request unless it
/// already has `ceil(loadFactor × (in-flight + 1) / available)` requests in flight; then the
/// next distinct replica clockwise that is under that bound does. Every key obeys the bound, so
/// a hot key cannot pile onto one replica, and a key moves only while its replica is full.
///
/// Without a key (no key source present) least-queue decides.
public struct ConsistentHashPolicy: BalancingPolicy {
    public let loadFactor: Double
    public let fallback: LeastQueuePolicy

    public init(loadFactor: Double = 1.25, fallback: LeastQueuePolicy = LeastQueuePolicy()) {
        precondition(loadFactor >= 1)
        self.loadFactor = loadFactor
        self.fallback = fallback
    }

    public var needsRing: Bool { true }

    public func choose(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> RoutingChoice? {
        guard let key = facts.key, let ring = snapshot.ring else {
            return fallback.choose(random: facts.random, in: snapshot, now: now).map { RoutingChoice(replica: $0, reason: .noKey) }
        }
        if let choice = Self.bounded(key: key, ring: ring, snapshot: snapshot, loadFactor: loadFactor, now: now) {
            return choice
        }
        // Every replica looked full: possible for a moment when the cached availability count is
        // behind an ejection, or counts race across event loops. Never a 503 for that.
        return fallback.choose(random: facts.random, in: snapshot, now: now).map { RoutingChoice(replica: $0, reason: .hashOverflow) }
    }

    /// The load bound for the next request: ceil(c × (total in flight + 1) / available). The
    /// total comes from the pool's running count when there is one (O(1)), else from a scan.
    public static func bound(loadFactor: Double, snapshot: PoolSnapshot, now: UInt64) -> Int {
        let (total, available) = snapshot.loadAndAvailability(at: now)
        guard available > 0 else { return 0 }
        return Int((loadFactor * Double(total + 1) / Double(available)).rounded(.up))
    }

    static func bounded(key: String, ring: HashRing, snapshot: PoolSnapshot, loadFactor: Double, now: UInt64) -> RoutingChoice? {
        guard !ring.points.isEmpty else { return nil }
        let replicas = snapshot.replicas
        let cap = bound(loadFactor: loadFactor, snapshot: snapshot, now: now)
        guard cap > 0 else { return nil }
        var index = ring.firstPoint(atOrAfter: HashRing.hash(key))
        var seen: [Int] = []
        var first = true
        for _ in 0..<ring.points.count {
            let replicaIndex = ring.points[index].replica
            if !seen.contains(replicaIndex) {
                seen.append(replicaIndex)
                let candidate = replicas[replicaIndex]
                if candidate.isAvailable(at: now), candidate.inFlight < cap {
                    return RoutingChoice(replica: candidate, reason: first ? .hash : .hashOverflow)
                }
                first = false
                if seen.count == replicas.count { break }
            }
            index += 1
            if index == ring.points.count { index = 0 }
        }
        return nil
    }
}

/// Cache affinity with queue awareness: a key (session, tenant or prompt prefix) is placed once,
/// by load, and then stays where its prefix cache is until that replica is overloaded.
///
/// What is remembered depends on the key. A session, tenant or user key is remembered as itself.
/// A `prefix` key (a client that sent none of those) comes with the prompt's block chain
/// (`RoutingFacts.prompt`), and the replica remembered is the one that was sent a prompt this
/// one contains whole (`AffinityTable.conversation(of:)`): the one that served the
/// conversation's previous turn, found from the prompt alone, as SGLang's router finds it in
/// its radix tree. A prompt that matches nothing beyond a prefix shared by several replicas (a
/// system prompt) is new. A conversation that moves (an overflow, or a request sent elsewhere
/// than chosen, `relocated`) takes its blocks along, so its next turn follows it.
///
/// The branches, exactly (each is a `RoutingReason` and a metric label):
/// - `cache_placement`: the key (or the prompt) is not in this gateway's `AffinityTable` (its
///   first request, or one that another instance placed, or one evicted as least recently
///   used). It goes to the least-loaded available replica (in-flight plus reported queue),
///   ties going to the replica earliest in the key's hash-ring order (a prompt's: from the hash
///   of its last block and tail), so an idle fleet places a key on its hash home, as every
///   instance would.
///   Pools larger than `leastQueue.exactUpTo` compare only the key's first two replicas in ring
///   order (two choices fixed per key, O(1)).
/// - `cache_affinity`: the key is remembered on a replica that is still a member, available,
///   under the bounded-load cap (`ConsistentHashPolicy.bound`) and reporting a queue of at most
///   `maxQueue`: it goes there.
/// - `cache_overflow_load` (remembered replica past the cap or unavailable) and
///   `cache_overflow_queue` (its reported queue past `maxQueue`): least-queue decides, and the
///   key is remembered on the new replica, so the session's later requests follow its freshest
///   cache instead of returning to a stale one.
/// - `no_key`: no key source present: least-queue.
///
/// Why placement by load and not by hash: the hash decides which replica gets which sessions
/// once and never corrects it; here each new session evens the load, and sessions already
/// placed never move for it. Moving a request costs a prefill of the whole history, placing a
/// new one costs only what it would cost anywhere; so balance is bought with new keys, and
/// existing ones move only under overload. Measured on `loadtest/compare.sh` chat-steady
/// (README, Routing quality).
///
/// The cap is a trade measured on the same benchmark. On a uniform fleet a loose cap serves
/// TTFT better: one more sequence in a batch costs a replica little, while a request moved off
/// its session's replica prefills its whole history again. With one replica 1.6× slower the
/// tight cap is what protects the tail, so the default stays 1.25.
///
/// `choose` records placements and moves in the table (a choice that is then abandoned leaves
/// the key remembered where it would have gone, which costs nothing); it never changes counts.
public struct CacheAwarePolicy: BalancingPolicy {
    public let loadFactor: Double
    public let maxQueue: Int
    public let leastQueue: LeastQueuePolicy
    public let table: AffinityTable

    public init(loadFactor: Double = 1.25, maxQueue: Int = 8, leastQueue: LeastQueuePolicy = LeastQueuePolicy(), table: AffinityTable = AffinityTable()) {
        precondition(loadFactor >= 1)
        self.loadFactor = loadFactor
        self.maxQueue = maxQueue
        self.leastQueue = leastQueue
        self.table = table
    }

    public var needsRing: Bool { true }

    public func choose(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> RoutingChoice? {
        guard let key = facts.key, let ring = snapshot.ring, !ring.points.isEmpty else {
            return leastQueue.choose(random: facts.random, in: snapshot, now: now).map { RoutingChoice(replica: $0, reason: .noKey) }
        }
        let keyHash = HashRing.hash(key)
        let prompt = Self.followed(facts)
        let remembered = prompt.map { table.conversation(of: $0, now: now) } ?? table.lookup(keyHash, now: now)
        let choice: RoutingChoice
        if let remembered, let index = snapshot.indexByHashKey[remembered] {
            let owner = snapshot.replicas[index]
            let overflow: RoutingReason? =
                !owner.isAvailable(at: now) || owner.inFlight >= ConsistentHashPolicy.bound(loadFactor: loadFactor, snapshot: snapshot, now: now)
                ? .cacheOverflowLoad
                : owner.reportedWaiting(at: now, staleAfter: leastQueue.staleAfter) > maxQueue ? .cacheOverflowQueue : nil
            if let overflow {
                guard let moved = leastQueue.choose(random: facts.random, in: snapshot, now: now) else { return nil }
                choice = RoutingChoice(replica: moved, reason: overflow)
            } else {
                choice = RoutingChoice(replica: owner, reason: .cacheAffinity)
            }
        } else {
            // A prompt's ties break by its own last block and tail, not by the prefix key, which
            // every conversation over one system prompt shares.
            guard let placed = place(prompt?.placementHash ?? keyHash, ring: ring, snapshot: snapshot, now: now) else { return nil }
            choice = RoutingChoice(replica: placed, reason: .cachePlacement)
        }
        // A prompt every time (its new blocks join the index, old ones stay fresh); a key when
        // it was placed or moved.
        if prompt != nil || choice.reason != .cacheAffinity {
            remember(prompt, keyHash: keyHash, on: choice.replica, now: now, moving: choice.reason != .cachePlacement && choice.reason != .cacheAffinity)
        }
        return choice
    }

    public func relocated(_ facts: RoutingFacts, to replica: Replica, now: UInt64) {
        guard let key = facts.key else { return }
        remember(Self.followed(facts), keyHash: HashRing.hash(key), on: replica, now: now, moving: true)
    }

    /// The prompt this policy follows: one with at least one complete block.
    private static func followed(_ facts: RoutingFacts) -> PromptChain? {
        facts.prompt.flatMap { $0.blocks.isEmpty ? nil : $0 }
    }

    private func remember(_ prompt: PromptChain?, keyHash: UInt64, on replica: Replica, now: UInt64, moving: Bool) {
        if let prompt {
            table.record(prompt, replica: replica.hashKey, now: now, moving: moving)
        } else {
            table.record(keyHash, replica: replica.hashKey, now: now)
        }
    }

    /// The least-loaded available replica among the key's first candidates in ring order (all of
    /// them up to `exactUpTo` replicas, else two); the earliest wins ties.
    func place(_ keyHash: UInt64, ring: HashRing, snapshot: PoolSnapshot, now: UInt64) -> Replica? {
        let replicas = snapshot.replicas
        let wanted = replicas.count > leastQueue.exactUpTo ? 2 : replicas.count
        var seen: [Int] = []
        seen.reserveCapacity(min(wanted, 16))
        var considered = 0
        var best: Replica?
        var bestLoad = Int.max
        var index = ring.firstPoint(atOrAfter: keyHash)
        for _ in 0..<ring.points.count {
            let replicaIndex = ring.points[index].replica
            if !seen.contains(replicaIndex) {
                seen.append(replicaIndex)
                let candidate = replicas[replicaIndex]
                if candidate.isAvailable(at: now) {
                    let load = candidate.load(at: now, staleAfter: leastQueue.staleAfter)
                    if load < bestLoad {
                        best = candidate
                        bestLoad = load
                    }
                    considered += 1
                    if considered == wanted { break }
                }
                if seen.count == replicas.count { break }
            }
            index += 1
            if index == ring.points.count { index = 0 }
        }
        return best
    }
}
