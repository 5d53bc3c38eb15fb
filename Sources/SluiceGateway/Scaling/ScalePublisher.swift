import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Prometheus
import SluiceConfig
import SluiceCore

/// Tells people and systems when a pool's desired replica count changes: a log line always,
/// and `publish.webhook` when configured (plain JSON, or `{"text": ...}` for Slack and
/// Mattermost). Delivery never blocks the data path or the ticker: it runs on an event loop,
/// is retried (1 s, 2 s, 4 s; 2 s timeout each) and gives up when a newer decision for the
/// same pool supersedes it.
final class ScalePublisher: Sendable {
    private let webhook: PublishConfiguration.Webhook?
    private let group: any EventLoopGroup
    private let logger: Logger
    private let generations = NIOLockedValueBox<[String: Int]>([:])
    private let delivered: Counter
    private let failed: Counter

    init(_ configuration: PublishConfiguration, group: any EventLoopGroup, logger: Logger, metrics: GatewayMetrics) {
        webhook = configuration.webhook
        self.group = group
        self.logger = logger
        let descriptor = MetricNameDescriptor.sluice("sluice_scale_webhook_total", "Scale-decision webhook deliveries, by result.")
        delivered = metrics.registry.makeCounter(descriptor: descriptor, labels: [("result", "delivered")])
        failed = metrics.registry.makeCounter(descriptor: descriptor, labels: [("result", "failed")])
    }

    func publish(_ published: PoolScaling.Published) {
        let decision = published.decision
        logger.info(
            "scale decision for pool \(published.pool): \(decision.current) → \(decision.desired) replicas",
            metadata: ["pool": "\(published.pool)", "mode": "\(decision.mode.rawValue)", "reason": "\(decision.reason)"])
        guard let webhook else { return }
        let generation = generations.withLockedValue { generations -> Int in
            generations[published.pool, default: 0] += 1
            return generations[published.pool]!
        }
        let body: String
        switch webhook.format {
        case .json:
            body = ScaleView.json(published)
        case .slack:
            let text = "Sluice pool *\(published.pool)*: \(decision.current) → \(decision.desired) replicas (\(decision.mode.rawValue)). \(decision.reason)"
            body = "{\"text\":\(jsonString(text))}"
        }
        deliver(body, to: webhook, pool: published.pool, generation: generation, attempt: 0)
    }

    private func deliver(_ body: String, to webhook: PublishConfiguration.Webhook, pool: String, generation: Int, attempt: Int) {
        let loop = group.next()
        WebhookPost.send(body, to: webhook, on: loop, timeout: .seconds(2)).whenComplete { result in
            if case .success(let status) = result, (200..<300).contains(status) {
                self.delivered.increment()
                return
            }
            let current = self.generations.withLockedValue { $0[pool] ?? 0 }
            guard attempt < 3, current == generation else {
                self.failed.increment()
                self.logger.warning("scale webhook for pool \(pool) not delivered", metadata: ["result": "\(result)"])
                return
            }
            loop.scheduleTask(in: .seconds(1 << Int64(attempt))) {
                self.deliver(body, to: webhook, pool: pool, generation: generation, attempt: attempt + 1)
            }
        }
    }
}

/// One HTTP/1.1 POST; the future holds the response's status code.
enum WebhookPost {
    static func send(
        _ body: String, to webhook: PublishConfiguration.Webhook, on loop: any EventLoop, timeout: TimeAmount
    ) -> EventLoopFuture<Int> {
        let promise = loop.makePromise(of: Int.self)
        let request = "POST \(webhook.path) HTTP/1.1\r\nhost: \(webhook.host):\(webhook.port)\r\ncontent-type: application/json\r\n"
            + "content-length: \(body.utf8.count)\r\nconnection: close\r\nuser-agent: sluice\r\n\r\n" + body
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(StatusReader(promise: promise)) }
            }
            .connect(host: webhook.host, port: webhook.port)
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    promise.fail(error)
                case .success(let channel):
                    channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
                    let deadline = loop.scheduleTask(in: timeout) { channel.close(promise: nil) }
                    promise.futureResult.whenComplete { _ in
                        deadline.cancel()
                        channel.close(promise: nil)
                    }
                }
            }
        return promise.futureResult
    }

    /// Reads the status line, then lets go.
    private final class StatusReader: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<Int>
        var text = ""
        var done = false

        init(promise: EventLoopPromise<Int>) {
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !done else { return }
            text += String(buffer: unwrapInboundIn(data))
            guard let end = text.range(of: "\r\n") else {
                if text.utf8.count > 8_192 { finish(.failure(ChannelError.inputClosed)) }
                return
            }
            let parts = text[..<end.lowerBound].split(separator: " ")
            if parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) {
                finish(.success(status))
            } else {
                finish(.failure(ChannelError.inputClosed))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            finish(.failure(ChannelError.inputClosed))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            finish(.failure(error))
            context.close(promise: nil)
        }

        private func finish(_ result: Result<Int, any Error>) {
            guard !done else { return }
            done = true
            promise.completeWith(result)
        }
    }
}
