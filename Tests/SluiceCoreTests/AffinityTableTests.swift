import Testing
@testable import SluiceCore

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
