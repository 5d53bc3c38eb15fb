import Testing
@testable import SluiceGateway

@Suite struct WorkerAffinityTests {
    @Test func allowedCPUsAreReadFromTheStatusList() {
        #expect(WorkerAffinity.allowedCPUs(status: "Name:\tsluice\nCpus_allowed_list:\t0-2,5,7-8\n") == [0, 1, 2, 5, 7, 8])
        #expect(WorkerAffinity.allowedCPUs(status: "Cpus_allowed_list:\t3\n") == [3])
        #expect(WorkerAffinity.allowedCPUs(status: "Cpus_allowed_list:\t4-2\n").isEmpty)
        #expect(WorkerAffinity.allowedCPUs(status: "Name:\tx\n").isEmpty)
        // On this (Linux) machine the real list is not empty and pinned groups start.
        let cpus = WorkerAffinity.allowedCPUs()
        #expect(!cpus.isEmpty)
        let (group, pinned) = WorkerAffinity.makeGroup(workers: 2, pinned: true)
        #expect(pinned == [cpus[0], cpus[1 % cpus.count]])
        #expect(throws: Never.self) { try group.syncShutdownGracefully() }
    }
}
