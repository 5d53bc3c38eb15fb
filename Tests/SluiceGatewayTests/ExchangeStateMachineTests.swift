import NIOCore
import SluiceCore
import Testing
import SluiceHTTP1
@testable import SluiceGateway

/// The exchange's waits and deadlines on a manual clock: every timeout passes at its exact
/// instant and not a nanosecond before, body parts go where the phase says, and cutting an
/// exchange short says exactly what to undo.
struct ExchangeStateMachineTests {
    final class Conn {}
    typealias Machine = ExchangeStateMachine<Conn>

    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let limits = Machine.Limits(clientTimeout: .seconds(60), keepaliveTimeout: .seconds(75))

    static func head(_ text: String = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n") -> HTTP1Head {
        var parser = HTTP1Parser(role: .request, maxHeadBytes: 16 * 1024)
        var buffer = ByteBuffer(string: text)
        guard case .head(let head) = try? parser.next(&buffer) else { fatalError("not a head: \(text)") }
        return head
    }

    static func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test func anIdleConnectionExpiresExactlyAtTheKeepaliveTimeout() {
        let machine = Machine(limits: Self.limits, now: Self.t0)
        #expect(machine.nextDeadline == Self.t0 + .seconds(75))
        #expect(machine.expired(now: Self.t0 + .seconds(75) - .nanoseconds(1)) == nil)
        #expect(machine.expired(now: Self.t0 + .seconds(75)) == .keepalive)
    }

    @Test func aHeldBodyIsTimedFromTheClientsLastByteAndHandedOverWhole() {
        var machine = Machine(limits: Self.limits, now: Self.t0)
        machine.requestStarted(now: Self.t0)
        machine.read(Self.head(), into: ByteBuffer())
        guard case .held = machine.bodyReceived(Self.bytes("{\"a\":"), now: Self.t0 + .seconds(30), maxReadBytes: 100) else {
            Issue.record("not held"); return
        }
        #expect(machine.nextDeadline == Self.t0 + .seconds(90))
        #expect(machine.expired(now: Self.t0 + .seconds(89)) == nil)
        #expect(machine.expired(now: Self.t0 + .seconds(90)) == .client)
        _ = machine.bodyReceived(Self.bytes("1}"), now: Self.t0 + .seconds(31), maxReadBytes: 100)
        guard case .decide(_, let body) = machine.requestEndReceived(now: Self.t0 + .seconds(31)) else {
            Issue.record("not decided"); return
        }
        #expect(String(buffer: body) == "{\"a\":1}")
        // Deciding, with the request all here: nothing is timed.
        #expect(machine.nextDeadline == nil)
    }

    @Test func aBodyLargerThanMayBeHeldIsRefusedAtThePartThatCrossesTheCap() {
        var machine = Machine(limits: Self.limits, now: Self.t0)
        machine.requestStarted(now: Self.t0)
        machine.read(Self.head(), into: ByteBuffer())
        guard case .held = machine.bodyReceived(Self.bytes("12345"), now: Self.t0, maxReadBytes: 8) else { Issue.record("not held"); return }
        guard case .tooLargeToRead = machine.bodyReceived(Self.bytes("6789"), now: Self.t0, maxReadBytes: 8) else {
            Issue.record("not refused"); return
        }
    }

    @Test func aQueuedRequestIsTimedByTheQueueAloneAndItsSlotIsTakenOnce() {
        var machine = Machine(limits: Self.limits, now: Self.t0)
        machine.requestStarted(now: Self.t0)
        machine.queued(Self.head(), ticket: 7, now: Self.t0, deadline: Self.t0 + .seconds(5))
        guard case .pend = machine.bodyReceived(Self.bytes("x"), now: Self.t0, maxReadBytes: 100) else { Issue.record("not pended"); return }
        // The client's silence is the gateway's doing while it waits: only the queue's deadline runs.
        #expect(machine.nextDeadline == Self.t0 + .seconds(5))
        #expect(machine.expired(now: Self.t0 + .seconds(5)) == .queue(ticket: 7))
        #expect(machine.slotArrived(now: Self.t0 + .seconds(2))?.since == Self.t0)
        #expect(machine.slotArrived(now: Self.t0 + .seconds(2)) == nil)
        // From the slot on, the client is timed again, from then.
        machine.connecting(until: Self.t0 + .seconds(4))
        #expect(machine.nextDeadline == Self.t0 + .seconds(4))
        #expect(machine.expired(now: Self.t0 + .seconds(4)) == .connect)
    }

