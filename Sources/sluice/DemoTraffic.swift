import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SluiceTesting
import Synchronization

/// What the demo's own traffic got back, summed between two ticker lines.
final class DemoStats: Sendable {
    private struct Window {
        var statuses: [Int: Int] = [:]
        var replicas: [String: Int] = [:]
        var latencies: [Duration] = []
        var failures = 0
    }

    private let window = Mutex(Window())

    func record(status: Int, replica: String?, latency: Duration) {
        window.withLock { window in
            window.statuses[status, default: 0] += 1
            window.replicas[replica ?? "-", default: 0] += 1
            window.latencies.append(latency)
        }
    }

    func recordFailure() {
        window.withLock { $0.failures += 1 }
    }

    /// One line describing the window, then a fresh window.
    func drainLine() -> String? {
        let current = window.withLock { window in
            defer { window = Window() }
            return window
        }
        guard !current.latencies.isEmpty || current.failures > 0 else { return nil }
        let sorted = current.latencies.sorted()
        func percentile(_ p: Double) -> String {
            guard !sorted.isEmpty else { return "-" }
            let value = sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
            return "\(value.components.seconds * 1000 + value.components.attoseconds / 1_000_000_000_000_000)ms"
        }
        let statuses = current.statuses.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
        let replicas = current.replicas.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return "load    \(sorted.count) answered [\(statuses)] p50 \(percentile(0.5)) p95 \(percentile(0.95))  by replica: \(replicas)"
            + (current.failures > 0 ? "  connection failures: \(current.failures)" : "")
    }
}

/// A small open-loop load so the demo shows routing as it happens: requests leave on a fixed
/// schedule whatever the answers do (a mix of streamed chat, JSON chat and embeddings).
/// It is a demonstration, not a measurement tool: `sluice-load` (a later issue) is that.
struct DemoTraffic: Service {
    let target: SocketAddress
    let group: any EventLoopGroup
    let rate: Double
    let stats: DemoStats

    func run() async throws {
        guard rate > 0 else { return }
        let interval = Duration.nanoseconds(Int64(1e9 / rate))
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { tasks in
                let clock = ContinuousClock()
                var next = clock.now
                var index = 0
                while !Task.isCancelled {
                    next += interval
                    do {
                        try await Task.sleep(until: next, clock: clock)
                    } catch {
                        return
                    }
                    index += 1
                    let request = Self.request(index)
                    let sent = clock.now
                    tasks.addTask {
                        do {
                            let response = try await TestHTTPConnection.request(
                                .POST, request.path, to: target, group: group,
                                headers: [("content-type", "application/json")], body: request.body)
                            stats.record(status: response.status, replica: response.header("x-replica-id"), latency: clock.now - sent)
                        } catch {
                            stats.recordFailure()
                        }
                    }
                }
            }
        }
    }

    static func request(_ index: Int) -> (path: String, body: String) {
        let session = index % 8
        switch index % 4 {
        case 0, 1:
            return ("/v1/chat/completions", #"{"model":"sim-7b","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"session \#(session): tell me about gateways"}]}"#)
        case 2:
            return ("/v1/chat/completions", #"{"model":"sim-7b","max_tokens":4,"messages":[{"role":"user","content":"session \#(session): short answer"}]}"#)
        default:
            return ("/v1/embeddings", #"{"model":"sim-embed","input":["session \#(session)","sluice"]}"#)
        }
    }
}
