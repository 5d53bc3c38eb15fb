import Testing
@testable import SluiceCore

/// `CacheAwarePolicy`: every branch on a manual clock, saturation, hysteresis, prompts, the
/// failure cases of issue 15, and gateway instances that agree without talking.
@Suite struct CacheAwarePolicyTests {
    static let second: UInt64 = 1_000_000_000

    static func pool(_ count: Int, order: [Int]? = nil) -> PoolSnapshot {
        let ids = HashRingTests.ids(count)
        let load = PoolLoad()
        return PoolSnapshot(replicas: (order ?? Array(0..<count)).map { Replica(id: ids[$0], poolLoad: load) }, withRing: true, poolLoad: load)
    }

    static func home(of key: String, in snapshot: PoolSnapshot) -> Replica {
        snapshot.replicas[snapshot.ring!.owner(of: key)!]
    }

    /// The replicas in `key`'s ring order (distinct).
    static func ringOrder(_ position: UInt64, in snapshot: PoolSnapshot) -> [Replica] {
        let ring = snapshot.ring!
        var order: [Replica] = []
        var index = ring.firstPoint(atOrAfter: position)
        while order.count < snapshot.replicas.count {
            let replica = snapshot.replicas[ring.points[index].replica]
            if !order.contains(where: { $0 === replica }) { order.append(replica) }
            index = (index + 1) % ring.points.count
        }
        return order
    }

    @Test func eachBranchExactlyWhenDocumented() {
        let snapshot = Self.pool(4)
        let policy = CacheAwarePolicy()
        let key = "session-a"
        let order = Self.ringOrder(HashRing.hash(key), in: snapshot)
        let session = RoutingFacts(key: key)
        // First sight: its hash home. Then it stays.
        let placed = policy.choose(session, in: snapshot, now: 1)!
        #expect(placed.reason == .cachePlacement && placed.replica === order[0])
        #expect(policy.choose(session, in: snapshot, now: 2)?.reason == .cacheAffinity)
        // Its replica reports more waiting than max_queue (8): this request spills to the next
        // replica in ring order, and the session stays.
        order[0].recordReportedQueue(waiting: 9, at: 10)
        let spilled = policy.choose(session, in: snapshot, now: 10)!
        #expect(spilled.reason == .cacheSpill && spilled.replica === order[1])
        order[0].recordReportedQueue(waiting: 8, at: 20)  // at max_queue exactly: not saturated
        let back = policy.choose(session, in: snapshot, now: 20)!
        #expect(back.reason == .cacheAffinity && back.replica === order[0])
        // Saturated without a break for move_after (2 s): the session moves, and follows.
        order[0].recordReportedQueue(waiting: 20, at: 30)
        #expect(policy.choose(session, in: snapshot, now: 30)?.reason == .cacheSpill)
        order[0].recordReportedQueue(waiting: 20, at: 30 + Self.second)
        #expect(policy.choose(session, in: snapshot, now: 30 + Self.second)?.reason == .cacheSpill)
        order[0].recordReportedQueue(waiting: 20, at: 30 + 2 * Self.second)
        let moved = policy.choose(session, in: snapshot, now: 30 + 2 * Self.second)!
        #expect(moved.reason == .cacheMove && moved.replica === order[1])
        order[0].recordReportedQueue(waiting: 0, at: 40 + 2 * Self.second)
        let followed = policy.choose(session, in: snapshot, now: 40 + 2 * Self.second)!
        #expect(followed.reason == .cacheAffinity && followed.replica === order[1])
        // Its new replica leaves rotation: it moves at once.
        order[1].setDraining(true)
        let drained = policy.choose(session, in: snapshot, now: 50 + 2 * Self.second)!
        #expect(drained.reason == .cacheMove && drained.replica !== order[1])
        #expect(policy.choose(RoutingFacts(), in: snapshot, now: 60)?.reason == .noKey)
    }

