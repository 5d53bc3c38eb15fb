import NIOCore
import SluiceHTTP1

/// Where one client connection stands with its current request, and what each event means
/// there: a body part, the request's end, the replica's answer, the gateway's own answer, the
/// client leaving, a timer. Pure (SwiftNIO's and AsyncHTTPClient's `*StateMachine` pattern):
/// each phase carries its own data, events return what `ProxyServerHandler` must do, and time
/// comes in as an argument, so every timeout is tested on a manual clock.
///
/// Where a request goes (admission, pool, replica, batch) is decided by the policies; this type
/// only knows which wait the request is in and what ends it.
struct ExchangeStateMachine<Connection: AnyObject> {
    enum Phase {
        /// No request in progress since `since`.
        case idle(since: NIODeadline)
        /// The gateway is deciding, or waits for the shared limits backend; the rest of the
        /// request stays unparsed meanwhile.
        case admitting
        /// The body is held, to be read before the request goes on. (The phases that hold a head
        /// are boxed, so moving between the others copies a few words, not a head.)
        indirect case reading(HTTP1Head, body: ByteBuffer)
        /// Read whole and waiting in a batch for its share of the answer.
        indirect case batching(HTTP1Head, body: ByteBuffer, ticket: UInt64, key: [UInt8])
        /// Waiting in the pool's queue for a replica slot.
        indirect case queued(HTTP1Head, ticket: UInt64, since: NIODeadline, deadline: NIODeadline)
        /// Waiting for a connection to the chosen replica.
        case connecting(deadline: NIODeadline)
        /// Talking to the replica.
        case upstream(Connection, Upstream)
        /// Answered early (at `since`); the rest of the request is read and dropped, within
        /// the keep-alive timeout and up to `left` more bytes.
        case discarding(since: NIODeadline, left: Int)
        case closed
    }

    /// The upstream side's progress and how long it may be silent.
    struct Upstream {
        var responseHeaderTimeout: TimeAmount
        var idleTimeout: TimeAmount
        /// The request's end was written: the answer's head is due by this instant.
        var headDue: NIODeadline?
        /// The answer started: the replica's last byte, for the idle timeout.
        var lastByte: NIODeadline?
    }

    /// Connection-wide limits, from the `limits` section.
    struct Limits {
        var clientTimeout: TimeAmount
        var keepaliveTimeout: TimeAmount
        /// The body's pace (Apache's `mod_reqtimeout` rule): all of it within `bodyTimeout` of
        /// the head, plus a second per `minBodyRate` bytes received; 0 turns it off.
        var bodyTimeout: TimeAmount = .seconds(60)
        var minBodyRate = 0
        /// What is read and dropped of a request answered before its end; past it the
        /// connection is closed (nginx's `lingering_close` spends its time limit the same way).
        var maxDiscardBytes = 1 << 20
    }

    private(set) var phase: Phase
    let limits: Limits
    /// The client has sent the request's end.
    private(set) var requestEnded = false
    /// A response head has been written to (or staged for) the client.
    private(set) var responseStarted = false
    /// Last byte from the client while its request is incomplete.
    private(set) var lastClientByte: NIODeadline
    /// By when the body received so far had to have come, at `minBodyRate` (see `Limits`).
    private(set) var bodyDue: NIODeadline
    /// The gateway stopped reading the client (the replica cannot take more): neither its
    /// silence nor its pace is timed meanwhile.
    private(set) var pausedSince: NIODeadline?

    init(limits: Limits, now: NIODeadline) {
        self.limits = limits
        self.phase = .idle(since: now)
        self.lastClientByte = now
        self.bodyDue = now
    }

    var isIdle: Bool {
        if case .idle = phase { return true }
        return false
    }

    var isClosed: Bool {
        if case .closed = phase { return true }
        return false
    }

    var isAdmitting: Bool {
        if case .admitting = phase { return true }
        return false
    }

    /// The replica connection the request is on, if any.
    var connection: Connection? {
        if case .upstream(let connection, _) = phase { return connection }
        return nil
    }

    /// Whether body parts wait for a connection (queued for a slot, or connecting).
    var isWaitingForUpstream: Bool {
        switch phase {
        case .queued, .connecting: true
        default: false
        }
    }

    // MARK: The request

