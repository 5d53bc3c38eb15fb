import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceSimulation

/// One event loop's share of a load run: its own keep-alive connections to the target, its own
/// recorder. Every method runs on `loop`; nothing is shared with other workers.
final class LoadWorker: @unchecked Sendable {
    let loop: any EventLoop
    private let target: SocketAddress
    private let host: String
    private let maxConnections: Int
    private let timeout: TimeAmount
    private let origin: NIODeadline
    var recorder = LoadRecorder()
    private var idle: [LoadConnection] = []
    private var open = 0
    private var waiting = CircularBuffer<(PlannedRequest, NIODeadline)>()
    /// Requests sent and not yet finished (answered, failed or timed out).
    private(set) var outstanding = 0

    init(loop: any EventLoop, target: SocketAddress, host: String, maxConnections: Int, timeout: TimeAmount, origin: NIODeadline) {
        self.loop = loop
        self.target = target
        self.host = host
        self.maxConnections = max(1, maxConnections)
        self.timeout = timeout
        self.origin = origin
    }

    func second(of deadline: NIODeadline) -> Int {
        max(0, Int((deadline.uptimeNanoseconds &- origin.uptimeNanoseconds) / 1_000_000_000))
    }

    /// Sends `request`, intended at `intended`, on an idle connection, a new one, or (at the
    /// connection limit) the next one to come free; the wait counts as latency.
    func send(_ request: PlannedRequest, intended: NIODeadline) {
        let now = NIODeadline.now()
        outstanding += 1
        recorder.recordSent(second: second(of: intended), latenessNanos: (now - intended).nanoseconds, workload: request.workload)
        if let connection = idle.popLast() {
            connection.start(request, intended: intended)
        } else if open < maxConnections {
            connect(then: (request, intended))
        } else {
            recorder.waitedForConnection += 1
            waiting.append((request, intended))
        }
    }

    /// Requests whose connection is being opened, by connect number.
    private var connecting: [Int: (PlannedRequest, NIODeadline)] = [:]
    private var connectCount = 0
    /// Set at the end of a run: nothing more is sent.
    private var isClosed = false

    private func expired(_ request: (PlannedRequest, NIODeadline), at now: NIODeadline) -> Bool {
        now >= request.1 + timeout
    }

    private func connect(then first: (PlannedRequest, NIODeadline)) {
        open += 1
        recorder.connectionsOpened += 1
        connectCount += 1
        let number = connectCount
        connecting[number] = first
        let worker = self
        ClientBootstrap(group: loop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(LoadConnection(worker: worker))
                }
            }
            .connect(to: target)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    // The request was failed already if the run ended while connecting.
                    guard let request = worker.connecting.removeValue(forKey: number), !worker.isClosed,
                          let connection = try? channel.pipeline.syncOperations.handler(type: LoadConnection.self)
                    else {
                        channel.close(promise: nil)  // (its close frees the slot)
                        return
                    }
                    if worker.expired(request, at: .now()) {
                        worker.fail(request, reason: "timeout")
                        worker.recycle(connection)
                    } else {
                        connection.start(request.0, intended: request.1)
                    }
                case .failure:
                    worker.open -= 1
                    if let request = worker.connecting.removeValue(forKey: number) {
                        worker.fail(request, reason: "connect")
                    }
                    worker.drainWaiting()
                }
            }
    }

    func fail(_ request: (PlannedRequest, NIODeadline), reason: String) {
        outstanding -= 1
        let now = NIODeadline.now()
        recorder.recordFailed(second: second(of: request.1), reason: reason, latencyNanos: (now - request.1).nanoseconds)
    }

    /// A response ended on `connection`; it may carry the next request.
    func finished(_ connection: LoadConnection, reusable: Bool) {
        outstanding -= 1
        if reusable {
            recycle(connection)
        } else {
            connection.close()
        }
    }

    /// Gives a free connection the next waiting request still worth sending (one that waited
    /// past its timeout fails as a timeout, unsent), or keeps it idle.
    func recycle(_ connection: LoadConnection) {
        guard !isClosed else {
            connection.close()
            return
        }
        let now = NIODeadline.now()
        while let next = waiting.popFirst() {
            if expired(next, at: now) {
                fail(next, reason: "timeout")
                continue
            }
            connection.start(next.0, intended: next.1)
            return
        }
        idle.append(connection)
    }

    /// A connection closed: its slot is free for a waiting request.
    func connectionLost(reusableSlot: Bool) {
        open -= 1
        idle.removeAll { !$0.isOpen }
        drainWaiting()
    }

    private func drainWaiting() {
        guard !isClosed else { return }
        let now = NIODeadline.now()
        while open < maxConnections, let next = waiting.popFirst() {
            if expired(next, at: now) {
                fail(next, reason: "timeout")
                continue
            }
            connect(then: next)
        }
    }

    /// Connections carrying a request now.
    private var busy: [ObjectIdentifier: LoadConnection] = [:]

    func began(_ connection: LoadConnection) {
        busy[ObjectIdentifier(connection)] = connection
    }

    func ended(_ connection: LoadConnection) {
        busy[ObjectIdentifier(connection)] = nil
    }

    /// At the end of a run: requests still in flight, connecting or waiting are counted as
    /// failed ("stopped"), so sent = completed + failed holds, and every connection is closed.
    func closeAll() {
        isClosed = true
        while let next = waiting.popFirst() { fail(next, reason: "stopped") }
        for request in connecting.values { fail(request, reason: "stopped") }
        connecting.removeAll()
        for connection in busy.values { connection.abandon() }
        busy.removeAll()
        let connections = idle
        idle.removeAll()
        for connection in connections { connection.close() }
    }

    var requestTimeout: TimeAmount { timeout }
    var hostHeader: String { host }
}

