import Testing
@testable import SluiceCore

@Suite struct HashRingTests {
    static func ids(_ count: Int, port: Int = 8000) -> [ReplicaID] {
        (1...count).map { ReplicaID(host: "10.0.0.\($0)", port: port) }
    }

    static func owners(_ ring: HashRing, _ ids: [ReplicaID], keys: Int) -> [ReplicaID] {
        (0..<keys).map { ids[ring.owner(of: "key-\($0)")!] }
    }

    @Test func goldenOwnersArePinned() {
        // Pinned values: a change to the hash or the point layout would move every key in every
        // deployment at upgrade, and must be a deliberate one.
        let ids = Self.ids(3)
        let ring = HashRing(replicas: ids)
        #expect(ring.points.count == 480)
        #expect(HashRing.hash("session-1") == 10_348_509_449_063_778_181)
        #expect(ring.points.prefix(3).map(\.position) == [26_599_926_283_355_418, 86_587_262_435_766_090, 89_379_252_898_623_489])
        #expect(ring.points.prefix(3).map { ids[$0.replica].description } == ["10.0.0.3:8000", "10.0.0.2:8000", "10.0.0.3:8000"])
        let owners = (1...6).map { ids[ring.owner(of: "session-\($0)")!].description }
        #expect(owners == ["10.0.0.2:8000", "10.0.0.2:8000", "10.0.0.1:8000", "10.0.0.3:8000", "10.0.0.3:8000", "10.0.0.3:8000"])
    }

    @Test func theMappingDependsOnlyOnMembership() {
        let ids = Self.ids(7)
        let reference = Self.owners(HashRing(replicas: ids), ids, keys: 10_000)
        var generator = SplitMix64(seed: 3)
        for _ in 0..<3 {
            let shuffled = ids.shuffled(using: &generator)
            #expect(Self.owners(HashRing(replicas: shuffled), shuffled, keys: 10_000) == reference)
        }
    }

    @Test func addingOrRemovingOneReplicaMovesAboutOneNth() {
        let keys = 100_000
        let ten = Self.ids(10)
        let before = Self.owners(HashRing(replicas: ten), ten, keys: keys)
        let eleven = Self.ids(11)
        let added = Self.owners(HashRing(replicas: eleven), eleven, keys: keys)
        let moved = zip(before, added).filter { $0 != $1 }
        #expect(Double(moved.count) / Double(keys) <= 1.0 / 11 * 1.1, "\(moved.count) moved")
        // Keys only move to the new replica.
        #expect(moved.allSatisfy { $0.1 == eleven[10] })
        let nine = Array(ten.dropFirst())
        let removed = Self.owners(HashRing(replicas: nine), nine, keys: keys)
        let movedOnRemoval = zip(before, removed).filter { $0 != $1 }
        #expect(Double(movedOnRemoval.count) / Double(keys) <= 1.0 / 10 * 1.1)
        #expect(movedOnRemoval.allSatisfy { $0.0 == ten[0] })
    }

    @Test func sharesFollowTheRingsArcs() {
        let ids = Self.ids(5)
        let ring = HashRing(replicas: ids)
        // The share each replica should get: the arcs its points close.
        var arcs = [Double](repeating: 0, count: 5)
        for (index, point) in ring.points.enumerated() {
            let previous = index == 0 ? ring.points.last!.position : ring.points[index - 1].position
            arcs[point.replica] += Double(point.position &- previous) / Double(UInt64.max)
        }
        var counts = [Int](repeating: 0, count: 5)
        var generator = SplitMix64(seed: 9)
        for _ in 0..<100_000 { counts[ring.owner(of: "k\(generator.next())")!] += 1 }
        for index in 0..<5 {
            #expect(abs(Double(counts[index]) / 100_000 - arcs[index]) < 0.01, "replica \(index)")
        }
    }
}

@Suite struct RoutingPolicyTests {
    static func pool(_ count: Int, ring: Bool = false, counted: Bool = false) -> PoolSnapshot {
        let load = counted ? PoolLoad() : nil
        return PoolSnapshot(replicas: HashRingTests.ids(count).map { Replica(id: $0, poolLoad: load) }, withRing: ring, poolLoad: load)
    }

