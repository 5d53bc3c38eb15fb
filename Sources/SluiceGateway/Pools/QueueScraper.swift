import AsyncHTTPClient
import Foundation
import NIOCore
import ServiceLifecycle
import SluiceConfig
import SluiceCore

/// Reads each replica's Prometheus metrics every `routing.scrape.interval` for pools whose policy
/// weighs the replicas' own queues (least-queue, cache-aware), and records
/// `vllm:num_requests_waiting` on the replica (`Replica.recordReportedQueue`), and with it
/// `vllm:num_requests_running`, from which cache-aware routing learns its slots. A replica that
/// stops answering simply stops reporting; its last report ages out after three intervals.
///
/// A `Service`: each pool's rounds run until the group shuts down; a round still in flight then
/// is cancelled.
final class QueueScraper: Service, Sendable {
    private let pools: [PoolRuntime]
    private let client: BackgroundHTTPClient

    init(pools: [PoolRuntime], client: BackgroundHTTPClient) {
        self.pools = pools.filter { [.leastQueue, .cacheAware].contains($0.configuration.routing.policy) }
        self.client = client
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for pool in self.pools {
                    group.addTask { await self.scrapeEvery(pool) }
                }
            }
        }
        // With no pool to scrape it still belongs to the group until the group stops.
        try? await gracefulShutdown()
    }

    /// A round, then the interval, until cancelled: a slow round delays the next, never overlaps it.
    private func scrapeEvery(_ pool: PoolRuntime) async {
        let interval = pool.configuration.routing.scrapeInterval
        while !Task.isCancelled {
            await scrape(pool, timeout: interval)
            try? await Task.sleep(for: interval)
        }
    }

    /// One round: every replica at once; returns when all answered or timed out.
    private func scrape(_ pool: PoolRuntime, timeout: Duration) async {
        guard let client = try? client.client() else { return }
        let path = pool.configuration.routing.scrapePath
        await withDiscardingTaskGroup { group in
            for replica in pool.snapshot.replicas {
                group.addTask {
                    guard let text = await Self.fetch(replica.id, path: path, client: client, timeout: timeout),
                          let waiting = Self.waitingQueue(in: text)
                    else { return }
                    replica.recordReportedQueue(waiting: waiting, at: NIODeadline.now().uptimeNanoseconds)
                    if let running = Self.gauge("vllm:num_requests_running", in: text) {
                        replica.recordReportedRunning(running, waiting: waiting)
                    }
                }
            }
        }
    }

    /// GET `path` on `replica`, the whole body as text (any transfer encoding); nil on any
    /// failure, on a status other than 2xx, or after `timeout`.
    static func fetch(_ replica: ReplicaID, path: String, client: HTTPClient, timeout: Duration) async -> String? {
        guard let request = try? HTTPClient.Request(url: "http://\(replica)\(path)", method: .GET),
              let response = try? await client.wholeResponse(request, deadline: .now() + .nanoseconds(timeout.nanoseconds)),
              (200..<300).contains(response.status.code)
        else { return nil }
        return response.body.map { String(buffer: $0) } ?? ""
    }

    /// The sum of `vllm:num_requests_waiting` samples (one per model), or nil if absent. The
    /// value is the field after the name and labels (a timestamp may follow); absurd values are
    /// clamped, never trusted to fit.
    static func waitingQueue(in text: String) -> Int? {
        gauge("vllm:num_requests_waiting", in: text)
    }

    /// The sum of a gauge's samples (one per model, any labels), or nil if absent.
    static func gauge(_ name: String, in text: String) -> Int? {
        var total: Double?
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            var rest = line.dropFirst(name.count)
            if rest.first == "{" {
                guard let close = rest.lastIndex(of: "}") else { continue }
                rest = rest[rest.index(after: close)...]
            } else if rest.first != " " {
                continue
            }
            guard let field = rest.split(separator: " ").first, let value = Double(field.trimmingCharacters(in: .whitespacesAndNewlines)),
                  value.isFinite
            else { continue }
            total = min((total ?? 0) + max(0, value), Double(1 << 30))
        }
        return total.map { Int($0.rounded()) }
    }
}