    /// A request head arrived on an idle connection: the gateway decides what comes next.
    mutating func requestStarted(now: NIODeadline) {
        phase = .admitting
        requestEnded = false
        responseStarted = false
        lastClientByte = now
        bodyDue = now + limits.bodyTimeout
        pausedSince = nil
    }

    /// The gateway stopped reading the client mid-request (the replica cannot take more).
    mutating func readsPaused(now: NIODeadline) {
        guard !requestEnded, pausedSince == nil else { return }
        switch phase {
        case .upstream, .connecting, .reading: pausedSince = now
        // (A queue's wait is given back when the slot arrives.)
        default: break
        }
    }

    /// Reading resumed: the pause is not the client's, so its deadlines move by it.
    mutating func readsResumed(now: NIODeadline) {
        guard let since = pausedSince else { return }
        pausedSince = nil
        bodyDue = bodyDue + (now - since)
        lastClientByte = max(lastClientByte, now)
    }

    /// A body part of `bytes` arrived: the client's pace allows it `bytes / minBodyRate` more.
    private mutating func bodyArrived(_ bytes: Int, now: NIODeadline) {
        lastClientByte = now
        guard limits.minBodyRate > 0 else { return }
        bodyDue = bodyDue + .nanoseconds(Int64(min(bytes, 1 << 40)) * 1_000_000_000 / Int64(limits.minBodyRate))
    }

    /// Hold the body before the request goes on.
    mutating func read(_ head: HTTP1Head, into body: ByteBuffer) {
        phase = .reading(head, body: body)
    }

    enum BodyAction {
        /// Held for reading (done).
        case held
        /// Over what may be held for reading.
        case tooLargeToRead
        /// Write it to the replica.
        case write(Connection)
        /// Keep it until a connection is ready.
        case pend
        /// Not for anyone: the request was answered, or its body is not read now.
        case drop
        /// The rest of an answered request is more than is worth reading: close.
        case close
    }

    /// A part of the request body arrived.
    mutating func bodyReceived(_ part: ByteBuffer, now: NIODeadline, maxReadBytes: Int) -> BodyAction {
        switch phase {
        case .reading(let head, var body):
            bodyArrived(part.readableBytes, now: now)
            guard body.readableBytes + part.readableBytes <= maxReadBytes else { return .tooLargeToRead }
            phase = .admitting  // (so `body` is not shared while it grows)
            var part = part
            body.writeBuffer(&part)
            phase = .reading(head, body: body)
            return .held
        case .upstream(let connection, _):
            bodyArrived(part.readableBytes, now: now)
            return .write(connection)
        case .queued, .connecting:
            bodyArrived(part.readableBytes, now: now)
            return .pend
        case .discarding(let since, let left):
            guard part.readableBytes <= left else {
                phase = .closed
                return .close
            }
            phase = .discarding(since: since, left: left - part.readableBytes)
            return .drop
        case .idle, .admitting, .batching, .closed:
            return .drop
        }
    }

    enum EndAction {
        case none
        /// The body held for reading is complete: read it and decide.
        case decide(HTTP1Head, body: ByteBuffer)
        /// The request is all written: flush it (the answer's head is now timed).
        case sent(Connection)
        /// The rest of an answered request is read: the connection is idle again.
        case idle
    }

    /// The request's last byte arrived.
    mutating func requestEndReceived(now: NIODeadline) -> EndAction {
        requestEnded = true
        switch phase {
        case .reading(let head, let body):
            phase = .admitting
            return .decide(head, body: body)
        case .upstream(let connection, var upstream):
            if upstream.lastByte == nil { upstream.headDue = now + upstream.responseHeaderTimeout }
            phase = .upstream(connection, upstream)
            return .sent(connection)
        case .discarding:
            phase = .idle(since: now)
            return .idle
        case .idle, .admitting, .batching, .queued, .connecting, .closed:
            return .none
        }
    }

    // MARK: Waits

    /// The request joined a batch.
    mutating func joinedBatch(_ head: HTTP1Head, body: ByteBuffer, ticket: UInt64, key: [UInt8]) {
        phase = .batching(head, body: body, ticket: ticket, key: key)
    }

