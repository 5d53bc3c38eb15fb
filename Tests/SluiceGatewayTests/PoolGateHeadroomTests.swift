import NIOCore
import SluiceConfig
import SluiceCore
import Synchronization
import Testing
@testable import SluiceGateway

/// `queue.headroom` in the gate itself, on a manual clock: the tenant asking for the most tokens
/// lately does not take the last free slots while another tenant is active, and a slot kept
/// free that way is given back whole (in flight 0, no request counted as sent).
@Suite struct PoolGateHeadroomTests {
    @Test func theHeaviestTenantLeavesTheLastSlotFreeWhileAnotherIsActive() {
        let clock = Mutex(NIODeadline.uptimeNanoseconds(1_000_000_000))
        var queue = QueueConfiguration()
        queue.fairness = .tokens
        queue.headroom = 1
        let gate = PoolGate(limit: 1, queue: queue, pool: "chat", metrics: GatewayMetrics(), clock: { clock.withLock { $0 } })
        let replica = Replica(id: ReplicaID(host: "127.0.0.1", port: 9))
        let snapshot = PoolSnapshot(replicas: [replica])
        let handed = Mutex<[Int]>([])
        func enter(_ tenant: Int, cost: Int) -> PoolGate.Entry {
            gate.enter(preferred: nil, snapshot: snapshot, tenant: tenant, priority: 0, now: clock.withLock { $0.uptimeNanoseconds }, cost: cost) { _ in
                handed.withLock { $0.append(tenant) }
            }
        }

        guard case .slot = enter(0, cost: 100) else { Issue.record("the first request takes the free slot"); return }
        guard case .queued = enter(0, cost: 100), case .queued = enter(1, cost: 1) else { Issue.record("both wait"); return }
        // The slot frees: the light tenant's request gets it, though the heavy one queued first.
        gate.release(replica, snapshot: snapshot)
        #expect(handed.withLock { $0 } == [1])
        // It frees again: only the heavy tenant waits, and the light one is active: kept free.
        gate.release(replica, snapshot: snapshot)
        #expect(handed.withLock { $0 } == [1])
        #expect(replica.inFlight == 0 && gate.waiting == 1)
        #expect(replica.sent == 0)
        // Once the light tenant has been quiet past the active window, the heavy one may have it.
        clock.withLock { $0 = $0 + .nanoseconds(Int64(PoolGate.activeWindow) + 1) }
        gate.dispatch(snapshot)
        #expect(handed.withLock { $0 } == [1, 0])
        #expect(replica.inFlight == 1 && gate.waiting == 0)
    }
}