/// One keep-alive connection of the load generator: one request at a time.
final class LoadConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// Strong: a connection may report after the run ends (its close); `LoadWorker.closeAll`
    /// breaks the cycle through `idle`.
    private let worker: LoadWorker
    private var context: ChannelHandlerContext?
    private var current: (request: PlannedRequest, intended: NIODeadline)?
    private var status = 0
    private var replica: String?
    private var keepAlive = true
    private var firstData: NIODeadline?
    private var lastData: NIODeadline?
    private var timer: Scheduled<Void>?
    private(set) var isOpen = true

    init(worker: LoadWorker) {
        self.worker = worker
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func start(_ request: PlannedRequest, intended: NIODeadline) {
        guard let context, isOpen else {
            worker.fail((request, intended), reason: "closed")
            return
        }
        current = (request, intended)
        worker.began(self)
        status = 0
        replica = nil
        firstData = nil
        lastData = nil
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: request.path)
        head.headers.reserveCapacity(request.headers.count + 2)
        head.headers.add(name: "host", value: worker.hostHeader)
        for (name, value) in request.headers { head.headers.add(name: name, value: value) }
        let body = context.channel.allocator.buffer(string: request.body)
        head.headers.add(name: "content-length", value: String(body.readableBytes))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: intended + worker.requestTimeout) {
            loopBound.value.timedOut()
        }
    }

    /// The run ended with this request unanswered.
    func abandon() {
        guard let current else { return }
        self.current = nil
        timer?.cancel()
        worker.fail(current, reason: "stopped")
        close()
    }

    private func timedOut() {
        guard let current else { return }
        self.current = nil
        worker.ended(self)
        worker.fail(current, reason: "timeout")
        close()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let current else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            replica = head.headers.first(name: "x-replica-id")
            keepAlive = head.isKeepAlive
        case .body:
            let now = NIODeadline.now()
            if current.request.stream, status < 400 {
                if firstData == nil {
                    firstData = now
                } else if let lastData {
                    worker.recorder.recordInterToken(second: worker.second(of: current.intended), nanoseconds: (now - lastData).nanoseconds)
                }
                lastData = now
            }
        case .end:
            timer?.cancel()
            self.current = nil
            worker.ended(self)
            let now = NIODeadline.now()
            worker.recorder.recordCompleted(
                second: worker.second(of: current.intended), status: status,
                latencyNanos: (now - current.intended).nanoseconds,
                ttftNanos: firstData.map { ($0 - current.intended).nanoseconds }, replica: replica)
            worker.finished(self, reusable: keepAlive)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        isOpen = false
        timer?.cancel()
        if let current {
            self.current = nil
            worker.ended(self)
            worker.fail(current, reason: status == 0 ? "closed" : "truncated")
        }
        worker.connectionLost(reusableSlot: true)
        context.fireChannelInactive()
    }

    func close() {
        context?.close(promise: nil)
    }
}
