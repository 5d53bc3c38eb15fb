import NIOCore
import NIOPosix
import SluiceCore

/// `routing.shared: redis://host:port` on a cache-aware pool: gateway instances tell each other
/// where they place and move conversations, through a Redis pub/sub channel
/// (`sluice:placements:<pool>`, messages `<instance> <conversation> <replica>` in hex), and each
/// records what it hears (`CacheAwarePolicy.learn`). So a conversation placed by one instance
/// goes to the same replica from every other, and every instance balances placements over all
/// of them (they count towards each replica's share).
///
/// Why pub/sub and not a lookup per placement: a lookup puts Redis on the request path of the
/// first request every instance sees of every conversation. A conversation's next turn comes
/// after its answer, hundreds of milliseconds later, while a message reaches every subscriber
/// in about a millisecond; so telling is enough, and nothing waits. When Redis is slow or down,
/// each instance places on its own (counted in `sluice_routing_shared_total{event="failed"}`),
/// as it would without `shared`; after a failure, publishing waits a second before it tries
/// Redis again, and the subscription is retried every second. An instance that
/// starts late has not heard earlier placements: a conversation it has not seen is placed by
/// its own counts, and the placement it announces then wins on every instance (last word wins).
///
/// Bound to one event loop; one connection to publish, one to listen.
final class PlacementGossip: @unchecked Sendable {
    let host: String
    let port: Int
    let loop: any EventLoop
    let pool: PoolRuntime
    let policy: CacheAwarePolicy
    /// This process's name on the channel, so it skips its own messages.
    let instance: String
    let timeout: TimeAmount
    private var publisher: RedisConnection?
    private var publisherConnecting: EventLoopFuture<RedisConnection>?
    private var subscriber: (any Channel)?
    private var retry: Scheduled<Void>?
    private var running = false
    /// After a failed publish, Redis is left alone until then (a placement does not become a
    /// connection attempt while it is down).
    private var quietUntil = NIODeadline.uptimeNanoseconds(0)

    var channelName: String { "sluice:placements:\(pool.name)" }

    init(address: ReplicaID, pool: PoolRuntime, policy: CacheAwarePolicy, loop: any EventLoop, instance: String,
         timeout: TimeAmount = .milliseconds(500)) {
        self.host = address.host
        self.port = address.port
        self.pool = pool
        self.policy = policy
        self.loop = loop
        self.instance = instance
        self.timeout = timeout
    }

    func start() {
        loop.execute {
            self.running = true
            self.subscribe()
        }
    }

    func stop() {
        loop.execute {
            self.running = false
            self.retry?.cancel()
            self.subscriber?.close(promise: nil)
            self.subscriber = nil
            self.publisher?.close()
            self.publisher = nil
        }
    }

    /// Tells the other instances that `conversation` now lives on `replica` (from any loop;
    /// never waits).
    func publish(conversation: UInt64, replica: UInt64) {
        let message = "\(instance) \(String(conversation, radix: 16)) \(String(replica, radix: 16))"
        loop.execute {
            guard self.running else { return }
            guard NIODeadline.now() >= self.quietUntil else {
                self.pool.metrics.recordShared(.failed)
                return
            }
            self.connectedPublisher().flatMap { connection in
                connection.send(["PUBLISH", self.channelName, message], timeout: self.timeout)
            }.whenComplete { result in
                switch result {
                case .success: self.pool.metrics.recordShared(.published)
                case .failure:
                    self.pool.metrics.recordShared(.failed)
                    self.publisher?.close()
                    self.publisher = nil
                    self.quietUntil = NIODeadline.now() + .seconds(1)
                }
            }
        }
    }

    /// A message from the channel: another instance's placement.
    func heard(_ payload: String) {
        let fields = payload.split(separator: " ")
        guard fields.count == 3, fields[0] != instance[...],
              let conversation = UInt64(fields[1], radix: 16), let replica = UInt64(fields[2], radix: 16)
        else { return }
        policy.learn(conversation: conversation, replica: replica, now: NIODeadline.now().uptimeNanoseconds)
        pool.metrics.recordShared(.learned)
    }

    private func connectedPublisher() -> EventLoopFuture<RedisConnection> {
        if let publisher, publisher.isActive { return loop.makeSucceededFuture(publisher) }
        if let publisherConnecting { return publisherConnecting }
        let connecting = resolve().flatMap { RedisConnection.connect(to: $0, on: self.loop, timeout: self.timeout) }
        publisherConnecting = connecting
        connecting.whenComplete { result in
            self.publisherConnecting = nil
            guard case .success(let connection) = result else { return }
            if self.running { self.publisher = connection } else { connection.close() }
        }
        return connecting
    }

    private func resolve() -> EventLoopFuture<SocketAddress> {
        do {
            return loop.makeSucceededFuture(try SocketAddress.makeAddressResolvingHost(host, port: port))
        } catch {
            return loop.makeFailedFuture(error)
        }
    }

    /// Connects the listening side and subscribes; on any failure, or when the connection ends,
    /// tries again in a second while running.
    private func subscribe() {
        guard running, subscriber == nil else { return }
        let gossip = self
        resolve().flatMap { address in
            ClientBootstrap(group: self.loop)
                .connectTimeout(self.timeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SubscriptionHandler(gossip: gossip))
                    }
                }
                .connect(to: address)
        }.whenComplete { result in
            switch result {
            case .success(let channel):
                guard self.running else {
                    channel.close(promise: nil)
                    return
                }
                self.subscriber = channel
                var out = channel.allocator.buffer(capacity: 64)
                RESP.write(["SUBSCRIBE", self.channelName], into: &out)
                channel.writeAndFlush(out, promise: nil)
            case .failure:
                self.pool.metrics.recordShared(.failed)
                self.retryLater()
            }
        }
    }

    fileprivate func subscriptionEnded() {
        subscriber = nil
        guard running else { return }
        pool.metrics.recordShared(.failed)
        retryLater()
    }

    private func retryLater() {
        guard running else { return }
        retry = loop.scheduleTask(in: .seconds(1)) { self.subscribe() }
    }
}

/// Reads a subscription's pushes: `["message", channel, payload]` arrays (and the
/// `["subscribe", ...]` confirmation, ignored).
private final class SubscriptionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let gossip: PlacementGossip
    private var reader = RESPReader()

    init(gossip: PlacementGossip) {
        self.gossip = gossip
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reader.append(unwrapInboundIn(data))
        do {
            while let value = try reader.next() {
                if case .array(let items?) = value, items.count == 3, items[0].string == "message", let payload = items[2].string {
                    gossip.heard(payload)
                }
            }
            reader.compact()
        } catch {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        gossip.subscriptionEnded()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