    @Test func theAnswersHeadIsDueFromTheRequestsEndThenTheReplicasSilenceIsTimed() {
        var machine = Machine(limits: Self.limits, now: Self.t0)
        let connection = Conn()
        machine.requestStarted(now: Self.t0)
        machine.connecting(until: Self.t0 + .seconds(2))
        let complete = machine.attached(connection, now: Self.t0 + .seconds(1), responseHeaderTimeout: .seconds(10), idleTimeout: .seconds(3))
        #expect(!complete)
        // Body still coming: the client's silence is what is timed.
        #expect(machine.nextDeadline == Self.t0 + .seconds(60))
        guard case .write(let to) = machine.bodyReceived(Self.bytes("x"), now: Self.t0 + .seconds(2), maxReadBytes: 0), to === connection else {
            Issue.record("not written"); return
        }
        guard case .sent = machine.requestEndReceived(now: Self.t0 + .seconds(2)) else { Issue.record("not sent"); return }
        #expect(machine.nextDeadline == Self.t0 + .seconds(12))
        #expect(machine.expired(now: Self.t0 + .seconds(12)) == .responseHeader)
        machine.responseStarted(now: Self.t0 + .seconds(5))
        #expect(machine.expired(now: Self.t0 + .seconds(12)) == .idle)
        machine.responseBytes(now: Self.t0 + .seconds(11))
        #expect(machine.nextDeadline == Self.t0 + .seconds(14))
        #expect(machine.expired(now: Self.t0 + .seconds(13)) == nil)
        #expect(machine.expired(now: Self.t0 + .seconds(14)) == .idle)
    }

    @Test func aRequestAnsweredBeforeItsEndHasItsRestDroppedThenTheConnectionIsIdle() {
        var machine = Machine(limits: Self.limits, now: Self.t0)
        machine.requestStarted(now: Self.t0)
        #expect(machine.exchangeEnded(keepAlive: true, now: Self.t0 + .seconds(1)) == .discard)
        guard case .drop = machine.bodyReceived(Self.bytes("rest"), now: Self.t0, maxReadBytes: 100) else { Issue.record("not dropped"); return }
        // The rest must come within the keep-alive timeout.
        #expect(machine.nextDeadline == Self.t0 + .seconds(76))
        guard case .idle = machine.requestEndReceived(now: Self.t0 + .seconds(2)) else { Issue.record("not idle"); return }
        #expect(machine.isIdle)
        #expect(machine.nextDeadline == Self.t0 + .seconds(77))
    }

    @Test func theRestOfAnAnsweredRequestIsDroppedUpToTheCapThenTheConnectionCloses() {
        var limits = Self.limits
        limits.maxDiscardBytes = 10
        var machine = Machine(limits: limits, now: Self.t0)
        machine.requestStarted(now: Self.t0)
        #expect(machine.exchangeEnded(keepAlive: true, now: Self.t0) == .discard)
        guard case .drop = machine.bodyReceived(Self.bytes("123456"), now: Self.t0, maxReadBytes: 100) else { Issue.record("not dropped"); return }
        guard case .drop = machine.bodyReceived(Self.bytes("7890"), now: Self.t0, maxReadBytes: 100) else { Issue.record("not dropped"); return }
        guard case .close = machine.bodyReceived(Self.bytes("x"), now: Self.t0, maxReadBytes: 100) else { Issue.record("not closed"); return }
        #expect(machine.isClosed)
    }

    @Test func anExchangeEndedWithoutKeepAliveClosesTheConnection() {
        var machine = Machine(limits: Self.limits, now: Self.t0)
        machine.requestStarted(now: Self.t0)
        _ = machine.requestEndReceived(now: Self.t0)
        #expect(machine.exchangeEnded(keepAlive: false, now: Self.t0) == .close)
        #expect(machine.isClosed)
        #expect(machine.nextDeadline == nil)
    }

