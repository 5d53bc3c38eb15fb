/// What a policy may know about a request: the few facts the gateway extracts, never headers.
public struct RoutingFacts: Sendable {
    /// An affinity key (session, tenant, prompt prefix) for hashing policies; nil when absent.
    public var key: String?
    /// A fresh random draw for this pick, from the caller's generator (policies own no RNG, so
    /// tests pass exact values).
    public var random: UInt64
    /// The prompt as a block chain when the key is the prompt and the policy follows prompts
    /// (cache-aware); nil otherwise.
    public var prompt: PromptChain?

    public init(key: String? = nil, random: UInt64 = 0, prompt: PromptChain? = nil) {
        self.key = key
        self.random = random
        self.prompt = prompt
    }
}

/// Why a replica was chosen: exported as a metric label, so the branch a policy takes is visible.
public enum RoutingReason: String, Sendable, CaseIterable {
    case rotation = "round_robin"
    case random
    case leastQueue = "least_queue"
    /// The key's own replica (consistent hash) was under the load bound.
    case hash
    /// The key's replica was at the bound; the next one in the key's ring order took it.
    case hashOverflow = "hash_overflow"
    /// No key source was present: least-queue decided.
    case noKey = "no_key"
    /// Cache-aware: a key or prompt this gateway has not seen, placed on the first replica in
    /// its hash-ring order that is not saturated (its hash home, unless that one is).
    case cachePlacement = "cache_placement"
    /// Cache-aware: the replica holding the key or the prompt's longest match, not saturated.
    case cacheAffinity = "cache_affinity"
    /// Cache-aware: that replica is saturated; this request goes to the next one in ring order
    /// that is not, and the conversation stays where it was.
    case cacheSpill = "cache_spill"
    /// Cache-aware: that replica has been saturated for `move_after`, or is out of rotation;
    /// the conversation moves to the next one in ring order that is not saturated.
    case cacheMove = "cache_move"
}

public struct RoutingChoice: Sendable {
    public let replica: Replica
    public let reason: RoutingReason
    /// Prompt bytes the chosen replica is not known to have cached (0 when the policy reads no
    /// prompt): the gateway counts them as pending prefill on the replica while the request runs.
    public let uncachedBytes: Int

    public init(replica: Replica, reason: RoutingReason, uncachedBytes: Int = 0) {
        self.replica = replica
        self.reason = reason
        self.uncachedBytes = uncachedBytes
    }
}

/// Chooses a replica for one request from an immutable snapshot.
///
/// A choice must not change in-flight counts: the caller commits with `Replica.requestStarted()`
/// once it has decided to send, so a choice that is abandoned costs nothing. `now` is monotonic
/// nanoseconds, passed in so tests are exact.
public protocol BalancingPolicy: Sendable {
    func choose(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> RoutingChoice?
    /// Whether snapshots for this policy need a hash ring (built once per membership).
    var needsRing: Bool { get }
    /// The request chosen for with `facts` went to `replica` instead (the chosen one was full,
    /// or failed to connect): for policies that remember where requests went.
    func relocated(_ facts: RoutingFacts, to replica: Replica, now: UInt64)
}

extension BalancingPolicy {
    public var needsRing: Bool { false }

    public func relocated(_ facts: RoutingFacts, to replica: Replica, now: UInt64) {}

    public func pick(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> Replica? {
        choose(facts, in: snapshot, now: now)?.replica
    }
}
