import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Prometheus
import ServiceLifecycle
import SluiceConfig
import SluiceCore
import Synchronization

/// Tells people and systems when a pool's desired replica count changes: a log line always,
/// and `publish.webhook` when configured (plain JSON, or `{"text": ...}` for Slack and
/// Mattermost), over http or https. `publish` never blocks the ticker that calls it: it queues
/// the delivery, and the service's `run` sends it, retried (1 s, 2 s, 4 s; 2 s timeout each)
/// until it is delivered or a newer decision for the same pool supersedes it. A gateway that
/// stops abandons the retries still waiting: a newer instance decides afresh.
final class ScalePublisher: Service, Sendable {
    private struct Delivery: Sendable {
        var body: String
        var pool: String
        var generation: Int
    }

    static let attemptTimeout = TimeAmount.seconds(2)
    static let retries = 3

    private let webhook: PublishConfiguration.Webhook?
    /// The webhook's TLS settings (nil: the client's defaults), or why its `ca_file` could not
    /// be used; read once, here.
    private let tls: Result<TLSConfiguration?, any Error>
    private let client: BackgroundHTTPClient
    private let logger: Logger
    private let notify: (@Sendable (String) -> Void)?
    private let generations = Mutex<[String: Int]>([:])
    private let delivered: Counter
    private let failed: Counter
    private let queue: AsyncStream<Delivery>
    private let enqueue: AsyncStream<Delivery>.Continuation

    /// - Parameter notify: also tells the chat room (`ChatNotifier`).
    init(
        _ configuration: PublishConfiguration, client: BackgroundHTTPClient, logger: Logger, metrics: GatewayMetrics,
        notify: (@Sendable (String) -> Void)? = nil
    ) {
        self.notify = notify
        webhook = configuration.webhook
        self.client = client
        self.logger = logger
        let descriptor = MetricNameDescriptor.sluice("sluice_scale_webhook_total", "Scale-decision webhook deliveries, by result.")
        delivered = metrics.registry.makeCounter(descriptor: descriptor, labels: [("result", "delivered")])
        failed = metrics.registry.makeCounter(descriptor: descriptor, labels: [("result", "failed")])
        (queue, enqueue) = AsyncStream.makeStream(of: Delivery.self)
        tls = Result { try configuration.webhook?.caFile.map(Self.trusting) }
        if case .failure(let error) = tls, let caFile = configuration.webhook?.caFile {
            logger.error("publish.webhook.ca_file cannot be used: scale webhooks will fail", metadata: ["file": "\(caFile)", "reason": "\(error)"])
        }
    }

    /// Client TLS that trusts the certificates in `caFile` and nothing else.
    static func trusting(caFile: String) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        return tls
    }

    func publish(_ published: PoolScaling.Published) {
        let decision = published.decision
        logger.info(
            "scale decision for pool \(published.pool): \(decision.current) → \(decision.desired) replicas",
            metadata: ["pool": "\(published.pool)", "mode": "\(decision.mode.rawValue)", "reason": "\(decision.reason)"])
        notify?("Pool \(published.pool): \(decision.current) → \(decision.desired) replicas (\(decision.mode.rawValue)). \(decision.reason)")
        guard let webhook else { return }
        let generation = generations.withLock { generations -> Int in
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
        enqueue.yield(Delivery(body: body, pool: published.pool, generation: generation))
    }

    /// Sends each queued decision, each on its own, until the group shuts down.
    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await delivery in self.queue {
                    group.addTask { await self.deliver(delivery) }
                }
            }
        }
        try? await gracefulShutdown()
    }

    private func deliver(_ delivery: Delivery) async {
        var attempt = 0
        while true {
            let result = await post(delivery.body)
            if case .success(let status) = result, (200..<300).contains(status) {
                delivered.increment()
                return
            }
            let current = generations.withLock { $0[delivery.pool] ?? 0 }
            guard attempt < Self.retries, current == delivery.generation else {
                failed.increment()
                logger.warning("scale webhook for pool \(delivery.pool) not delivered", metadata: ["result": "\(result)"])
                return
            }
            do {
                try await Task.sleep(for: .seconds(1 << attempt))
            } catch {
                return
            }
            attempt += 1
        }
    }

    /// One POST: the answer's status, or why there was none.
    private func post(_ body: String) async -> Result<Int, any Error> {
        guard let webhook else { return .failure(HTTPClientError.invalidURL) }
        do {
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "user-agent", value: "sluice")
            let request = try HTTPClient.Request(
                url: webhook.url, method: .POST, headers: headers, body: .string(body), tlsConfiguration: try tls.get())
            let response = try await client.client().wholeResponse(request, deadline: .now() + Self.attemptTimeout, maxBody: 1 << 20)
            return .success(Int(response.status.code))
        } catch {
            return .failure(error)
        }
    }
}
