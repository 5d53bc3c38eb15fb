import NIOCore
import Testing
@testable import SluiceGateway

/// The connection pool's decisions, without sockets: reuse order, the cap, who waits and in
/// which order, failures answered one waiter each, and the idle sweep on a manual clock.
struct UpstreamPoolStateMachineTests {
    final class Conn {
        var open = true
    }
    final class Waiter {}
    typealias Machine = UpstreamPoolStateMachine<Conn, Waiter>

    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func aRequesterWithNoIdleConnectionWaitsAndOneConnectionIsOpened() {
        var machine = Machine(maxConnections: 2, keepaliveIdle: .seconds(4))
        let (got, action) = machine.acquire(Waiter(), isOpen: { $0.open })
        #expect(got == nil)
        guard case .connect(1) = action else { Issue.record("expected one connect, got \(action)"); return }
        #expect(machine.openCount == 1)
        #expect(machine.waitingCount == 1)
    }

    @Test func theCapHoldsAndLaterRequestersWaitInArrivalOrder() {
        var machine = Machine(maxConnections: 2, keepaliveIdle: .seconds(4))
        let waiters = (0..<4).map { _ in Waiter() }
        var connects = 0
        for waiter in waiters {
            if case .connect(let n) = machine.acquire(waiter, isOpen: { $0.open }).1 { connects += n }
        }
        #expect(connects == 2)
        #expect(machine.openCount == 2)
        // The two new connections go to the first two; a released one to the third.
        let a = Conn(), b = Conn()
        guard case .hand(let c0, let w0) = machine.connected(a, now: Self.t0) else { Issue.record("not handed"); return }
        #expect(c0 === a && w0 === waiters[0])
        guard case .hand(_, let w1) = machine.connected(b, now: Self.t0) else { Issue.record("not handed"); return }
        #expect(w1 === waiters[1])
        guard case .hand(_, let w2) = machine.available(a, now: Self.t0) else { Issue.record("not handed"); return }
        #expect(w2 === waiters[2])
        #expect(machine.waitingCount == 1)
    }

    @Test func reuseIsLastInFirstOutAndClosedIdleConnectionsAreSkipped() {
        var machine = Machine(maxConnections: 4, keepaliveIdle: .seconds(4))
        let old = Conn(), recent = Conn(), dead = Conn()
        for (index, connection) in [old, recent, dead].enumerated() {
            _ = machine.available(connection, now: Self.t0 + .seconds(Int64(index)))
        }
        dead.open = false
        let (got, action) = machine.acquire(Waiter(), isOpen: { $0.open })
        #expect(got === recent)
        guard case .none = action else { Issue.record("expected nothing to do, got \(action)"); return }
        #expect(machine.idleCount == 1)
    }

    @Test func aFailedConnectAnswersOneWaiterAndOpensAnotherForTheRest() {
        var machine = Machine(maxConnections: 1, keepaliveIdle: .seconds(4))
        let first = Waiter(), second = Waiter()
        _ = machine.acquire(first, isOpen: { $0.open })
        _ = machine.acquire(second, isOpen: { $0.open })
        #expect(machine.openCount == 1)
        guard case .fail(let told, let more) = machine.connectFailed() else { Issue.record("expected a failure"); return }
        #expect(told === first)
        #expect(more == 1)
        #expect(machine.openCount == 1)
        #expect(machine.waitingCount == 1)
    }

    @Test func aCancelledRequesterIsNotHandedAConnection() {
        var machine = Machine(maxConnections: 1, keepaliveIdle: .seconds(4))
        let gone = Waiter()
        _ = machine.acquire(gone, isOpen: { $0.open })
        machine.cancel(where: { $0 === gone })
        guard case .keepIdle = machine.connected(Conn(), now: Self.t0) else { Issue.record("expected idle"); return }
        #expect(machine.idleCount == 1)
    }

    @Test func theSweepClosesOnlyConnectionsIdleLongerThanKeepaliveIdle() {
        var machine = Machine(maxConnections: 4, keepaliveIdle: .seconds(4))
        let old = Conn(), young = Conn()
        guard case .keepIdle(let sweepBy) = machine.available(old, now: Self.t0) else { Issue.record("expected idle"); return }
        #expect(sweepBy == Self.t0 + .seconds(1))
        _ = machine.available(young, now: Self.t0 + .seconds(3))
        let (early, _) = machine.sweep(now: Self.t0 + .milliseconds(3_999))
        #expect(early.isEmpty)
        let (stale, again) = machine.sweep(now: Self.t0 + .seconds(4))
        #expect(stale.count == 1 && stale[0] === old)
        #expect(again == Self.t0 + .seconds(5))
        let (last, none) = machine.sweep(now: Self.t0 + .seconds(7))
        #expect(last.count == 1 && last[0] === young)
        #expect(none == nil)
    }

    @Test func aClosedConnectionFreesItsPlaceForAWaiter() {
        var machine = Machine(maxConnections: 1, keepaliveIdle: .seconds(4))
        let busy = Conn()
        _ = machine.acquire(Waiter(), isOpen: { $0.open })
        _ = machine.connected(busy, now: Self.t0)
        _ = machine.acquire(Waiter(), isOpen: { $0.open })  // at the cap: waits
        guard case .connect(1) = machine.closed(busy) else { Issue.record("expected a new connect"); return }
        #expect(machine.openCount == 1)
    }

    @Test func afterCloseAllReturnedConnectionsAreClosed() {
        var machine = Machine(maxConnections: 2, keepaliveIdle: .seconds(4))
        let idle = Conn(), busy = Conn()
        _ = machine.available(idle, now: Self.t0)
        #expect(machine.closeAll().count == 1)
        guard case .close(let closing) = machine.available(busy, now: Self.t0) else { Issue.record("expected a close"); return }
        #expect(closing.count == 1 && closing[0] === busy)
    }
}
