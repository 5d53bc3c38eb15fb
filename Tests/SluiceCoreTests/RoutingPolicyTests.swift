import Testing
@testable import SluiceCore

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
