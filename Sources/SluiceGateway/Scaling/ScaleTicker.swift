import NIOCore
import Prometheus
import ServiceLifecycle
import SluiceConfig
import SluiceCore

/// Runs each scaled pool's advisor every `tick` and hands changed decisions to the publisher.
/// A `Service`: the ticks go on until the group shuts down.
final class ScaleTicker: Service, Sendable {
    private let pools: [PoolRuntime]
    private let group: any EventLoopGroup
    private let publisher: ScalePublisher
    private let sharedFailures: Counter

    /// This process in the shared view.
    let instance = (0..<8).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()

    init(pools: [PoolRuntime], group: any EventLoopGroup, publisher: ScalePublisher, metrics: GatewayMetrics) {
        self.pools = pools.filter { $0.scaling != nil }
        self.group = group
        self.publisher = publisher
        sharedFailures = metrics.registry.makeCounter(
            descriptor: .sluice("sluice_scale_shared_failures_total", "Scale ticks decided on this instance's own windows because the shared view (Redis) failed."))
    }

    /// A first decision for every scaled pool (with no samples it holds the current count), so
    /// `/admin/scale` and `/metrics` have one from the moment the gateway serves, before the
    /// group has started the ticks.
    func decideFirst() {
        let now = NIODeadline.now().uptimeNanoseconds
        for pool in pools {
            guard let scaling = pool.scaling else { continue }
            if scaling.configuration.shared == nil {
                _ = scaling.tick(pool, now: now)
            } else {
                _ = scaling.tick(pool, now: now, advisorNow: PoolScaling.wallNanoseconds())
            }
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for pool in self.pools {
                    guard let scaling = pool.scaling else { continue }
                    if let shared = scaling.configuration.shared {
                        group.addTask { await self.sharedTicks(scaling, pool: pool, redis: shared) }
                    } else {
                        group.addTask { await self.ticks(scaling, pool: pool) }
                    }
                }
            }
        }
        // With no pool to scale it still belongs to the group until the group stops.
        try? await gracefulShutdown()
    }

    /// A tick every `tick` after the previous one, until cancelled.
    private func ticks(_ scaling: PoolScaling, pool: PoolRuntime) async {
        while true {
            do {
                try await Task.sleep(for: scaling.configuration.tick)
            } catch {
                return
            }
            let (decision, changed) = scaling.tick(pool, now: NIODeadline.now().uptimeNanoseconds)
            if changed { publisher.publish(decision) }
        }
    }

    /// A tick a tenth of a tick after each wall-clock sub-window boundary (the same instants on
    /// every instance); each wait is measured from the wall clock again, so slow round trips to
    /// Redis never make the ticks drift.
    private func sharedTicks(_ scaling: PoolScaling, pool: PoolRuntime, redis: ReplicaID) async {
        // The view and its connection belong to one event loop; every call to it goes there.
        let loop = group.next()
        let view = SharedScaleView(host: redis.host, port: redis.port, loop: loop, pool: pool.name, instance: instance)
        defer { loop.execute { view.close() } }
        let tickNanos = UInt64(max(1, scaling.configuration.tick.nanoseconds))
        let failures = sharedFailures
        while true {
            let wall = PoolScaling.wallNanoseconds()
            do {
                try await Task.sleep(for: .nanoseconds(Int64(tickNanos - wall % tickNanos + tickNanos / 10)))
            } catch {
                return
            }
            let result = try? await loop.flatSubmit {
                scaling.sharedTick(pool, view: view, now: NIODeadline.now().uptimeNanoseconds, failures: failures)
            }.get()
            if let (published, notify) = result, notify { publisher.publish(published) }
        }
    }
}