    /// The batch's outcome arrived: the held head and body when the request still waits for it
    /// (the handler then answers or sends it alone), else nil. (A request joins a batch once at most.)
    mutating func batchAnswered() -> (HTTP1Head, ByteBuffer)? {
        guard case .batching(let head, let body, _, _) = phase else { return nil }
        phase = .admitting
        return (head, body)
    }

    /// The request waits in the pool's queue until `deadline`.
    mutating func queued(_ head: HTTP1Head, ticket: UInt64, now: NIODeadline, deadline: NIODeadline) {
        phase = .queued(head, ticket: ticket, since: now, deadline: deadline)
    }

    /// A slot arrived: the held head and when the wait began, when the request still waits for
    /// one (else the slot must go back). (A request waits in a queue once at most.)
    mutating func slotArrived(now: NIODeadline) -> (HTTP1Head, since: NIODeadline)? {
        guard case .queued(let head, _, let since, _) = phase else { return nil }
        phase = .admitting
        // The client's silence is timed again from here, and its pace is given the wait (it
        // was the gateway's, and a client expecting 100-continue sends nothing meanwhile).
        lastClientByte = now
        bodyDue = bodyDue + (now - since)
        return (head, since)
    }

    /// The request waits for a connection until `deadline`.
    mutating func connecting(until deadline: NIODeadline) {
        phase = .connecting(deadline: deadline)
    }

    /// A connection is ready: returns whether the request is all here (then its answer is timed).
    mutating func attached(_ connection: Connection, now: NIODeadline, responseHeaderTimeout: TimeAmount, idleTimeout: TimeAmount) -> Bool {
        var upstream = Upstream(responseHeaderTimeout: responseHeaderTimeout, idleTimeout: idleTimeout)
        if requestEnded { upstream.headDue = now + responseHeaderTimeout }
        phase = .upstream(connection, upstream)
        return requestEnded
    }

    // MARK: The answer

    /// The replica's answer began.
    mutating func responseStarted(now: NIODeadline) {
        responseStarted = true
        guard case .upstream(let connection, var upstream) = phase else { return }
        upstream.headDue = nil
        upstream.lastByte = now
        phase = .upstream(connection, upstream)
    }

    /// Bytes of the replica's answer arrived.
    mutating func responseBytes(now: NIODeadline) {
        guard case .upstream(let connection, var upstream) = phase else { return }
        upstream.lastByte = now
        phase = .upstream(connection, upstream)
    }

    /// The answer's head was held and never written (a stream whose replica failed before its
    /// first event): as far as the client knows nothing was answered, so the exchange may still
    /// be answered, or the request sent again.
    mutating func responseUnsent() {
        responseStarted = false
    }

    enum After {
        /// Idle: the next request may be parsed.
        case idle
        /// The rest of the request is read and dropped first.
        case discard
        case close
    }

    /// The exchange is over (the replica's answer ended, or the gateway answered): what the
    /// connection does next.
    mutating func exchangeEnded(keepAlive: Bool, now: NIODeadline) -> After {
        if !keepAlive {
            phase = .closed
            return .close
        }
        if requestEnded {
            phase = .idle(since: now)
            return .idle
        }
        phase = .discarding(since: now, left: limits.maxDiscardBytes)
        return .discard
    }

    /// What is left to undo on the upstream side when an exchange is cut short.
    enum Abandon {
        case none
        case leaveQueue(ticket: UInt64)
        case leaveBatch(ticket: UInt64, key: [UInt8])
        /// Stop waiting for a connection.
        case cancelConnect
        /// Close the replica connection (its state is unknown).
        case discard(Connection)
    }

    /// Leaves the current wait (the exchange is being answered or cut) and says what to undo.
    /// The phase is `admitting` afterwards, until `exchangeEnded` or `closed`.
    mutating func abandon() -> Abandon {
        let undo: Abandon
        switch phase {
        case .queued(_, let ticket, _, _): undo = .leaveQueue(ticket: ticket)
        case .batching(_, _, let ticket, let key): undo = .leaveBatch(ticket: ticket, key: key)
        case .connecting: undo = .cancelConnect
        case .upstream(let connection, _): undo = .discard(connection)
        case .idle, .admitting, .reading, .discarding, .closed: return .none
        }
        phase = .admitting
        return undo
    }

    /// The connection is closed (or closing): nothing more happens on it.
    mutating func closed() {
        phase = .closed
    }
}