    @Test func randomAndRoundRobinShareEvenly() {
        let snapshot = Self.pool(4)
        var counts: [ReplicaID: Int] = [:]
        var generator = SplitMix64(seed: 1)
        for _ in 0..<100_000 {
            counts[RandomPolicy().pick(RoutingFacts(random: generator.next()), in: snapshot, now: 1)!.id, default: 0] += 1
        }
        #expect(counts.values.allSatisfy { abs(Double($0) / 100_000 - 0.25) < 0.01 })
    }

    @Test func leastQueueCountsInFlightPlusTheReportedQueueAndAgesReportsOut() {
        let snapshot = Self.pool(3)
        let (a, b, c) = (snapshot.replicas[0], snapshot.replicas[1], snapshot.replicas[2])
        a.requestStarted(); a.requestStarted()
        b.requestStarted()
        c.recordReportedQueue(waiting: 5, at: 1_000)
        let policy = LeastQueuePolicy(exactUpTo: 16, staleAfter: 10_000)
        for random in 0..<10 as Range<UInt64> {
            #expect(policy.pick(RoutingFacts(random: random), in: snapshot, now: 2_000) === b)  // 2, 1, 5
        }
        // The report is stale later: c counts as empty.
        #expect(policy.pick(RoutingFacts(random: 0), in: snapshot, now: 20_000) === c)
        #expect(c.load(at: 20_000, staleAfter: 10_000) == 0 && c.load(at: 2_000, staleAfter: 10_000) == 5)
    }

    @Test func tiesDoNotHerd() {
        let snapshot = Self.pool(4)
        var counts: [ReplicaID: Int] = [:]
        var generator = SplitMix64(seed: 4)
        for _ in 0..<100_000 {
            counts[LeastQueuePolicy().pick(RoutingFacts(random: generator.next()), in: snapshot, now: 1)!.id, default: 0] += 1
        }
        #expect(counts.count == 4 && counts.values.allSatisfy { abs(Double($0) / 100_000 - 0.25) < 0.01 })
    }

