import NIOCore
import Prometheus
import SluiceConfig
import SluiceCore
import SluiceGRPC
import SwiftProtobuf
import Synchronization

/// A pool's gateway batching (`pools[].batching`): requests that can join (same route, same
/// join key: see `EmbeddingsBatch` and `InferBatch`) wait together until `BatchController`
/// says go (full, `max_wait`, or an idle replica), then go to one replica, picked by the
/// pool's policy, as one request; the answer is split back to each member on its own event
/// loop. Each member was admitted and charged on its own before it joined.
///
/// Isolation: a batch whose replica answers other than 200, or whose answer cannot be split,
/// is not failed as a whole: every member is sent again alone (embeddings and `infer` are safe
/// to repeat), so one bad request fails only itself. A batch that times out answers each
/// member 504. A member whose client leaves while it waits is taken out of its batch.
final class Batcher: Sendable {
    enum Kind: String, Sendable {
        case embeddings, infer
        /// The Open Inference Protocol's gRPC `ModelInfer`.
        case grpcInfer
    }

    static let modelInferPath = "/inference.GRPCInferenceService/ModelInfer"

    /// A member as it joins: its request in a mergeable form.
    enum Item: Sendable {
        case embeddings(EmbeddingsBatch.Member)
        case infer(InferBatch.Member)
        case grpcInfer(GRPCInferBatch.Member)

        var joinKey: [UInt8] {
            switch self {
            case .embeddings(let member): member.joinKey
            case .infer(let member): member.joinKey
            case .grpcInfer(let member): member.joinKey
            }
        }
    }

    /// What becomes of a member.
    enum Outcome: Sendable {
        /// Its part of the batch's answer (a JSON body, or a gRPC call's framed message), and its
        /// token usage when known.
        case answer(body: [UInt8], usage: Int?)
        /// Send it alone, as any other request.
        case alone
        /// The batch timed out upstream.
        case timedOut
    }

    private struct Waiting: Sendable {
        var ticket: UInt64
        var item: Item
        var enqueued: UInt64
        var deliver: @Sendable (Outcome) -> Void
    }

    private struct Group: Sendable {
        var path: String
        var waiting: [Waiting] = []
        var timer: Scheduled<Void>?
    }

    private struct State: Sendable {
        var groups: [[UInt8]: Group] = [:]
        var controller: BatchController
        var nextTicket: UInt64 = 1
    }

    let configuration: BatchingConfiguration
    private let client: BackgroundHTTPClient
    /// gRPC batches' way to the replicas (HTTP/2), when the pool speaks HTTP/2 to them.
    private let grpc: GRPCBatchUpstream?
    private let state: Mutex<State>
    private let batches: [Counter]
    private let members: Counter
    private let wait: LatencyHistogram

    init(_ configuration: BatchingConfiguration, pool: String, client: BackgroundHTTPClient, metrics: GatewayMetrics, upstream: UpstreamSettings? = nil) {
        self.configuration = configuration
        self.client = client
        self.grpc = upstream.flatMap { $0.isHTTP2 ? GRPCBatchUpstream(settings: $0) : nil }
        state = Mutex(State(controller: BatchController(policy: configuration.policy)))
        batches = BatchController.Trigger.allCases.map { trigger in
            metrics.registry.makeCounter(
                descriptor: .sluice("sluice_batches_total", "Batches sent upstream, by what sent them (full, waited, idle_replica)."),
                labels: [("pool", pool), ("trigger", trigger.rawValue)])
        }
        members = metrics.registry.makeCounter(
            descriptor: .sluice("sluice_batch_members_total", "Requests sent upstream as members of a batch (divide by sluice_batches_total for the mean size)."),
            labels: [("pool", pool)])
        wait = metrics.batchWait.makeSeries(labels: [("pool", pool)])
    }

    /// The current size cap (a gauge at scrape time).
    var cap: Int { state.withLock { $0.controller.cap } }

    /// Members waiting for their batch to go (a gauge at scrape time).
    var waiting: Int { state.withLock { $0.groups.values.reduce(0) { $0 + $1.waiting.count } } }