    @Test func aBreakInSaturationRestartsTheCount() {
        let snapshot = Self.pool(3)
        let policy = CacheAwarePolicy()
        let session = RoutingFacts(key: "s")
        let owner = policy.choose(session, in: snapshot, now: 1)!.replica
        // Saturated at 0 s and 1.5 s, free at 1 s: 0.5 s of saturation at 1.5 s, not 1.5 s.
        owner.recordReportedQueue(waiting: 50, at: 1)
        #expect(policy.choose(session, in: snapshot, now: 1)?.reason == .cacheSpill)
        owner.recordReportedQueue(waiting: 0, at: Self.second)
        #expect(policy.choose(session, in: snapshot, now: Self.second)?.reason == .cacheAffinity)
        owner.recordReportedQueue(waiting: 50, at: 3 * Self.second / 2)
        #expect(policy.choose(session, in: snapshot, now: 3 * Self.second / 2)?.reason == .cacheSpill)
        #expect(policy.choose(session, in: snapshot, now: 3 * Self.second)?.reason == .cacheSpill)
        #expect(policy.choose(session, in: snapshot, now: 7 * Self.second / 2)?.reason == .cacheMove)
        // Observations further apart than move_after do not add up either.
        let tracker = SaturationTracker()
        #expect(tracker.observe(saturated: true, at: 10, window: 100) == 0)
        #expect(tracker.observe(saturated: true, at: 90, window: 100) == 80)
        #expect(tracker.observe(saturated: true, at: 500, window: 100) == 0)
        #expect(tracker.observe(saturated: false, at: 510, window: 100) == 0 && tracker.saturatedSince == 0)
    }

    @Test func saturationComesFromQueueSlotsAndPendingPrefill() {
        let snapshot = Self.pool(4)
        var settings = CacheAwarePolicy.Settings()
        settings.maxQueue = 2
        settings.maxPendingPrefillBytes = 1_000
        let policy = CacheAwarePolicy(settings)
        let replica = snapshot.replicas[0]
        #expect(!policy.isSaturated(replica, in: snapshot, now: 1))
        // No slots known: the bounded-load cap plus max_queue. 3 in flight: ceil(1.25 × 4 / 4)
        // + 2 = 4, not saturated; 4 in flight: ceil(1.25 × 5 / 4) + 2 = 4, saturated.
        for _ in 0..<3 { replica.requestStarted() }
        #expect(!policy.isSaturated(replica, in: snapshot, now: 1))
        replica.requestStarted()
        #expect(policy.isSaturated(replica, in: snapshot, now: 1))
        replica.requestFinished()
        // Slots learnt from reports: in flight ≥ slots + max_queue saturates.
        replica.recordReportedRunning(4, waiting: 0)
        #expect(replica.slots == 4)
        #expect(!policy.isSaturated(replica, in: snapshot, now: 1))  // 3 < 4 + 2
        for _ in 0..<3 { replica.requestStarted() }
        #expect(policy.isSaturated(replica, in: snapshot, now: 1))  // 6 ≥ 6
        for _ in 0..<6 { replica.requestFinished() }
        // Uncached prompt bytes in flight past the budget, from more than one request: one long
        // prompt alone does not saturate.
        replica.addPendingPrefill(1_001)
        #expect(!policy.isSaturated(replica, in: snapshot, now: 1))
        replica.addPendingPrefill(10)
        #expect(policy.isSaturated(replica, in: snapshot, now: 1))
        replica.addPendingPrefill(-1_001)
        replica.addPendingPrefill(-10)
        #expect(!policy.isSaturated(replica, in: snapshot, now: 1) && replica.pendingPrefillRequests == 0)
        // A reported queue past max_queue, while fresh.
        replica.recordReportedQueue(waiting: 3, at: 1)
        #expect(policy.isSaturated(replica, in: snapshot, now: 2))
        #expect(!policy.isSaturated(replica, in: snapshot, now: 10 * Self.second))
    }

    @Test func slotsAreLearntFromTheReplicasReports() {
        let replica = Replica(id: ReplicaID(host: "10.0.0.9", port: 1))
        #expect(replica.slots == 0)
        replica.recordReportedRunning(5, waiting: 0)
        #expect(replica.slots == 5)
        replica.recordReportedRunning(3, waiting: 0)  // a lower bound: kept
        #expect(replica.slots == 5)
        replica.recordReportedRunning(8, waiting: 0)
        #expect(replica.slots == 8)
        replica.recordReportedRunning(6, waiting: 2)  // requests wait: 6 is the limit
        #expect(replica.slots == 6)
    }

