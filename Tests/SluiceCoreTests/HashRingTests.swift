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
