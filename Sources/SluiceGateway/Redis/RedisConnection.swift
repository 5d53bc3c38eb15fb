import NIOCore
import NIOPosix

/// One connection to Redis, owned by one event loop. Commands are pipelined: each is written
/// at once and its answer matched in order (Redis answers in order), so a decision costs one
/// round trip however many are in flight. Every command has a deadline; past it the command
/// fails with `RedisError.timeout` and the connection is closed (its answers could no longer
/// be matched to their commands).
///
/// Sendable only so futures can carry it: everything but `isActive` runs on the channel's
/// loop (`send` asserts it), where the handler's state lives.
final class RedisConnection: @unchecked Sendable {
    let channel: any Channel
    private let handler: RESPHandler

    private init(channel: any Channel, handler: RESPHandler) {
        self.channel = channel
        self.handler = handler
    }

    static func connect(to address: SocketAddress, on loop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<RedisConnection> {
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RESPHandler())
                }
            }
            .connect(to: address)
            .flatMapThrowing { channel in
                do {
                    let handler = try channel.pipeline.syncOperations.handler(type: RESPHandler.self)
                    return RedisConnection(channel: channel, handler: handler)
                } catch {
                    channel.close(promise: nil)
                    throw error
                }
            }
    }

    var isActive: Bool { channel.isActive }

    /// Sends a command; the future fails on timeout, a closed connection or a Redis error.
    func send(_ arguments: [String], timeout: TimeAmount) -> EventLoopFuture<RESPValue> {
        channel.eventLoop.assertInEventLoop()
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        guard channel.isActive else {
            promise.fail(RedisError.closed)
            return promise.futureResult
        }
        handler.pending.append(promise)
        var out = channel.allocator.buffer(capacity: 64 + arguments.reduce(0) { $0 + $1.utf8.count + 16 })
        RESP.write(arguments, into: &out)
        channel.writeAndFlush(out, promise: nil)
        let deadline = channel.eventLoop.scheduleTask(in: timeout) { [channel] in
            promise.fail(RedisError.timeout)
            channel.close(promise: nil)
        }
        promise.futureResult.whenComplete { _ in deadline.cancel() }
        return promise.futureResult.flatMapThrowing { value in
            if case .error(let message) = value { throw RedisError.server(message) }
            return value
        }
    }

    func close() {
        channel.close(promise: nil)
    }
}

enum RedisError: Error, Equatable, CustomStringConvertible {
    case timeout
    case closed
    case server(String)
    case unexpected(String)

    var description: String {
        switch self {
        case .timeout: "Redis did not answer in time"
        case .closed: "the connection to Redis is closed"
        case .server(let message): "Redis answered an error: \(message)"
        case .unexpected(let what): "Redis answered something unexpected: \(what)"
        }
    }
}

/// Decodes answers and completes the oldest waiting command with each.
final class RESPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    var pending = CircularBuffer<EventLoopPromise<RESPValue>>()
    private var reader = RESPReader()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reader.append(unwrapInboundIn(data))
        do {
            while let value = try reader.next() {
                // An answer nobody waits for (its command timed out) ends the connection: the
                // order that matches answers to commands is lost.
                guard let promise = pending.popFirst() else {
                    context.close(promise: nil)
                    return
                }
                promise.succeed(value)
            }
            reader.compact()
        } catch {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        while let promise = pending.popFirst() { promise.fail(RedisError.closed) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