    @Test func cuttingAnExchangeShortSaysWhatToUndoInEachWait() {
        let connection = Conn()
        func undo(_ enter: (inout Machine) -> Void) -> Machine.Abandon {
            var machine = Machine(limits: Self.limits, now: Self.t0)
            machine.requestStarted(now: Self.t0)
            enter(&machine)
            let undo = machine.abandon()
            // Once only.
            if case .none = machine.abandon() {} else { Issue.record("abandoned twice") }
            return undo
        }
        guard case .leaveQueue(3) = undo({ $0.queued(Self.head(), ticket: 3, now: Self.t0, deadline: Self.t0 + .seconds(1)) }) else {
            Issue.record("queue not left"); return
        }
        guard case .leaveBatch(4, [1, 2]) = undo({ $0.joinedBatch(Self.head(), body: ByteBuffer(), ticket: 4, key: [1, 2]) }) else {
            Issue.record("batch not left"); return
        }
        guard case .cancelConnect = undo({ $0.connecting(until: Self.t0) }) else { Issue.record("connect not cancelled"); return }
        guard case .discard(let closed) = undo({
            _ = $0.attached(connection, now: Self.t0, responseHeaderTimeout: .seconds(1), idleTimeout: .seconds(1))
        }), closed === connection else { Issue.record("connection not discarded"); return }
        guard case .none = undo({ $0.read(Self.head(), into: ByteBuffer()) }) else { Issue.record("nothing to undo expected"); return }
    }

    @Test func aBatchOutcomeIsTakenOnlyWhileTheRequestWaitsInTheBatch() {
        var machine = Machine(limits: Self.limits, now: Self.t0)
        machine.requestStarted(now: Self.t0)
        #expect(machine.batchAnswered() == nil)
        machine.joinedBatch(Self.head(), body: Self.bytes("{}"), ticket: 1, key: [0])
        #expect(machine.batchAnswered().map { String(buffer: $0.1) } == "{}")
        #expect(machine.batchAnswered() == nil)
    }

    /// Over 20,000 random events on a random clock, a deadline has passed exactly when the
    /// earliest one says so: the handler's timer, armed for `nextDeadline`, never fires to find
    /// nothing due (which would re-arm at once and spin) nor sleeps past one that is.
    @Test func whatHasExpiredAgreesWithTheNextDeadlineWhateverHappened() {
        var random = SplitMix64(seed: 0x5EED)
        var now = Self.t0
        let limits = Machine.Limits(clientTimeout: .seconds(3), keepaliveTimeout: .seconds(5), bodyTimeout: .seconds(4), minBodyRate: 2)
        var machine = Machine(limits: limits, now: now)
        let connection = Conn()
        for step in 0..<20_000 {
            now = now + .milliseconds(Int64(random.next() % 4_000))
            switch random.next() % 17 {
            case 0: if machine.isIdle { machine.requestStarted(now: now) }
            case 1: machine.read(Self.head(), into: ByteBuffer())
            case 2: _ = machine.bodyReceived(Self.bytes("x"), now: now, maxReadBytes: 64)
            case 3: _ = machine.requestEndReceived(now: now)
            case 4: machine.joinedBatch(Self.head(), body: ByteBuffer(), ticket: 1, key: [])
            case 5: _ = machine.batchAnswered()
            case 6: machine.queued(Self.head(), ticket: 2, now: now, deadline: now + .milliseconds(Int64(random.next() % 6_000)))
            case 7: _ = machine.slotArrived(now: now)
            case 8: machine.connecting(until: now + .milliseconds(Int64(random.next() % 6_000)))
            case 9: _ = machine.attached(connection, now: now, responseHeaderTimeout: .seconds(4), idleTimeout: .seconds(2))
            case 10: machine.responseStarted(now: now)
            case 11: machine.responseBytes(now: now)
            case 12: _ = machine.exchangeEnded(keepAlive: random.next() % 4 != 0, now: now)
            case 13: _ = machine.abandon()
            case 14: machine.readsPaused(now: now)
            case 15: machine.readsResumed(now: now)
            default: if random.next() % 50 == 0 { machine = Machine(limits: machine.limits, now: now) }
            }
            guard let deadline = machine.nextDeadline else {
                #expect(machine.expired(now: now + .seconds(1_000)) == nil, "step \(step): nothing is timed, yet something expires")
                continue
            }
            #expect(machine.expired(now: max(deadline, now)) != nil, "step \(step): the timer would fire to find nothing due")
            if deadline > now {
                #expect(machine.expired(now: deadline - .nanoseconds(1)) == nil, "step \(step): expired before the next deadline")
            }
        }
    }