    @Test func aHeaderKeysPickStaysOnItsReplicaUnderOrdinaryBunching() {
        // 8 slots per replica (learnt), a few more in flight on the owner than the mean: the
        // bounded-load rule (1.25) moved sessions here; saturation does not.
        let snapshot = Self.pool(4)
        let policy = CacheAwarePolicy()
        for replica in snapshot.replicas { replica.recordReportedRunning(8, waiting: 0) }
        let session = RoutingFacts(key: "s-1")
        let owner = policy.choose(session, in: snapshot, now: 1)!.replica
        for _ in 0..<6 { owner.requestStarted() }
        snapshot.replicas.first { $0 !== owner }!.requestStarted()
        #expect(ConsistentHashPolicy.bound(loadFactor: 1.25, snapshot: snapshot, now: 1) < owner.inFlight)
        #expect(policy.choose(session, in: snapshot, now: 2)?.reason == .cacheAffinity)
    }

    // MARK: Prompts

    static let system = String(repeating: "You answer questions about returns. ", count: 2)  // 72 bytes
    static func document(_ n: Int) -> String {
        String(repeating: "document \(n) says this and that about the order. ", count: 80)  // ~4 KB
    }

    /// A chat prompt as the gateway reads it: system, document, then the turns; anchored
    /// through the document (the first user message).
    static func prompt(_ conversation: Int, turns: Int, system: String = system, document: String? = nil) -> PromptChain {
        let document = document ?? Self.document(conversation)
        var text = system + "\n" + document
        let opening = text.utf8.count
        for turn in 0..<turns { text += "\nquestion \(turn) of \(conversation)?\nanswer \(turn) of \(conversation)." }
        return PromptChain(text, anchorLength: opening)
    }

    static func facts(_ prompt: PromptChain) -> RoutingFacts {
        RoutingFacts(key: "p:" + String(prompt.anchor, radix: 16), prompt: prompt)
    }

