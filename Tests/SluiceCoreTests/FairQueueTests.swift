import Testing
@testable import SluiceCore

@Suite struct FairQueueTests {
    @Test func higherPriorityFirstThenTenantsTakeTurns() {
        var queue = FairQueue<String>(capacity: 100)
        // Tenant 1 floods first; tenant 2 and 3 arrive later; a priority-5 request last.
        for index in 0..<5 { _ = queue.enqueue("a\(index)", tenant: 1, priority: 0, deadline: 1_000) }
        _ = queue.enqueue("b0", tenant: 2, priority: 0, deadline: 1_000)
        _ = queue.enqueue("b1", tenant: 2, priority: 0, deadline: 1_000)
        _ = queue.enqueue("c0", tenant: 3, priority: 0, deadline: 1_000)
        _ = queue.enqueue("vip", tenant: 4, priority: 5, deadline: 1_000)
        var order: [String] = []
        while let next = queue.dequeue() { order.append(next) }
        #expect(order == ["vip", "a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"])
        #expect(queue.isEmpty && queue.count == 0)
    }

    @Test func aTenantJoiningMidRotationWaitsForItsTurnOnly() {
        var queue = FairQueue<String>(capacity: 100)
        for index in 0..<3 { _ = queue.enqueue("a\(index)", tenant: 1, priority: 0, deadline: 9) }
        #expect(queue.dequeue() == "a0")
        _ = queue.enqueue("b0", tenant: 2, priority: 0, deadline: 9)
        #expect(queue.dequeue() == "b0")  // a had its turn; b is next
        #expect(queue.dequeue() == "a1")
        #expect(queue.dequeue() == "a2")
        #expect(queue.dequeue() == nil)
    }

    @Test func fullQueueRefusesAndRemovalFreesRoom() {
        var queue = FairQueue<Int>(capacity: 3)
        let tickets = (0..<3).map { queue.enqueue($0, tenant: $0 % 2, priority: 0, deadline: 100)! }
        #expect(queue.isFull)
        #expect(queue.enqueue(9, tenant: 0, priority: 9, deadline: 100) == nil)  // shed, even at a higher priority
        #expect(queue.remove(tickets[1]) == 1)
        #expect(queue.remove(tickets[1]) == nil)
        #expect(queue.enqueue(3, tenant: 1, priority: 0, deadline: 100) != nil)
        var order: [Int] = []
        while let next = queue.dequeue() { order.append(next) }
        #expect(order == [0, 3, 2])
    }

    @Test func deadlinesExpireEarliestFirstAndAreNeverServed() {
        var queue = FairQueue<String>(capacity: 10)
        _ = queue.enqueue("late", tenant: 1, priority: 0, deadline: 300)
        _ = queue.enqueue("soon", tenant: 2, priority: 1, deadline: 100)
        _ = queue.enqueue("sooner", tenant: 1, priority: 0, deadline: 50)
        _ = queue.enqueue("never", tenant: 3, priority: 0, deadline: 10_000)
        #expect(queue.nextDeadline == 50)
        #expect(queue.expire(now: 99).isEmpty == false)
        #expect(queue.count == 3)
        #expect(queue.expire(now: 300) == ["soon", "late"])
        #expect(queue.nextDeadline == 10_000)
        #expect(queue.dequeue() == "never")
        #expect(queue.nextDeadline == nil)
    }

    /// Under random enqueues, dequeues and removals: nothing is lost or served twice, the count
    /// holds, and a tenant that never runs dry keeps its memory bounded (served entries compact).
    @Test func randomOperationsKeepEveryElementExactlyOnce() {
        var random = SplitMix64(seed: 3)
        var queue = FairQueue<Int>(capacity: 64)
        var waiting: [Int: FairQueue<Int>.Ticket] = [:]
        var served: Set<Int> = []
        var next = 0
        for _ in 0..<50_000 {
            switch random.next() % 5 {
            case 0, 1, 2:
                if let ticket = queue.enqueue(next, tenant: Int(random.next() % 4), priority: Int(random.next() % 2), deadline: 0) {
                    waiting[next] = ticket
                }
                next += 1
            case 3:
                if let element = queue.dequeue() {
                    #expect(waiting.removeValue(forKey: element) != nil)
                    #expect(served.insert(element).inserted)
                }
            default:
                if let (element, ticket) = waiting.first {
                    #expect(queue.remove(ticket) == element)
                    waiting[element] = nil
                }
            }
            #expect(queue.count == waiting.count)
        }
    }
}