    // MARK: The body's pace (`min_body_rate`)

    static let paced = Machine.Limits(clientTimeout: .seconds(60), keepaliveTimeout: .seconds(75), bodyTimeout: .seconds(10), minBodyRate: 100)

    @Test func aBodyDrippedSlowerThanTheMinimumRateIsCutThoughTheClientIsNeverSilentForLong() {
        var machine = Machine(limits: Self.paced, now: Self.t0)
        let connection = Conn()
        machine.requestStarted(now: Self.t0)
        _ = machine.attached(connection, now: Self.t0, responseHeaderTimeout: .seconds(60), idleTimeout: .seconds(60))
        // A byte every 2 s: never 60 s of silence, but each byte buys only 10 ms.
        for second in [2, 4, 6, 8] {
            guard case .write = machine.bodyReceived(Self.bytes("x"), now: Self.t0 + .seconds(Int64(second)), maxReadBytes: 0) else {
                Issue.record("not written"); return
            }
        }
        let due = Self.t0 + .seconds(10) + .milliseconds(40)
        #expect(machine.nextDeadline == due)
        #expect(machine.expired(now: due - .nanoseconds(1)) == nil)
        #expect(machine.expired(now: due) == .slowBody)
    }

    @Test func aBodyAtTheMinimumRateIsNeverCut() {
        var machine = Machine(limits: Self.paced, now: Self.t0)
        let connection = Conn()
        machine.requestStarted(now: Self.t0)
        _ = machine.attached(connection, now: Self.t0, responseHeaderTimeout: .seconds(60), idleTimeout: .seconds(60))
        let second = ByteBuffer(repeating: 0x78, count: 100)
        for elapsed in 1...600 {
            let now = Self.t0 + .seconds(Int64(elapsed))
            _ = machine.bodyReceived(second, now: now, maxReadBytes: 0)
            #expect(machine.expired(now: now + .milliseconds(999)) == nil)
        }
    }

    @Test func whileTheGatewayStopsReadingNeitherSilenceNorPaceIsTheClients() {
        var machine = Machine(limits: Self.paced, now: Self.t0)
        let connection = Conn()
        machine.requestStarted(now: Self.t0)
        _ = machine.attached(connection, now: Self.t0, responseHeaderTimeout: .seconds(60), idleTimeout: .seconds(60))
        machine.readsPaused(now: Self.t0 + .seconds(5))
        #expect(machine.nextDeadline == nil)
        #expect(machine.expired(now: Self.t0 + .seconds(500)) == nil)
        machine.readsResumed(now: Self.t0 + .seconds(50))
        // The 45 s pause moves the pace's deadline by 45 s; the silence is timed from the resume.
        #expect(machine.nextDeadline == Self.t0 + .seconds(55))
        #expect(machine.expired(now: Self.t0 + .seconds(55)) == .slowBody)
    }

    @Test func aQueuesWaitIsGivenBackToTheBodysPace() {
        var machine = Machine(limits: Self.paced, now: Self.t0)
        machine.requestStarted(now: Self.t0)
        machine.queued(Self.head(), ticket: 1, now: Self.t0 + .seconds(1), deadline: Self.t0 + .seconds(60))
        _ = machine.slotArrived(now: Self.t0 + .seconds(30))
        machine.connecting(until: Self.t0 + .seconds(90))
        #expect(machine.nextDeadline == Self.t0 + .seconds(39))
        #expect(machine.expired(now: Self.t0 + .seconds(39)) == .slowBody)
    }
}
