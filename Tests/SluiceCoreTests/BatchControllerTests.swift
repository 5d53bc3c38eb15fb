import Testing
@testable import SluiceCore

@Suite struct BatchControllerTests {
    static let ms: UInt64 = 1_000_000
    static let policy = BatchController.Policy(maxBatch: 32, maxWait: 5 * ms, targetLatency: 50 * ms)

    @Test func aBatchGoesWhenFullWhenItsOldestWaitedOrWhenAReplicaIsIdle() {
        let controller = BatchController(policy: Self.policy, initialCap: 8)
        #expect(controller.shouldSend(size: 0, oldest: 0, now: 100 * Self.ms, idleReplica: true) == nil)
        #expect(controller.shouldSend(size: 8, oldest: 0, now: 0, idleReplica: false) == .full)
        #expect(controller.shouldSend(size: 3, oldest: 0, now: 4 * Self.ms, idleReplica: false) == nil)
        #expect(controller.shouldSend(size: 3, oldest: 0, now: 5 * Self.ms, idleReplica: false) == .waited)
        // Never hold a request while its replica has nothing to do.
        #expect(controller.shouldSend(size: 1, oldest: 0, now: 0, idleReplica: true) == .idleReplica)
        #expect(controller.deadline(oldest: 7 * Self.ms) == 12 * Self.ms)
    }

    @Test func theCapGrowsAdditivelyUnderTargetAndHalvesOnAMiss() {
        var controller = BatchController(policy: Self.policy)
        #expect(controller.cap == 8)  // a quarter of max_batch
        controller.record(size: 8, latency: 20 * Self.ms)
        #expect(controller.cap == 9)
        // A batch smaller than the cap says nothing about a bigger one.
        controller.record(size: 3, latency: 10 * Self.ms)
        #expect(controller.cap == 9)
        controller.record(size: 9, latency: 60 * Self.ms)
        #expect(controller.cap == 4)
        // Any miss cuts, down to 1 at least; growth stops at max_batch.
        for _ in 0..<10 { controller.record(size: 1, latency: 99 * Self.ms) }
        #expect(controller.cap == 1)
        for _ in 0..<100 { controller.record(size: controller.cap, latency: Self.ms) }
        #expect(controller.cap == 32)
    }

    @Test func theCapSettlesBelowTheSizeWhoseLatencyMeetsTheTarget() {
        // A replica where a batch of n takes 10 ms + 2 ms per row: 20 rows take exactly 50 ms.
        var controller = BatchController(policy: Self.policy, initialCap: 1)
        var caps: [Int] = []
        for _ in 0..<400 {
            let size = controller.cap
            controller.record(size: size, latency: (10 + 2 * UInt64(size)) * Self.ms)
            caps.append(controller.cap)
        }
        // AIMD saw-tooth: between half the limit and one step past it (which the next batch corrects).
        let settled = caps.suffix(200)
        #expect(settled.max()! <= 21 && settled.min()! >= 10, "\(settled.min()!)...\(settled.max()!)")
    }
}