    /// The batchable route of `path`, if any.
    static func kind(of path: String) -> Kind? {
        if path == "/v1/embeddings" { return .embeddings }
        if path == modelInferPath { return .grpcInfer }
        let parts = path.split(separator: "/")
        // /v2/models/{m}/infer and /v2/models/{m}/versions/{v}/infer
        if parts.count >= 4, parts[0] == "v2", parts[1] == "models", parts.last == "infer", parts.count == 4 || (parts.count == 6 && parts[3] == "versions") {
            return .infer
        }
        return nil
    }

    /// Adds a member; `deliver` is called once, on any thread, with what became of it.
    /// Returns the ticket `leave` takes.
    func join(_ item: Item, path: String, pool: PoolRuntime, loop: any EventLoop, deliver: @escaping @Sendable (Outcome) -> Void) -> (ticket: UInt64, key: [UInt8]) {
        let key = Array(path.utf8) + [0] + item.joinKey
        let now = loop.now.uptimeNanoseconds
        let (ticket, trigger) = state.withLock { state -> (UInt64, BatchController.Trigger?) in
            let ticket = state.nextTicket
            state.nextTicket += 1
            var group = state.groups[key] ?? Group(path: path)
            group.waiting.append(Waiting(ticket: ticket, item: item, enqueued: now, deliver: deliver))
            let trigger = state.controller.shouldSend(
                size: group.waiting.count, oldest: group.waiting[0].enqueued, now: now, idleReplica: Self.idleReplica(pool, now: now))
            if trigger == nil, group.timer == nil {
                group.timer = loop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(state.controller.deadline(oldest: group.waiting[0].enqueued))) {
                    self.timerFired(key, pool: pool, loop: loop)
                }
            }
            state.groups[key] = group
            return (ticket, trigger)
        }
        if let trigger { dispatch(key, trigger: trigger, pool: pool, loop: loop) }
        return (ticket, key)
    }

    /// Takes a waiting member out (its client left); false when its batch already went.
    @discardableResult
    func leave(ticket: UInt64, key: [UInt8]) -> Bool {
        state.withLock { state in
            guard var group = state.groups[key], let index = group.waiting.firstIndex(where: { $0.ticket == ticket }) else { return false }
            group.waiting.remove(at: index)
            if group.waiting.isEmpty {
                group.timer?.cancel()
                state.groups[key] = nil
            } else {
                state.groups[key] = group
            }
            return true
        }
    }

    private func timerFired(_ key: [UInt8], pool: PoolRuntime, loop: any EventLoop) {
        let due = state.withLock { state -> Bool in
            guard var group = state.groups[key] else { return false }
            group.timer = nil
            state.groups[key] = group
            return !group.waiting.isEmpty
        }
        if due { dispatch(key, trigger: .waited, pool: pool, loop: loop) }
    }

    static func idleReplica(_ pool: PoolRuntime, now: UInt64) -> Bool {
        pool.snapshot.replicas.contains { $0.inFlight == 0 && $0.isAvailable(at: now) }
    }

    /// Sends up to the cap of the group's oldest members as one request.
    private func dispatch(_ key: [UInt8], trigger: BatchController.Trigger, pool: PoolRuntime, loop: any EventLoop) {
        let now = loop.now.uptimeNanoseconds
        let taken = state.withLock { state -> (path: String, members: [Waiting])? in
            guard var group = state.groups[key], !group.waiting.isEmpty else { return nil }
            let count = min(group.waiting.count, state.controller.cap)
            let members = Array(group.waiting.prefix(count))
            group.waiting.removeFirst(count)
            group.timer?.cancel()
            group.timer = nil
            if group.waiting.isEmpty {
                state.groups[key] = nil
            } else {
                // The next oldest gets its own deadline.
                group.timer = loop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(state.controller.deadline(oldest: group.waiting[0].enqueued))) {
                    self.timerFired(key, pool: pool, loop: loop)
                }
                state.groups[key] = group
            }
            return (group.path, members)
        }
        guard let (path, taken) = taken else { return }
        batches[BatchController.Trigger.allCases.firstIndex(of: trigger)!].increment()
        members.increment(by: Int64(taken.count))
        // (A member may have joined after `now` was read: no negative waits.)
        for member in taken { wait.record(nanoseconds: Int64(now > member.enqueued ? now - member.enqueued : 0)) }
        send(taken, path: path, pool: pool, loop: loop)
    }

    private func send(_ taken: [Waiting], path: String, pool: PoolRuntime, loop: any EventLoop) {
        if case .grpcInfer = taken[0].item { return sendGRPC(taken, path: path, pool: pool, loop: loop) }
        let body: [UInt8]
        let split: @Sendable (JSONValue) -> [JSONValue]?
        switch taken[0].item {
        case .embeddings:
            let members = taken.compactMap { if case .embeddings(let member) = $0.item { member } else { nil } }
            let (merged, spans) = EmbeddingsBatch.merge(members)
            body = merged.serialized
            split = { EmbeddingsBatch.split($0, spans: spans) }
        case .infer:
            let members = taken.compactMap { if case .infer(let member) = $0.item { member } else { nil } }
            let (merged, spans) = InferBatch.merge(members)
            body = merged.serialized
            split = { InferBatch.split($0, spans: spans) }
        case .grpcInfer:
            return
        }
        guard let client = try? client.client(),
              let replica = pool.pick(RoutingFacts(key: nil, random: UInt64.random(in: 0...UInt64.max)), now: loop.now)?.replica,
              pool.start(replica)
        else {
            for member in taken { member.deliver(.alone) }
            return
        }
        replica.requestSent()
        let started = loop.now
        let timeout = TimeAmount.nanoseconds(pool.configuration.timeouts.responseHeader.nanoseconds)
        BatchUpstream.post(body, path: path, to: replica.id, client: client, on: loop, timeout: timeout).whenComplete { result in
            pool.release(replica)
            let latency = UInt64((loop.now - started).nanoseconds)
            self.state.withLock { $0.controller.record(size: taken.count, latency: latency) }
            switch result {
            case .success(let answer) where answer.status == 200:
                let parts = (try? JSONValue.parse(Array(answer.body.readableBytesView))).flatMap(split)
                guard let parts, parts.count == taken.count else {
                    for member in taken { member.deliver(.alone) }
                    return
                }
                for (member, part) in zip(taken, parts) {
                    member.deliver(.answer(body: part.serialized, usage: part["usage"]?["total_tokens"]?.int ?? part["usage"]?["prompt_tokens"]?.int))
                }
            case .failure(BatchUpstream.Failure.timedOut):
                for member in taken { member.deliver(.timedOut) }
            default:
                // Another status, or the replica could not be reached: each member alone.
                for member in taken { member.deliver(.alone) }
            }
        }
    }

    /// A gRPC batch: one merged `ModelInfer` over HTTP/2; a status other than OK, or an answer
    /// whose outputs cannot be split, sends each member alone.
    private func sendGRPC(_ taken: [Waiting], path: String, pool: PoolRuntime, loop: any EventLoop) {
        let members = taken.compactMap { if case .grpcInfer(let member) = $0.item { member } else { nil } }
        guard let grpc, let merged = try? GRPCInferBatch.merge(members).serializedBytes() as [UInt8],
              let replica = pool.pick(RoutingFacts(key: nil, random: UInt64.random(in: 0...UInt64.max)), now: loop.now)?.replica,
              pool.start(replica)
        else {
            for member in taken { member.deliver(.alone) }
            return
        }
        replica.requestSent()
        let started = loop.now
        let timeout = TimeAmount.nanoseconds(pool.configuration.timeouts.responseHeader.nanoseconds)
        grpc.call(GRPCMessage.framed(merged), path: path, to: replica.id, on: loop, timeout: timeout).whenComplete { result in
            pool.release(replica)
            let latency = UInt64((loop.now - started).nanoseconds)
            self.state.withLock { $0.controller.record(size: taken.count, latency: latency) }
            switch result {
            case .success(let answer) where answer.grpcStatus == 0:
                guard let response = try? Inference_ModelInferResponse(serializedBytes: answer.message),
                      let parts = GRPCInferBatch.split(response, members: members),
                      let bodies = try? parts.map({ GRPCMessage.framed(try $0.serializedBytes()) })
                else {
                    for member in taken { member.deliver(.alone) }
                    return
                }
                for (member, body) in zip(taken, bodies) { member.deliver(.answer(body: body, usage: nil)) }
            case .failure(BatchUpstream.Failure.timedOut):
                for member in taken { member.deliver(.timedOut) }
            default:
                for member in taken { member.deliver(.alone) }
            }
        }
    }
}
