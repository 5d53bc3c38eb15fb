import Foundation
import NIOCore
import SluiceReplica
import Synchronization

/// A local stand-in for a Deployment scaled by an autoscaler that follows Sluice's decision:
/// every `interval` it reads `GET /admin/scale` (desired) and `/readyz` (in rotation now), and
/// when the pool's desired count is above its replicas in rotation (plus those starting) it starts simulated replicas, each registered in the
/// pool (`POST /admin/pools/{pool}/replicas`) only after `startupDelay`, as a pod joins its
/// Service once ready. When desired is below, it drains one replica it started (`POST .../drain`),
/// waits `drainGrace` for its requests to finish, removes it and stops it: one at a time, and
/// never a replica it did not start (the configured fleet is the floor).
public final class ReplicaActuator: Sendable {
    public struct Settings: Sendable {
        public var pool: String
        /// What each new replica is (its id is replaced).
        public var replica: ReplicaConfiguration
        public var startupDelay: Duration = .seconds(5)
        public var interval: Duration = .seconds(1)
        public var drainGrace: Duration = .seconds(2)
        /// The most replicas this actuator runs at once.
        public var maxStarted = 32

        public init(pool: String, replica: ReplicaConfiguration) {
            self.pool = pool
            self.replica = replica
        }
    }

    /// One thing the actuator did, for the report and the console.
    public struct Event: Sendable, Equatable {
        public var second: Double
        public var action: String
        public var replica: String
        public var desired: Int
        public var current: Int
    }

    private struct Running: @unchecked Sendable {
        var server: ReplicaServer
        var address: String
    }

    private struct State: Sendable {
        var running: [Running] = []
        var starting = 0
        var removing = false
        var events: [Event] = []
        var counter = 0
    }

    let settings: Settings
    let client: AdminClient
    let group: any EventLoopGroup
    private let state = Mutex(State())
    private let started = ContinuousClock.now
    private let onEvent: @Sendable (Event) -> Void

    public init(_ settings: Settings, client: AdminClient, group: any EventLoopGroup, onEvent: @escaping @Sendable (Event) -> Void = { _ in }) {
        self.settings = settings
        self.client = client
        self.group = group
        self.onEvent = onEvent
    }

    public var events: [Event] { state.withLock { $0.events } }

    /// Follows the decision until `shouldStop`, then stops every replica it started.
    public func run(shouldStop: @escaping @Sendable () -> Bool) async {
        await withTaskGroup(of: Void.self) { tasks in
            while !shouldStop() {
                // Desired from the last decision; what is in rotation now from /readyz (the
                // decision's own count is as old as its tick, and would miss replicas that
                // joined since).
                if let decision = await client.json("GET", "/admin/scale"),
                   let pool = (decision["pools"] as? [String: Any])?[settings.pool] as? [String: Any],
                   let desired = pool["desired"] as? Int,
                   let ready = await client.request("GET", "/readyz"),
                   let readiness = (try? JSONSerialization.jsonObject(with: Data(ready.body.utf8))) as? [String: Any],
                   let current = ((readiness["pools"] as? [String: Any])?[settings.pool] as? [String: Any])?["available"] as? Int {
                    let (start, remove) = state.withLock { state -> (Int, Running?) in
                        let missing = desired - current - state.starting
                        if missing > 0 {
                            let room = settings.maxStarted - state.running.count - state.starting
                            let count = max(0, min(missing, room))
                            state.starting += count
                            return (count, nil)
                        }
                        if desired < current, state.starting == 0, !state.removing, let last = state.running.popLast() {
                            state.removing = true
                            return (0, last)
                        }
                        return (0, nil)
                    }
                    for _ in 0..<start { tasks.addTask { await self.startReplica(desired: desired, current: current) } }
                    if let remove { tasks.addTask { await self.removeReplica(remove, desired: desired, current: current) } }
                }
                try? await Task.sleep(for: settings.interval)
            }
        }
        let running = state.withLock { state in
            defer { state.running = [] }
            return state.running
        }
        for replica in running {
            _ = await client.request("DELETE", "/admin/pools/\(settings.pool)/replicas/\(replica.address)")
            await replica.server.stop()
        }
    }

    private func startReplica(desired: Int, current: Int) async {
        let number = state.withLock { state -> Int in
            state.counter += 1
            return state.counter
        }
        var configuration = settings.replica
        configuration.id = "scaled-\(number)"
        configuration.seed = configuration.seed &+ UInt64(number)
        let server = ReplicaServer(configuration: configuration, group: group)
        guard let bound = try? await server.start() else {
            state.withLock { $0.starting -= 1 }
            return
        }
        let address = "127.0.0.1:\(bound.port!)"
        record("start", address, desired: desired, current: current)
        // Not in the pool until it would pass its readiness probe.
        try? await Task.sleep(for: settings.startupDelay)
        let added = await client.request("POST", "/admin/pools/\(settings.pool)/replicas", body: "{\"replica\":\"\(address)\"}")
        state.withLock { state in
            state.starting -= 1
            state.running.append(Running(server: server, address: address))
        }
        record(added.map { (200..<300).contains($0.status) } == true ? "ready" : "add-failed", address, desired: desired, current: current)
    }

    private func removeReplica(_ replica: Running, desired: Int, current: Int) async {
        record("drain", replica.address, desired: desired, current: current)
        _ = await client.request("POST", "/admin/pools/\(settings.pool)/replicas/\(replica.address)/drain")
        try? await Task.sleep(for: settings.drainGrace)
        _ = await client.request("DELETE", "/admin/pools/\(settings.pool)/replicas/\(replica.address)")
        await replica.server.stop()
        state.withLock { $0.removing = false }
        record("stop", replica.address, desired: desired, current: current)
    }

    private func record(_ action: String, _ replica: String, desired: Int, current: Int) {
        let elapsed = ContinuousClock.now - started
        let event = Event(
            second: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
            action: action, replica: replica, desired: desired, current: current)
        state.withLock { $0.events.append(event) }
        onEvent(event)
    }
}
