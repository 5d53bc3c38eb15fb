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
}
