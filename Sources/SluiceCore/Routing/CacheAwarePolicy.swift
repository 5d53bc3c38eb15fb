/// Cache affinity that holds until the replica is saturated: a conversation (a session key, or
/// for clients that send none, its prompt) stays on the replica that holds its prefix cache
/// until that replica cannot take it, and only a replica saturated for a while moves it.
///
/// Where a conversation goes, exactly (each branch is a `RoutingReason` and a metric label):
/// - The owner: where `AffinityTable` says the conversation (its key, or its prompt's anchor)
///   was placed or last moved, by this instance or another (`learn`): the newest word on it.
///   Without such a record, a prompt's owner is the replica holding its longest match in
///   `PromptIndex` (the least loaded of them when several hold it), if the match covers at
///   least `matchThreshold` of the prompt and is the conversation's own history (its deepest
///   block was first sent with this prompt's anchor: an earlier turn, or the same
///   conversation started over).
/// - `cache_affinity`: the owner is not saturated: it goes there.
/// - `cache_spill`: the owner is saturated: this request goes to the first replica in the
///   conversation's ring order that is not, and the conversation stays with its owner.
/// - `cache_move`: the owner has been saturated for `moveAfter` without a break
///   (`SaturationTracker`), or is out of rotation: the same replica takes it and the
///   conversation moves there.
/// - `cache_placement`: no owner (a conversation no instance placed, as far as this one heard):
///   the replica with the least work among those not saturated: conversations given lately
///   (`PlacementCounts`) plus requests in flight and waiting; a replica holding a long shared
///   prefix of the prompt (a system prompt, a document others asked about) may take one
///   conversation more than the others; the earliest in the conversation's ring order wins ties (its hash
///   home on an idle fleet).
/// - `no_key`: no key source present: least-queue.
/// When every candidate is saturated, least-queue picks among all.
///
/// Saturated means the replica cannot take more without queueing much: out of rotation, a
/// reported waiting queue past `maxQueue`, this gateway's requests in flight past its running
/// slots (configured, or learnt from its `vllm:num_requests_running`) plus `maxQueue`, or
/// more than `maxPendingPrefillBytes` of uncached prompt bytes sent to it whose answers have
/// not started, from more than one request.
/// Before any slots are known the in-flight bound is the bounded-load cap
/// (`ConsistentHashPolicy.bound`) plus `maxQueue`. Why not the bounded-load cap alone: at a few
/// requests in flight per replica, Poisson bunching crosses `ceil(1.25 × mean)` all the time,
/// long before a replica with free slots is busy, and each crossing cost a conversation its
/// cache (issue 15 measured one in six requests moved that way).
///
/// Why place by count and load and not by hash: a hash hands each replica the conversations it
/// draws, and one that drew a third more than another overflows its cache first and sets the
/// tail. The load alone ties at a few requests in flight when a fleet starts or new users rush
/// in; the count alone gives a slow replica as many conversations as a fast one.
///
/// Why a shared prefix does not make an owner (SGLang's router follows any match over its
/// threshold): new conversations over a popular system prompt would all pile onto the replica
/// that saw it first until it saturates; measured on chat-anonymous (a 300-word system prompt,
/// 50-word questions) that sent 41% of requests to one replica and 4% to another. Spreading a
/// shared prefix costs its prefill once per replica, after which every replica holds it. Several instances agree on placements by telling each other
/// (`learn`, fed by the gateway's `routing.shared`); spills and moves go in ring order (a
/// prompt's ring position is its anchor, `PromptChain.anchor`, the same in every turn), which
/// every instance computes alike from the membership and the replicas' own reports.
///
/// Several instances that do not share placements disagree under count-based placement (each
/// counts only what it placed): `placeByRing` makes them place alike, by the ring alone, at
/// the price of the hash's imbalance.
///
/// `choose` records placements and moves (a choice that is then abandoned leaves the key
/// remembered where it would have gone, which costs nothing); spills are not recorded.
public struct CacheAwarePolicy: BalancingPolicy {
    public struct Settings: Sendable, Equatable {
        /// A replica reporting more requests waiting than this is saturated.
        public var maxQueue = 8
        /// Running slots per replica; nil: learnt from the replicas' reports.
        public var slots: Int?
        /// The in-flight bound's load factor while no slots are known.
        public var loadFactor = 1.25
        /// Uncached prompt bytes in flight past which a replica is saturated.
        public var maxPendingPrefillBytes = 65_536
        /// How long (nanoseconds) a replica stays saturated before its conversations move.
        public var moveAfter: UInt64 = 2_000_000_000
        /// The share of a prompt its longest match must cover to follow that match.
        public var matchThreshold = 0.5
        /// How many replicas in ring order are tried before least-queue decides.
        public var ringCandidates = 8
        /// Place new conversations on the first replica in their ring order that is not
        /// saturated, instead of where the least work is: for several gateway instances that do
        /// not share placements, so they place alike (each would otherwise balance by its own
        /// counts and send a conversation's turns to different replicas).
        public var placeByRing = false