    @Test func powerOfTwoChoicesPicksTwoDistinctReplicas() {
        var generator = SplitMix64(seed: 5)
        for count in [2, 3, 17, 1024] {
            for _ in 0..<100_000 {
                let (first, second) = LeastQueuePolicy.twoChoices(random: generator.next(), count: count)
                #expect(first != second && (0..<count).contains(first) && (0..<count).contains(second))
            }
        }
        // Above the exact threshold the less loaded of the two wins.
        let snapshot = Self.pool(32)
        for replica in snapshot.replicas.dropFirst() { replica.requestStarted() }
        let policy = LeastQueuePolicy(exactUpTo: 4)
        var wins = 0
        for random in 0..<UInt64(10_000) {
            let (first, second) = LeastQueuePolicy.twoChoices(random: random &* 0x9E37_79B9_7F4A_7C15, count: 32)
            let picked = policy.pick(RoutingFacts(random: random &* 0x9E37_79B9_7F4A_7C15), in: snapshot, now: 1)!
            if first == 0 || second == 0 { #expect(picked === snapshot.replicas[0]); wins += 1 }
        }
        #expect(wins > 0)
    }

    @Test(arguments: [false, true])
    func theBoundIsNeverExceededUnderRandomArrivalsAndDepartures(counted: Bool) {
        // (`counted`: the pool keeps its in-flight total, as the gateway's pools do.)
        let snapshot = Self.pool(8, ring: true, counted: counted)
        let policy = ConsistentHashPolicy(loadFactor: 1.25)
        var generator = SplitMix64(seed: 11)
        var active: [Replica] = []
        var overflowed = 0
        for _ in 0..<50_000 {
            if !active.isEmpty, generator.next() % 100 < 45 {
                let index = Int(generator.next() % UInt64(active.count))
                active.remove(at: index).requestFinished()
                continue
            }
            // Skewed keys: a few hot sessions, many cold ones.
            let key = generator.next() % 4 == 0 ? "hot-\(generator.next() % 3)" : "cold-\(generator.next() % 5000)"
            let cap = ConsistentHashPolicy.bound(loadFactor: 1.25, snapshot: snapshot, now: 1)
            let choice = policy.choose(RoutingFacts(key: key), in: snapshot, now: 1)!
            #expect(choice.replica.inFlight < cap)
            if choice.reason == .hashOverflow { overflowed += 1 }
            choice.replica.requestStarted()
            active.append(choice.replica)
        }
        #expect(overflowed > 0)  // the hot keys did hit the bound
        #expect(snapshot.replicas.map(\.inFlight).reduce(0, +) == active.count)
        if let load = snapshot.poolLoad { #expect(load.inFlight == active.count) }
    }

    @Test func aKeyStaysOnItsReplicaUntilThatReplicaIsFull() {
        let snapshot = Self.pool(4, ring: true)
        let policy = ConsistentHashPolicy(loadFactor: 1.25)
        let home = policy.choose(RoutingFacts(key: "s1"), in: snapshot, now: 1)!
        #expect(home.reason == .hash)
        home.replica.requestStarted()
        home.replica.requestStarted()
        // 2 in flight, cap ceil(1.25 × 3 / 4) = 1: full, the next replica in s1's order.
        let moved = policy.choose(RoutingFacts(key: "s1"), in: snapshot, now: 1)!
        #expect(moved.reason == .hashOverflow && moved.replica !== home.replica)
        #expect(policy.choose(RoutingFacts(key: nil, random: 1), in: snapshot, now: 1)?.reason == .noKey)
    }

    @Test func aStaleAvailabilityCountNeverMeansNoReplica() {
        // Two replicas, the counted pool believes both available; then one is ejected within
        // the millisecond the count is cached. The walk finds every replica full or out; the
        // policy falls back to least-queue instead of answering nothing.
        let snapshot = Self.pool(2, ring: true, counted: true)
        let (a, b) = (snapshot.replicas[0], snapshot.replicas[1])
        _ = snapshot.loadAndAvailability(at: 1_000)
        for _ in 0..<3 { a.requestStarted() }
        b.recordFailure(at: 1_000, policy: EjectionPolicy(consecutiveFailures: 1, duration: 10_000_000))
        let choice = ConsistentHashPolicy(loadFactor: 1.25).choose(RoutingFacts(key: "k", random: 3), in: snapshot, now: 1_100)
        #expect(choice?.replica === a)
        #expect(choice?.reason == .hashOverflow)
    }

    @Test func aReportNewerThanThePickIsFresh() {
        let replica = Replica(id: ReplicaID(host: "10.0.0.1", port: 1))
        replica.recordReportedQueue(waiting: 5, at: 2_000)
        #expect(replica.reportedWaiting(at: 1_000, staleAfter: 100) == 5)
        #expect(replica.reportedWaiting(at: 2_050, staleAfter: 100) == 5)
        #expect(replica.reportedWaiting(at: 2_200, staleAfter: 100) == 0)
    }

    @Test func cacheAwareTakesEachBranchExactlyWhenDocumented() {
        let snapshot = Self.pool(4, ring: true)
        let policy = CacheAwarePolicy(loadFactor: 1.25, maxQueue: 3, leastQueue: LeastQueuePolicy(staleAfter: 1_000_000))
        let home = snapshot.replicas[snapshot.ring!.owner(of: "session-a")!]
        // First sight on an idle fleet: placed on its hash home (every load ties).
        let placed = policy.choose(RoutingFacts(key: "session-a"), in: snapshot, now: 10)!
        #expect(placed.reason == .cachePlacement && placed.replica === home)
        #expect(policy.choose(RoutingFacts(key: "session-a"), in: snapshot, now: 10)?.reason == .cacheAffinity)
        // Its queue past max_queue: least-queue, away from it, and the key follows the move.
        home.recordReportedQueue(waiting: 4, at: 10)
        let queued = policy.choose(RoutingFacts(key: "session-a"), in: snapshot, now: 20)!
        #expect(queued.reason == .cacheOverflowQueue && queued.replica !== home)
        let followed = policy.choose(RoutingFacts(key: "session-a"), in: snapshot, now: 21)!
        #expect(followed.reason == .cacheAffinity && followed.replica === queued.replica)
        // At max_queue exactly: still affinity.
        queued.replica.recordReportedQueue(waiting: 3, at: 30)
        #expect(policy.choose(RoutingFacts(key: "session-a"), in: snapshot, now: 40)?.reason == .cacheAffinity)
        // Past the load bound (2 in flight, cap ceil(1.25 × 3 / 4) = 1): least-queue.
        queued.replica.requestStarted(); queued.replica.requestStarted()
        let loaded = policy.choose(RoutingFacts(key: "session-a"), in: snapshot, now: 40)!
        #expect(loaded.reason == .cacheOverflowLoad && loaded.replica !== queued.replica)
        #expect(policy.choose(RoutingFacts(), in: snapshot, now: 40)?.reason == .noKey)
        // Unavailable owner: least-queue too.
        queued.replica.requestFinished(); queued.replica.requestFinished()
        loaded.replica.setDraining(true)
        let drained = policy.choose(RoutingFacts(key: "session-a"), in: snapshot, now: 40)!
        #expect(drained.reason == .cacheOverflowLoad && drained.replica !== loaded.replica)
    }

    @Test func cacheAwarePlacesNewKeysOnTheLeastLoadedReplica() {
        let snapshot = Self.pool(4, ring: true)
        let policy = CacheAwarePolicy(loadFactor: 1.25, maxQueue: 8)
        let home = snapshot.replicas[snapshot.ring!.owner(of: "new-session")!]
        for replica in snapshot.replicas where replica !== home { replica.requestStarted() }
        home.requestStarted(); home.requestStarted()
        let quiet = snapshot.replicas.first { $0 !== home }!
        quiet.requestFinished()
        let placed = policy.choose(RoutingFacts(key: "new-session"), in: snapshot, now: 5)!
        #expect(placed.reason == .cachePlacement && placed.replica === quiet)
        // A reported queue counts as load too.
        quiet.recordReportedQueue(waiting: 5, at: 5)
        let other = policy.choose(RoutingFacts(key: "other-session"), in: snapshot, now: 6)!
        #expect(other.replica !== quiet && other.replica !== home)
    }

    @Test func cacheAwarePlacementOnAnIdleFleetDependsOnlyOnMembership() {
        let ids = HashRingTests.ids(6)
        let forward = PoolSnapshot(replicas: ids.map { Replica(id: $0) }, withRing: true)
        let backward = PoolSnapshot(replicas: ids.reversed().map { Replica(id: $0) }, withRing: true)
        let a = CacheAwarePolicy()
        let b = CacheAwarePolicy()
        for index in 0..<1_000 {
            let key = "session-\(index)"
            #expect(a.pick(RoutingFacts(key: key), in: forward, now: 1)?.id == b.pick(RoutingFacts(key: key), in: backward, now: 1)?.id)
            #expect(a.pick(RoutingFacts(key: key), in: forward, now: 1)?.id == ids[forward.ring!.owner(of: key)!])
        }
    }

    @Test func cacheAwareFollowsAConversationByItsPromptAlone() {
        let snapshot = Self.pool(4, ring: true)
        let policy = CacheAwarePolicy(loadFactor: 1.25, maxQueue: 8)
        let system = String(repeating: "You are a helpful assistant for the shop. ", count: 12)
        func facts(_ prompt: String) -> RoutingFacts {
            RoutingFacts(key: "p:shared-prefix", prompt: PromptChain(prompt))
        }
        // Four conversations over one system prompt, each placed while the others are busy:
        // a prefix only one replica has seen so far does not pile them onto it.
        var homes: [Replica] = []
        for user in 0..<4 {
            let first = policy.choose(facts(system + "question \(user): " + String(repeating: "why? ", count: 40)), in: snapshot, now: 10)!
            #expect(first.reason == .cachePlacement)
            first.replica.requestStarted()
            homes.append(first.replica)
        }
        #expect(Set(homes.map(\.id)).count == 4)
        for replica in homes { replica.requestFinished() }
        // Each conversation's next turns (its history plus more) go back to its replica.
        for user in 0..<4 {
            var prompt = system + "question \(user): " + String(repeating: "why? ", count: 40)
            for turn in 0..<3 {
                prompt += " answer \(turn) " + String(repeating: "because. ", count: 30) + " next question? "
                let next = policy.choose(facts(prompt), in: snapshot, now: 20)!
                #expect(next.reason == .cacheAffinity && next.replica === homes[user])
            }
        }
        // A new conversation matching only the shared system prompt is new.
        #expect(policy.choose(facts(system + "another question " + String(repeating: "how? ", count: 40)), in: snapshot, now: 30)?.reason == .cachePlacement)
    }

    @Test func aRequestSentElsewhereMovesItsKeyAndItsPrompt() {
        let snapshot = Self.pool(3, ring: true)
        let policy = CacheAwarePolicy()
        let session = RoutingFacts(key: "session-r")
        let chosen = policy.pick(session, in: snapshot, now: 1)!
        let other = snapshot.replicas.first { $0 !== chosen }!
        policy.relocated(session, to: other, now: 2)  // the chosen one was full, say
        #expect(policy.choose(session, in: snapshot, now: 3)?.replica === other)
        let system = String(repeating: "You answer questions about returns. ", count: 10)
        let prompt = RoutingFacts(key: "p:x", prompt: PromptChain(system + String(repeating: "why is that? ", count: 20)))
        let first = policy.pick(prompt, in: snapshot, now: 4)!
        let elsewhere = snapshot.replicas.first { $0 !== first }!
        policy.relocated(prompt, to: elsewhere, now: 5)
        let next = RoutingFacts(key: "p:x", prompt: PromptChain(system + String(repeating: "why is that? ", count: 20) + " an answer, and more? "))
        let followed = policy.choose(next, in: snapshot, now: 6)!
        #expect(followed.reason == .cacheAffinity && followed.replica === elsewhere)
    }

    @Test func newConversationsOverOneSystemPromptSpreadOnAnIdleFleet() {
        // Short first questions: every prompt has the same complete blocks (all inside the
        // system prompt) and differs only in its tail; ties must still spread them.
        let snapshot = Self.pool(4, ring: true)
        let policy = CacheAwarePolicy()
        let system = String(repeating: "You answer questions about returns. ", count: 10)
        var placed: Set<ReplicaID> = []
        for user in 0..<40 {
            let choice = policy.choose(RoutingFacts(key: "p:x", prompt: PromptChain(system + "\nhi, I am user \(user)")), in: snapshot, now: 1)!
            #expect(choice.reason == .cachePlacement)
            placed.insert(choice.replica.id)
        }
        #expect(placed.count == 4)
    }

    @Test func cacheAwareForgetsReplicasThatLeftThePool() {
        let ids = HashRingTests.ids(3)
        let policy = CacheAwarePolicy()
        let three = PoolSnapshot(replicas: ids.map { Replica(id: $0) }, withRing: true)
        let first = policy.pick(RoutingFacts(key: "s"), in: three, now: 1)!
        let two = PoolSnapshot(replicas: three.replicas.filter { $0 !== first }, withRing: true)
        let again = policy.choose(RoutingFacts(key: "s"), in: two, now: 2)!
        #expect(again.reason == .cachePlacement && again.replica !== first)
        #expect(policy.choose(RoutingFacts(key: "s"), in: two, now: 3)?.reason == .cacheAffinity)
    }

    /// Sessions that come and go, each holding one request in flight per turn: placing new
    /// sessions by load keeps per-replica session counts closer together than hashing them.
    @Test func placementByLoadSpreadsSessionsMoreEvenlyThanHashing() {
        func peakOverMean(_ policy: any BalancingPolicy) -> Double {
            let snapshot = Self.pool(4, ring: true, counted: true)
            var generator = SplitMix64(seed: 11)
            var live: [(key: String, replica: Replica, ends: Int)] = []
            var peakRatio = 0.0
            for step in 0..<20_000 {
                live.removeAll { session in
                    if session.ends <= step { session.replica.requestFinished(); return true }
                    return false
                }
                let key = "session-\(step)"
                let replica = policy.pick(RoutingFacts(key: key, random: generator.next()), in: snapshot, now: UInt64(step))!
                replica.requestStarted()
                live.append((key, replica, step + 200 + Int(generator.next() % 400)))
                if step > 1_000 {
                    let loads = snapshot.replicas.map(\.inFlight)
                    let mean = Double(loads.reduce(0, +)) / 4
                    peakRatio = max(peakRatio, Double(loads.max()!) / mean)
                }
            }
            return peakRatio
        }
        let placed = peakOverMean(CacheAwarePolicy(loadFactor: 4, maxQueue: 1_000))
        let hashed = peakOverMean(ConsistentHashPolicy(loadFactor: 100))
        #expect(placed < 1.05)
        #expect(hashed > 1.15)
    }
}

@Suite struct AffinityTableTests {
    @Test func remembersAndReplacesTheLeastRecentlyUsedOfASet() {
        let table = AffinityTable(capacity: 4)  // one set of four
        for key in 1...4 { table.record(UInt64(key) << 8, replica: UInt64(key), now: UInt64(key)) }
        #expect(table.count == 4)
        #expect(table.lookup(1 << 8, now: 10) == 1)  // key 1 is now the most recent
        table.record(5 << 8, replica: 5, now: 11)  // evicts key 2, the least recent
        #expect(table.lookup(2 << 8, now: 12) == nil)
        #expect(table.lookup(1 << 8, now: 12) == 1)
        #expect(table.lookup(5 << 8, now: 12) == 5)
        table.record(5 << 8, replica: 6, now: 13)  // a move replaces in place
        #expect(table.lookup(5 << 8, now: 14) == 6)
        #expect(table.count == 4)
        #expect(AffinityTable(capacity: 65_536).capacity == 65_536)
        #expect(AffinityTable(capacity: 5).capacity == 8)
    }

    static let system = String(repeating: "You answer questions about returns. ", count: 10)  // 360 bytes
    static func question(_ n: Int, bytes: Int = 200) -> String {
        String(String(repeating: "question \(n) goes on: ", count: 20).prefix(bytes))
    }

    @Test func aConversationIsFoundByItsLastPrompt() {
        let table = AffinityTable()
        let first = Self.system + Self.question(1)
        table.record(PromptChain(first), replica: 1, now: 1)
        // Its next prompt contains it whole: found.
        let next = first + "\nan answer to it\n" + Self.question(2)
        #expect(table.conversation(of: PromptChain(next), now: 2) == 1)
        // The same prompt again (a retry, or two conversations that began alike): found.
        #expect(table.conversation(of: PromptChain(first), now: 2) == 1)
        // A new conversation over the same system prompt matches only inside it: new.
        let other = Self.system + Self.question(3)
        #expect(table.conversation(of: PromptChain(other), now: 2) == nil)
        table.record(PromptChain(other), replica: 2, now: 3)
        #expect(table.conversation(of: PromptChain(other + "\nmore\n" + Self.question(4)), now: 4) == 2)
        #expect(table.conversation(of: PromptChain(next), now: 4) == 1)
        #expect(table.conversation(of: PromptChain("unrelated " + Self.question(5)), now: 4) == nil)
    }

    @Test func aShortFirstQuestionDoesNotClaimTheSystemPrompt() {
        // The first prompt's last complete block lies inside the system prompt (360 + 1 + 20
        // bytes: blocks end at 128, 256 and 384 > 381). A second conversation with another short
        // question shares every complete block, but not the first one's tail: new.
        let table = AffinityTable()
        let first = Self.system + "\n" + Self.question(1, bytes: 20)
        table.record(PromptChain(first), replica: 1, now: 1)
        #expect(PromptChain(first).blocks.count == 2)
        #expect(table.conversation(of: PromptChain(Self.system + "\n" + Self.question(2, bytes: 20)), now: 2) == nil)
        #expect(table.conversation(of: PromptChain(first + "\nanswer\n" + Self.question(3)), now: 2) == 1)
    }

    @Test func aBlockFromTwoReplicasIsSharedUnlessTheConversationMoved() {
        let table = AffinityTable()
        let first = Self.system + Self.question(1)
        table.record(PromptChain(first), replica: 1, now: 1)
        // The same prompt recorded from another replica: its end is shared, so it follows neither.
        table.record(PromptChain(first), replica: 2, now: 2)
        #expect(table.conversation(of: PromptChain(first + "\n" + Self.question(2)), now: 3) == nil)
        // A conversation moved (overflow, or sent elsewhere than chosen) changes hands instead.
        let second = Self.system + Self.question(7)
        table.record(PromptChain(second), replica: 1, now: 4)
        table.record(PromptChain(second), replica: 3, now: 5, moving: true)
        #expect(table.conversation(of: PromptChain(second + "\n" + Self.question(8)), now: 6) == 3)
        // A prompt past the indexed length (128 KiB) keeps one chain turn after turn: a move
        // must not leave it shared, or the conversation would be placed anew every turn.
        let long = String(repeating: "a long document line. ", count: 7_000)
        table.record(PromptChain(long), replica: 1, now: 7)
        table.record(PromptChain(long + Self.question(9)), replica: 2, now: 8, moving: true)
        #expect(PromptChain(long).blocks.count == PromptChain.maxBlocks)
        #expect(table.conversation(of: PromptChain(long + Self.question(9) + Self.question(10)), now: 9) == 2)
    }
}

@Suite struct PromptChainTests {
    @Test func aPromptsChainExtendsItsPrefixesChain() {
        let first = String(repeating: "a system prompt that many conversations share. ", count: 10)
        let longer = first + String(repeating: "and then a question. ", count: 20)
        let a = PromptChain(first)
        let b = PromptChain(longer)
        #expect(a.blocks.count == first.utf8.count / PromptChain.blockBytes)
        #expect(Array(b.blocks.prefix(a.blocks.count)) == a.blocks)
        #expect(b.blocks.count > a.blocks.count)
        // The longer prompt goes on with the shorter one's tail; a different tail does not.
        let tail = a.tail
        #expect(tail.length == first.utf8.count % PromptChain.blockBytes)
        #expect(b.continues(afterBlock: a.blocks.count - 1, tailLength: tail.length, tailHash: tail.hash))
        #expect(!PromptChain(first + "X").continues(afterBlock: a.blocks.count - 1, tailLength: tail.length + 1, tailHash: tail.hash))
        // One byte changed early changes every later block, none before it.
        var bytes = Array(longer.utf8)
        bytes[200] = UInt8(ascii: "X")
        let changed = PromptChain(String(decoding: bytes, as: UTF8.self))
        #expect(changed.blocks[0] == b.blocks[0] && zip(changed.blocks.dropFirst(), b.blocks.dropFirst()).allSatisfy { $0 != $1 })
        #expect(PromptChain(String(repeating: "x", count: PromptChain.blockBytes - 1)).blocks.isEmpty)
        let huge = PromptChain(String(repeating: "x", count: PromptChain.blockBytes * (PromptChain.maxBlocks + 5)))
        #expect(huge.blocks.count == PromptChain.maxBlocks && huge.tail.length == PromptChain.blockBytes - 1)
    }

}

@Suite struct AffinityTableLayoutTests {
    @Test func anEntryTakesFortyBytes() {
        // The size the README and the doc comment quote (65,536 entries: 2.5 MiB).
        #expect(MemoryLayout<AffinityTable.Entry>.stride == 40)
    }
}
