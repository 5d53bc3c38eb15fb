import Testing
@testable import SluiceCore

/// `fairness: tokens`: tenants of one priority share by tokens served (virtual token counters).
@Suite struct FairQueueTokensTests {
    /// Tokens served per tenant over the first `count` dequeues ("a…" is tenant 1, "b…" tenant 2).
    static func drain(_ queue: inout FairQueue<String>, count: Int, costs: [Character: Int]) -> [Character: Int] {
        var served: [Character: Int] = [:]
        for _ in 0..<count {
            guard let next = queue.dequeue() else { break }
            served[next.first!, default: 0] += costs[next.first!]!
        }
        return served
    }

    @Test func aTenantWithTenTimesLongerRequestsGetsATenthOfTheTurns() {
        var tokens = FairQueue<String>(capacity: 1_000, fairness: .tokens)
        var requests = FairQueue<String>(capacity: 1_000, fairness: .requests)
        for index in 0..<200 {
            _ = tokens.enqueue("a\(index)", tenant: 1, priority: 0, deadline: 9, cost: 1_000)
            _ = tokens.enqueue("b\(index)", tenant: 2, priority: 0, deadline: 9, cost: 100)
            _ = requests.enqueue("a\(index)", tenant: 1, priority: 0, deadline: 9, cost: 1_000)
            _ = requests.enqueue("b\(index)", tenant: 2, priority: 0, deadline: 9, cost: 100)
        }
        let costs: [Character: Int] = ["a": 1_000, "b": 100]
        let fair = Self.drain(&tokens, count: 110, costs: costs)
        #expect(fair == ["a": 10_000, "b": 10_000])
        #expect(tokens.served == [1: 10_000, 2: 10_000])
        // Turns by request: the long requests take ten times the tokens.
        #expect(Self.drain(&requests, count: 110, costs: costs) == ["a": 55_000, "b": 5_500])
    }

    @Test func idleTimeIsNotBankedAsCredit() {
        var queue = FairQueue<String>(capacity: 1_000, fairness: .tokens)
        // Tenant 1 is served 50,000 tokens while tenant 2 sends nothing.
        for index in 0..<50 { _ = queue.enqueue("a\(index)", tenant: 1, priority: 0, deadline: 9, cost: 1_000) }
        for _ in 0..<40 { _ = queue.dequeue() }
        // Tenant 2 arrives: lifted to tenant 1's count, so the two alternate by tokens instead of
        // tenant 2 taking the next 40,000 tokens' worth of turns in a row.
        for index in 0..<20 { _ = queue.enqueue("b\(index)", tenant: 2, priority: 0, deadline: 9, cost: 1_000) }
        #expect(queue.served[2] == queue.served[1])
        var order = ""
        for _ in 0..<6 { order.append(queue.dequeue()!.first!) }
        #expect(order == "ababab" || order == "bababa", "\(order)")
    }

    @Test func correctionsAndDirectSlotsCountAndPriorityStillComesFirst() {
        var queue = FairQueue<String>(capacity: 100, fairness: .tokens)
        queue.charge(tenant: 1, tokens: 5_000)  // served without waiting
        _ = queue.enqueue("a0", tenant: 1, priority: 0, deadline: 9, cost: 10)
        _ = queue.enqueue("b0", tenant: 2, priority: 0, deadline: 9, cost: 10)
        _ = queue.enqueue("b1", tenant: 2, priority: 0, deadline: 9, cost: 10)
        _ = queue.enqueue("vip", tenant: 1, priority: 5, deadline: 9, cost: 10)
        #expect(queue.dequeue() == "vip")
        // (Tenant 2 joined while tenant 1 waited at 5,000, charged on dequeue: lifted to it.)
        #expect(queue.served[2] == 5_000)
        #expect(queue.served[1] == 5_010)
        queue.charge(tenant: 2, tokens: -4_000)  // its usage came in lower than charged
        #expect(queue.dequeue() == "b0")
        #expect(queue.dequeue() == "b1")
        #expect(queue.dequeue() == "a0")
        queue.charge(tenant: 3, tokens: -10)
        #expect(queue.served[3] == 0)
    }
}

/// What `queue.headroom` reads from the queue: who asked for the most lately, and a dequeue
/// that may pass a tenant over.
@Suite struct FairQueueHeadroomTests {
    @Test func aFilteredDequeueSkipsTheExcludedTenantAndReturnsNilWhenOnlyItWaits() {
        var queue = FairQueue<String>(capacity: 100, fairness: .tokens)
        for index in 0..<3 { _ = queue.enqueue("noisy\(index)", tenant: 1, priority: 0, deadline: 9, cost: 300) }
        #expect(queue.dequeue { $0 != 1 } == nil)
        #expect(queue.count == 3)
        _ = queue.enqueue("quiet", tenant: 2, priority: 0, deadline: 9, cost: 20)
        #expect(queue.dequeue { $0 != 1 } == "quiet")
        #expect(queue.count == 3)
        #expect(queue.dequeue() == "noisy0")
        var turns = FairQueue<String>(capacity: 10, fairness: .requests)
        _ = turns.enqueue("a", tenant: 1, priority: 0, deadline: 9)
        _ = turns.enqueue("b", tenant: 2, priority: 0, deadline: 9)
        #expect(turns.dequeue { $0 == 2 } == "b")
    }

    @Test func theHeaviestTenantIsTheOneAskingForTheMostLatelyAndNoneWhenAlone() {
        var queue = FairQueue<String>(capacity: 10, fairness: .tokens)
        let second: UInt64 = 1_000_000_000
        queue.noteArrival(tenant: 1, now: 0, cost: 300)
        #expect(queue.heaviest(now: 0, window: 2 * second) == nil)  // alone: no one to keep room for
        queue.noteArrival(tenant: 2, now: 0, cost: 20)
        #expect(queue.heaviest(now: 0, window: 2 * second) == 1)
        // The heavy one stopped a while ago: its demand halves every second, the light one keeps asking.
        for step in 1...8 { queue.noteArrival(tenant: 2, now: UInt64(step) * second / 4, cost: 20) }
        #expect(queue.heaviest(now: 2 * second, window: 2 * second) == 2)
        // Gone quiet for longer than the window: not active.
        #expect(queue.heaviest(now: 5 * second, window: 2 * second) == nil)
    }
}
