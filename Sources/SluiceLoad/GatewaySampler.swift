import Foundation
import NIOCore
import NIOPosix

/// Reads the gateway's `/readyz` once a second during a run (it needs no token), so the report
/// can show how many replicas each pool had in rotation over time, its requests in progress and
/// its wait queue (depth, and what became of the requests that waited). Scale decisions join these
/// samples once the gateway publishes them (`/admin/scale`, the scaling issue).
struct GatewaySampler: Sendable {
    let host: String
    let port: Int
    let group: any EventLoopGroup

    init?(adminURL: String, group: any EventLoopGroup) {
        guard let (host, port) = LoadRunner.parseTarget(adminURL) else { return nil }
        self.host = host
        self.port = port
        self.group = group
    }

    /// One sample: each pool's replicas and how many are in rotation; nil if the gateway did not
    /// answer within a second.
    func sample() async -> [String: LoadReport.PoolSample]? {
        guard let address = try? SocketAddress.makeAddressResolvingHost(host, port: port) else { return nil }
        let collector = ResponseCollector()
        let request = "GET /readyz HTTP/1.1\r\nhost: \(host):\(port)\r\nconnection: close\r\n\r\n"
        let channel = try? await ClientBootstrap(group: group)
            .connectTimeout(.seconds(1))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(to: address).get()
        guard let channel else {
            collector.done.fail(ChannelError.connectTimeout(.seconds(1)))
            return nil
        }
        channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
        channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        guard let text = try? await collector.done.futureResult.get(),
              let split = text.range(of: "\r\n\r\n"),
              let object = try? JSONSerialization.jsonObject(with: Data(text[split.upperBound...].utf8)) as? [String: Any],
              let pools = object["pools"] as? [String: [String: Any]]
        else { return nil }
        return pools.compactMapValues { pool in
            guard let replicas = pool["replicas"] as? Int, let available = pool["available"] as? Int else { return nil }
            var sample = LoadReport.PoolSample(
                replicas: replicas, available: available, inFlight: pool["in_flight"] as? Int, queued: pool["queued"] as? Int,
                queueDispatched: pool["queue_dispatched"] as? Int, queueFull: pool["queue_full"] as? Int,
                queueTimeout: pool["queue_timeout"] as? Int)
            sample.desired = pool["desired"] as? Int
            sample.p95Ms = pool["p95_ms"] as? Double
            sample.targetMs = pool["target_ms"] as? Double
            return sample
        }
    }
}

/// Collects a whole response until the server closes.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let done: EventLoopPromise<String>
    private var text = ""

    init() {
        done = MultiThreadedEventLoopGroup.singleton.any().makePromise()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        text += String(buffer: unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.succeed(text)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