        public init() {}
    }

    public let settings: Settings
    public let leastQueue: LeastQueuePolicy
    public let table: AffinityTable
    public let index: PromptIndex
    public let placements: PlacementCounts

    public init(
        _ settings: Settings = Settings(), leastQueue: LeastQueuePolicy = LeastQueuePolicy(),
        table: AffinityTable = AffinityTable(), index: PromptIndex = PromptIndex(), placements: PlacementCounts = PlacementCounts()
    ) {
        self.settings = settings
        self.placements = placements
        self.leastQueue = leastQueue
        self.table = table
        self.index = index
    }

    public var needsRing: Bool { true }

    public func choose(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> RoutingChoice? {
        guard let key = facts.key, let ring = snapshot.ring, !ring.points.isEmpty else {
            return leastQueue.choose(random: facts.random, in: snapshot, now: now).map { RoutingChoice(replica: $0, reason: .noKey) }
        }
        let prompt = facts.prompt.flatMap { $0.byteCount == 0 ? nil : $0 }
        let conversation = prompt?.anchor ?? HashRing.hash(key)
        let position = conversation
        if prompt != nil { trimIndex(to: snapshot) }

        // The owner: the holders of the prompt's longest match when that is its own
        // conversation's history, else where the conversation (the key, or the prompt's
        // anchor) was placed, here or by another instance. A long match on a prefix another
        // conversation sent first (a shared system prompt, a document others asked about) only
        // makes its holders preferred where a new conversation is placed.
        var owners: [Replica] = []
        var matchHolders: [UInt64] = []
        var prefixHolders: [UInt64] = []
        var matchedBytes = 0
        if let prompt, let match = index.longestMatch(prompt), Double(match.bytes) >= settings.matchThreshold * Double(prompt.byteCount) {
            matchHolders = match.replicas.filter { snapshot.indexByHashKey[$0] != nil }
            if match.anchor == prompt.anchor {
                owners = matchHolders.map { snapshot.replicas[snapshot.indexByHashKey[$0]!] }
            } else {
                prefixHolders = matchHolders
            }
            matchedBytes = match.bytes
        }
        if let remembered = table.lookup(conversation, now: now), let index = snapshot.indexByHashKey[remembered] {
            // Where the conversation lives is the newest word on it: its placement or last move,
            // here or by another instance (whose moves this index has not seen).
            owners = [snapshot.replicas[index]]
        }

        let choice: RoutingChoice
        if let owner = owners.first {
            var best: Replica?
            var bestLoad = Int.max
            for candidate in owners {
                let saturated = isSaturated(candidate, in: snapshot, now: now)
                candidate.saturation.observe(saturated: saturated, at: now, window: settings.moveAfter)
                guard !saturated else { continue }
                let load = candidate.load(at: now, staleAfter: leastQueue.staleAfter)
                if load < bestLoad {
                    best = candidate
                    bestLoad = load
                }
            }
            if let best {
                let uncached = prompt.map { matchHolders.contains(best.hashKey) ? $0.byteCount - matchedBytes : $0.byteCount } ?? 0
                choice = RoutingChoice(replica: best, reason: .cacheAffinity, uncachedBytes: uncached)
            } else {
                let saturatedFor = owner.saturation.observe(saturated: true, at: now, window: settings.moveAfter)
                let moving = !owner.isAvailable(at: now) || saturatedFor >= settings.moveAfter
                guard let other = firstUnsaturated(from: position, ring: ring, snapshot: snapshot, excluding: owners, now: now)
                    ?? leastQueue.choose(random: facts.random, in: snapshot, now: now)
                else { return nil }
                choice = RoutingChoice(replica: other, reason: moving ? .cacheMove : .cacheSpill, uncachedBytes: prompt?.byteCount ?? 0)
            }
        } else {
            let byRing = settings.placeByRing ? firstUnsaturated(from: position, ring: ring, snapshot: snapshot, excluding: [], now: now) : nil
            guard let placed = byRing ?? leastLoaded(from: position, ring: ring, snapshot: snapshot, preferring: prefixHolders, now: now)
                ?? leastQueue.choose(random: facts.random, in: snapshot, now: now)
            else { return nil }
            let uncached = prompt.map { prefixHolders.contains(placed.hashKey) ? $0.byteCount - matchedBytes : $0.byteCount } ?? 0
            choice = RoutingChoice(replica: placed, reason: .cachePlacement, uncachedBytes: uncached)
        }

        switch choice.reason {
        case .cacheSpill:
            break
        case .cachePlacement, .cacheMove:
            // (Placements are rare beside affinity: a good time to forget replicas that left.)
            if prompt == nil { trimIndex(to: snapshot) }
            placements.add(choice.replica.hashKey, now: now)
            remember(prompt, conversation: conversation, on: choice.replica, now: now)
        case .cacheAffinity where prompt == nil:
            break  // (the lookup refreshed it)
        default:
            // Affinity by prompt: its new blocks join the index, old ones stay fresh.
            if let prompt { index.record(prompt, replica: choice.replica.hashKey) }
        }
        return choice
    }

    public func relocated(_ facts: RoutingFacts, to replica: Replica, now: UInt64) {
        guard let conversation = Self.conversation(of: facts) else { return }
        remember(facts.prompt, conversation: conversation, on: replica, now: now)
    }

    /// The conversation a request belongs to, as gateway instances name it to each other: its
    /// prompt's anchor, else its key's hash (nil without a key).
    public static func conversation(of facts: RoutingFacts) -> UInt64? {
        guard let key = facts.key else { return nil }
        if let prompt = facts.prompt, prompt.byteCount > 0 { return prompt.anchor }
        return HashRing.hash(key)
    }

    /// A placement or move another gateway instance made (`routing.shared`): the conversation
    /// follows it here too, and it counts towards the replica's share.
    public func learn(conversation: UInt64, replica: UInt64, now: UInt64) {
        table.record(conversation, replica: replica, now: now)
        placements.add(replica, now: now)
    }

    /// Whether `replica` cannot take more without queueing much (see the type's doc).
    public func isSaturated(_ replica: Replica, in snapshot: PoolSnapshot, now: UInt64) -> Bool {
        guard replica.isAvailable(at: now) else { return true }
        if replica.reportedWaiting(at: now, staleAfter: leastQueue.staleAfter) > settings.maxQueue { return true }
        // One long prompt alone is the prefill its replica has to do anyway: not saturation.
        if replica.pendingPrefillRequests > 1, replica.pendingPrefillBytes > settings.maxPendingPrefillBytes { return true }
        let slots = settings.slots ?? replica.slots
        let bound = slots > 0 ? slots : ConsistentHashPolicy.bound(loadFactor: settings.loadFactor, snapshot: snapshot, now: now)
        return replica.inFlight >= bound + settings.maxQueue
    }

    /// Where a conversation now lives: its key or anchor in the table, its prompt in the index.
    private func remember(_ prompt: PromptChain?, conversation: UInt64, on replica: Replica, now: UInt64) {
        table.record(conversation, replica: replica.hashKey, now: now)
        if let prompt { index.record(prompt, replica: replica.hashKey) }
    }

    /// The first replica from `position` in ring order that is not saturated and not in
    /// `excluded`, among the first `ringCandidates` distinct ones.
    func firstUnsaturated(from position: UInt64, ring: HashRing, snapshot: PoolSnapshot, excluding excluded: [Replica], now: UInt64) -> Replica? {
        var found: Replica?
        ring.walk(from: position, limit: settings.ringCandidates) { index in
            let candidate = snapshot.replicas[index]
            guard excluded.contains(where: { $0 === candidate }) || isSaturated(candidate, in: snapshot, now: now) else {
                found = candidate
                return false
            }
            return true
        }
        return found
    }

    /// Where a new conversation goes: the replica with the least work, counting the
    /// conversations it was given lately (`PlacementCounts`) plus its load now (in flight and
    /// reported waiting), among those not saturated in the first candidates in ring order from
    /// `position` (all of them up to `leastQueue.exactUpTo` replicas, else two). A replica in
    /// `preferred` (it holds a prefix of the prompt) counts a little more than one conversation
    /// less, so it takes up to one more than the others; the earliest in ring order wins the
    /// remaining ties, so an idle fleet places a conversation on its hash home.
    func leastLoaded(from position: UInt64, ring: HashRing, snapshot: PoolSnapshot, preferring preferred: [UInt64] = [], now: UInt64) -> Replica? {
        let wanted = snapshot.replicas.count > leastQueue.exactUpTo ? 2 : snapshot.replicas.count
        var considered = 0
        var best: Replica?
        var bestScore = Double.infinity
        // Past `ringCandidates` distinct replicas (most of them saturated), least-queue decides.
        ring.walk(from: position, limit: max(wanted, settings.ringCandidates)) { index in
            let candidate = snapshot.replicas[index]
            guard !isSaturated(candidate, in: snapshot, now: now) else { return true }
            var score = placements.count(candidate.hashKey, now: now) + Double(candidate.load(at: now, staleAfter: leastQueue.staleAfter))
            if preferred.contains(candidate.hashKey) { score -= 1.25 }
            // Within half a conversation is a tie: the ring decides between equals.
            score = (score * 2).rounded()
            if score < bestScore {
                best = candidate
                bestScore = score
            }
            considered += 1
            return considered < wanted
        }
        return best
    }

    /// Forgets prompts and counts of replicas that left, once per membership change.
    private func trimIndex(to snapshot: PoolSnapshot) {
        index.retain(generation: snapshot.generation) {
            let members = Set(snapshot.replicas.map(\.hashKey))
            placements.retain(members)
            return members
        }
    }
}
