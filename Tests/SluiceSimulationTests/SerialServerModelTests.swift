import Testing
@testable import SluiceSimulation

@Suite struct SerialServerModelTests {
    @Test func batchesQueueBehindEachOther() {
        var server = SerialServerModel()
        #expect(server.admit(cost: .milliseconds(5), at: .zero) == .milliseconds(5))
        #expect(server.admit(cost: .milliseconds(5), at: .milliseconds(1)) == .milliseconds(10))
        #expect(server.backlog(at: .milliseconds(2)) == .milliseconds(8))
        // Idle again: no queueing.
        #expect(server.admit(cost: .milliseconds(2), at: .milliseconds(20)) == .milliseconds(22))
    }
}