    @Test func aConversationIsFollowedByItsPromptAndANewOneIsPlacedEvenly() {
        let snapshot = Self.pool(4)
        let policy = CacheAwarePolicy()
        var placedOn: [ReplicaID: Int] = [:]
        for conversation in 0..<16 {
            let first = Self.prompt(conversation, turns: 0)
            let placed = policy.choose(Self.facts(first), in: snapshot, now: 1)!
            // New (its system prompt is shared, but a small part of it): placed on the replica
            // given the fewest conversations, the first in its anchor's ring order among equals.
            #expect(placed.reason == .cachePlacement)
            if conversation == 0 { #expect(placed.replica === Self.ringOrder(first.anchor, in: snapshot)[0]) }
            #expect(placed.uncachedBytes == first.byteCount)
            placedOn[placed.replica.id, default: 0] += 1
            for turn in 1...5 {
                let next = policy.choose(Self.facts(Self.prompt(conversation, turns: turn)), in: snapshot, now: 2)!
                #expect(next.reason == .cacheAffinity && next.replica === placed.replica)
                #expect(next.uncachedBytes < 200)
            }
            // Started over on the same document: its cache is there, it goes there.
            let again = policy.choose(Self.facts(Self.prompt(conversation, turns: 0)), in: snapshot, now: 3)!
            #expect(again.reason == .cacheAffinity && again.replica === placed.replica)
        }
        #expect(placedOn.values.sorted() == [4, 4, 4, 4])
    }

    @Test func placementCountsDecayByHalfEachHalfLife() {
        let counts = PlacementCounts(halfLife: 1_000)
        counts.add(7, now: 0)
        counts.add(7, now: 0)
        #expect(counts.count(7, now: 0) == 2)
        #expect(abs(counts.count(7, now: 1_000) - 1) < 1e-3)
        #expect(abs(counts.count(7, now: 2_500) - 2 * 0.176_776_7) < 1e-3)
        #expect(counts.count(8, now: 5) == 0)
        for x in stride(from: 0.0, through: 12, by: 0.37) {
            let exact = 1 / Double(1 << Int(x)) / Self.twoToThe(x - Double(Int(x)))
            #expect(abs(PlacementCounts.halving(x) - exact) <= 3e-5 * exact)
        }
    }

    /// 2^f for f in [0, 1) by bisection on squares (no Foundation in this target's tests either).
    static func twoToThe(_ f: Double) -> Double {
        var result = 1.0
        var root = 2.0
        var rest = f
        for _ in 0..<40 {
            root = root.squareRoot()
            rest *= 2
            if rest >= 1 {
                result *= root
                rest -= 1
            }
        }
        return result
    }

    @Test func aPromptDifferingOnlyAfterALongSharedPartFollowsIt() {
        let snapshot = Self.pool(4)
        let policy = CacheAwarePolicy()
        let shared = Self.document(1)
        func chain(_ text: String, opening: String) -> PromptChain { PromptChain(text, anchorLength: opening.utf8.count) }
        // The document opens the conversation; its questions come after: one conversation.
        let first = policy.choose(Self.facts(chain(shared + " first question", opening: shared)), in: snapshot, now: 1)!
        let second = policy.choose(Self.facts(chain(shared + " a different question", opening: shared)), in: snapshot, now: 2)!
        #expect(second.reason == .cacheAffinity && second.replica === first.replica && second.uncachedBytes < 128)
        // The question is part of the opening (another conversation over the same document):
        // new, but the replica holding the document is preferred among equals.
        let other = shared + " yet another question"
        let third = policy.choose(Self.facts(chain(other, opening: other)), in: snapshot, now: 3)!
        #expect(third.reason == .cachePlacement && third.replica === first.replica && third.uncachedBytes < 128)
        // Sharing less than match_threshold of the prompt: new, placed where there is least work.
        let short = String(shared.prefix(600)) + String(repeating: " something else entirely", count: 60)
        let fourth = policy.choose(Self.facts(chain(short, opening: short)), in: snapshot, now: 4)!
        #expect(fourth.reason == .cachePlacement && fourth.replica !== first.replica && fourth.uncachedBytes == PromptChain(short).byteCount)
    }

    @Test func newConversationsOverAHotSharedPromptSpreadAndEachStaysWhereItStarted() {
        // One tenant, one 20 KB system prompt, short first questions, no session id: each
        // question opens a conversation of its own.
        let snapshot = Self.pool(4)
        let policy = CacheAwarePolicy()
        let huge = String(repeating: "The policy manual, section after section. ", count: 480)
        func opening(_ n: Int) -> String { huge + "\nuser \(n): where is my parcel?" }
        func turn(_ n: Int, _ turns: Int) -> PromptChain {
            var text = opening(n)
            for t in 0..<turns { text += "\nanswer \(t).\nand then \(t)?" }
            return PromptChain(text, anchorLength: opening(n).utf8.count)
        }
        var placed: [Replica] = []
        for n in 0..<12 {
            let choice = policy.choose(Self.facts(turn(n, 0)), in: snapshot, now: 1)!
            #expect(choice.reason == .cachePlacement)
            // The shared prompt is the first one's: it is not this conversation's owner, but its
            // holders are preferred where they have at most one conversation more; all of it is
            // cached there but the last block (at 20 KB deep, 1 KiB).
            if n == 1 { #expect(choice.replica === placed[0] && choice.uncachedBytes < 1_024 + 40) }
            placed.append(choice.replica)
        }
        let perReplica = Dictionary(grouping: placed, by: \.id).mapValues(\.count)
        #expect(perReplica.count == 4 && perReplica.values.allSatisfy { (2...4).contains($0) })
        // Each conversation's later turns stay where it started.
        for n in 0..<12 {
            let next = policy.choose(Self.facts(turn(n, 2)), in: snapshot, now: 2)!
            #expect(next.reason == .cacheAffinity && next.replica === placed[n])
        }
    }

    // MARK: Failures and membership

    /// `count` sessions placed at time 1, and where each went.
    static func place(_ count: Int, with policy: CacheAwarePolicy, in snapshot: PoolSnapshot) -> ([String], [String: Replica]) {
        let keys = (0..<count).map { "user-\($0)" }
        var home: [String: Replica] = [:]
        for key in keys { home[key] = policy.choose(RoutingFacts(key: key), in: snapshot, now: 1)!.replica }
        return (keys, home)
    }

    @Test func aSlowReplicasSessionsLeaveItOnceItStaysSaturated() {
        let snapshot = Self.pool(4)
        let policy = CacheAwarePolicy()
        let (keys, home) = Self.place(200, with: policy, in: snapshot)
        let slow = snapshot.replicas[2]
        let onSlow = keys.filter { home[$0] === slow }
        #expect(onSlow.count > 20)
        // The slow replica's queue grows and stays long: spills first, then moves, then follow.
        var now: UInt64 = 2
        for step in 0...4 {
            now = 2 + UInt64(step) * Self.second / 2
            slow.recordReportedQueue(waiting: 30, at: now)
            for key in onSlow {
                let choice = policy.choose(RoutingFacts(key: key), in: snapshot, now: now)!
                #expect(choice.replica !== slow)
                #expect(choice.reason == (step < 4 ? .cacheSpill : .cacheMove))
            }
        }
        // Recovered, it keeps none of them (they follow their new caches), and others stay home.
        slow.recordReportedQueue(waiting: 0, at: now + 1)
        for key in keys {
            let choice = policy.choose(RoutingFacts(key: key), in: snapshot, now: now + 1)!
            #expect(choice.reason == .cacheAffinity)
            #expect(onSlow.contains(key) ? choice.replica !== slow : choice.replica === home[key])
        }
    }

    @Test func aKilledReplicasSessionsMoveOnceAndStay() {
        let snapshot = Self.pool(4)
        let policy = CacheAwarePolicy()
        let (keys, home) = Self.place(200, with: policy, in: snapshot)
        let killed = snapshot.replicas[1]
        killed.recordFailure(at: 10, policy: EjectionPolicy(consecutiveFailures: 1, duration: 5 * Self.second))
        var moved: [String: Replica] = [:]
        for key in keys where home[key] === killed {
            let choice = policy.choose(RoutingFacts(key: key), in: snapshot, now: 11)!
            #expect(choice.reason == .cacheMove && choice.replica !== killed)
            moved[key] = choice.replica
        }
        #expect(!moved.isEmpty)
        // Its ejection over (restarted, cold), its old sessions stay where they moved.
        let after = 10 + 6 * Self.second
        for key in keys {
            let choice = policy.choose(RoutingFacts(key: key), in: snapshot, now: after)!
            #expect(choice.reason == .cacheAffinity)
            #expect(choice.replica === (moved[key] ?? home[key]))
        }
    }

    @Test func anAddedReplicaTakesNewSessionsAndOldOnesStay() {
        let four = Self.pool(4)
        let policy = CacheAwarePolicy()
        let old = (0..<400).map { "old-\($0)" }
        var home: [String: Replica] = [:]
        for key in old { home[key] = policy.choose(RoutingFacts(key: key), in: four, now: 1)!.replica }
        let added = Replica(id: ReplicaID(host: "10.0.0.5", port: 8000))
        let five = PoolSnapshot(replicas: four.replicas + [added], generation: 2, withRing: true)
        for key in old { #expect(policy.choose(RoutingFacts(key: key), in: five, now: 2)?.replica === home[key]) }
        // New sessions go to the replica given the fewest: the new one first, until it has as
        // many as the others (100 each), then a fifth of the rest.
        let new = (0..<400).map { "new-\($0)" }
        let onAdded = new.filter { policy.choose(RoutingFacts(key: $0), in: five, now: 3)?.replica === added }.count
        #expect(onAdded == 160)
    }

    @Test func instancesPlacingByTheRingAgreeWithoutHearingEachOther() {
        // `placement: ring`: four instances that share nothing, replicas in different orders,
        // each turn to any of them; one replica reports a long queue to everyone.
        let orders = [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]]
        let snapshots = orders.map { Self.pool(4, order: $0) }
        var settings = CacheAwarePolicy.Settings()
        settings.placeByRing = true
        let instances = orders.map { _ in CacheAwarePolicy(settings) }
        for snapshot in snapshots { snapshot.replicas.first { $0.id == HashRingTests.ids(4)[2] }!.recordReportedQueue(waiting: 12, at: 1) }
        var generator = SplitMix64(seed: 4)
        var counted: [Bool] = []
        for conversation in 0..<64 {
            var byPrompt: Set<ReplicaID> = []
            var byHeader: Set<ReplicaID> = []
            for turn in 0..<6 {
                let instance = Int(generator.next() % 4)
                byPrompt.insert(instances[instance].choose(Self.facts(Self.prompt(conversation, turns: turn)), in: snapshots[instance], now: 2)!.replica.id)
                byHeader.insert(instances[instance].choose(RoutingFacts(key: "session-\(conversation)"), in: snapshots[instance], now: 2)!.replica.id)
            }
            counted.append(byPrompt.count == 1 && byHeader.count == 1 && !byHeader.contains(HashRingTests.ids(4)[2]))
        }
        #expect(counted.allSatisfy { $0 })
        // Balanced placement (the default) without hearing each other disagrees: what
        // `routing.shared` is for.
        let apart = orders.map { _ in CacheAwarePolicy() }
        var disagreed = 0
        for conversation in 0..<64 {
            var seen: Set<ReplicaID> = []
            for turn in 0..<6 {
                let instance = Int(generator.next() % 4)
                seen.insert(apart[instance].choose(RoutingFacts(key: "s-\(conversation)"), in: snapshots[instance], now: 3)!.replica.id)
                _ = turn
            }
            if seen.count > 1 { disagreed += 1 }
        }
        #expect(disagreed > 10)
    }

    @Test func aMoveHeardFromAnotherInstanceWinsOverTheLocalIndex() {
        let snapshot = Self.pool(4)
        let here = CacheAwarePolicy()
        let prompt = Self.prompt(3, turns: 1)
        let placed = here.choose(Self.facts(prompt), in: snapshot, now: 1)!.replica
        // Another instance moved the conversation (its replica stayed saturated there): this
        // one's index still says `placed`, but the move it heard is newer.
        let elsewhere = snapshot.replicas.first { $0 !== placed }!
        here.learn(conversation: prompt.anchor, replica: elsewhere.hashKey, now: 2)
        let next = here.choose(Self.facts(Self.prompt(3, turns: 2)), in: snapshot, now: 3)!
        #expect(next.reason == .cacheAffinity && next.replica === elsewhere)
    }

    @Test func instancesThatHearEachOthersPlacementsAgree() {
        // Four gateway instances, replicas listed in different orders, telling each other their
        // placements (what `routing.shared` carries); each turn of each conversation goes to
        // any instance. Same replica every time, with and without a header.
        let orders = [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]]
        let snapshots = orders.map { Self.pool(4, order: $0) }
        let instances = orders.map { _ in CacheAwarePolicy() }
        // One replica reports a long queue to everyone: they spill alike.
        for snapshot in snapshots { snapshot.replicas.first { $0.id == HashRingTests.ids(4)[2] }!.recordReportedQueue(waiting: 12, at: 1) }
        var generator = SplitMix64(seed: 3)
        for conversation in 0..<64 {
            var seen: Set<ReplicaID> = []
            var seenByHeader: Set<ReplicaID> = []
            for turn in 0..<6 {
                let instance = Int(generator.next() % 4)
                let prompt = Self.prompt(conversation, turns: turn)
                let byPrompt = instances[instance].choose(Self.facts(prompt), in: snapshots[instance], now: 2)!
                let byHeader = instances[instance].choose(RoutingFacts(key: "session-\(conversation)"), in: snapshots[instance], now: 2)!
                for (facts, choice) in [(Self.facts(prompt), byPrompt), (RoutingFacts(key: "session-\(conversation)"), byHeader)]
                where choice.reason == .cachePlacement || choice.reason == .cacheMove {
                    for other in instances.indices where other != instance {
                        instances[other].learn(conversation: CacheAwarePolicy.conversation(of: facts)!, replica: choice.replica.hashKey, now: 2)
                    }
                }
                seen.insert(byPrompt.replica.id)
                seenByHeader.insert(byHeader.replica.id)
                #expect(byPrompt.replica.id != HashRingTests.ids(4)[2] && byHeader.replica.id != HashRingTests.ids(4)[2])
            }
            #expect(seen.count == 1, "conversation \(conversation) went to \(seen)")
            #expect(seenByHeader.count == 1, "session \(conversation) went to \(seenByHeader)")
        }
    }
}
