import Testing
@testable import SluiceCore

@Suite struct RoundRobinPolicyTests {
    let ids = (1...3).map { ReplicaID(host: "10.0.0.\($0)", port: 8000) }

    func snapshot() -> PoolSnapshot {
        PoolSnapshot(replicas: ids.map { Replica(id: $0) })
    }

    @Test func rotatesEvenly() {
        let policy = RoundRobinPolicy()
        let pool = snapshot()
        var counts: [ReplicaID: Int] = [:]
        for _ in 0..<300 {
            counts[policy.pick(RoutingFacts(), in: pool, now: 0)!.id, default: 0] += 1
        }
        #expect(counts == [ids[0]: 100, ids[1]: 100, ids[2]: 100])
    }

    @Test func emptyPoolPicksNothing() {
        #expect(RoundRobinPolicy().pick(RoutingFacts(), in: PoolSnapshot(replicas: []), now: 0) == nil)
    }

    @Test func skipsEjectedAndDrainingReplicas() {
        let policy = RoundRobinPolicy()
        let pool = snapshot()
        let ejection = EjectionPolicy(consecutiveFailures: 2, duration: 1_000)
        #expect(!pool.replicas[0].recordFailure(at: 100, policy: ejection))
        #expect(pool.replicas[0].recordFailure(at: 100, policy: ejection))
        pool.replicas[1].setDraining(true)
        for _ in 0..<6 {
            #expect(policy.pick(RoutingFacts(), in: pool, now: 500)?.id == ids[2])
        }
        // The ejection ends exactly at 100 + 1000.
        #expect(pool.replicas[0].isEjected(at: 1_099))
        #expect(!pool.replicas[0].isEjected(at: 1_100))
        pool.replicas[2].setDraining(true)
        #expect(policy.pick(RoutingFacts(), in: pool, now: 500) == nil)
        #expect(policy.pick(RoutingFacts(), in: pool, now: 1_100)?.id == ids[0])
    }

    @Test func successResetsTheFailureCount() {
        let replica = Replica(id: ids[0])
        let ejection = EjectionPolicy(consecutiveFailures: 2, duration: 1_000)
        replica.recordFailure(at: 0, policy: ejection)
        replica.recordSuccess()
        #expect(!replica.recordFailure(at: 0, policy: ejection))
        #expect(replica.isAvailable(at: 0))
    }
}

@Suite struct InFlightAccountingTests {
    @Test func startedAndFinishedBalance() async {
        let replica = Replica(id: ReplicaID(host: "127.0.0.1", port: 1))
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<1_000 {
                        replica.requestStarted()
                        replica.requestFinished()
                    }
                }
            }
        }
        #expect(replica.inFlight == 0)
        replica.requestStarted()
        replica.requestStarted()
        #expect(replica.inFlight == 2)
    }

    @Test func snapshotsShareReplicaObjects() {
        let replica = Replica(id: ReplicaID(host: "127.0.0.1", port: 1))
        let old = PoolSnapshot(replicas: [replica], generation: 1)
        replica.requestStarted()
        let new = PoolSnapshot(replicas: [old.replica(replica.id)!, Replica(id: ReplicaID(host: "127.0.0.1", port: 2))], generation: 2)
        #expect(new.replica(replica.id)?.inFlight == 1)
        #expect(old.replicas.count == 1)
    }
}
