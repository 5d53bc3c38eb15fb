import NIOCore
import SluiceConfig
import SluiceSimulation
import Synchronization

/// The replica's device: runs the continuous-batching engine and the one-batch-at-a-time
/// servers (embeddings, infer) on one event loop, on real time. Every mutable field is touched
/// only on `loop`; the pure models (`BatchEngine`, `SerialServerModel`) decide, this only waits.
final class ReplicaScheduler: @unchecked Sendable {
    /// Called on the engine's loop; hop to the connection's loop before writing.
    struct TokenSink: Sendable {
        let token: @Sendable (Int) -> Void
        let finished: @Sendable () -> Void
    }

    /// What `/metrics` reports, published after every change.
    struct Snapshot: Sendable {
        var running = 0
        var waiting = 0
        var kvUsage = 0.0
        var prefixQueries = 0
        var prefixHits = 0
        var batchesQueued = 0
    }

    let loop: any EventLoop
    let snapshot = Mutex(Snapshot())
    private let timeScale: Double
    private var engine: BatchEngine?
    private var sinks: [Int: TokenSink] = [:]
    private var nextID = 0
    private var stepping = false
    private var embeddingServer = SerialServerModel()
    private var inferServer = SerialServerModel()
    private var batchesQueued = 0
    private let origin = NIODeadline.now()

    init(loop: any EventLoop, engine: EngineProfile?, timeScale: Double) {
        self.loop = loop
        self.timeScale = timeScale
        self.engine = engine.map { BatchEngine(profile: $0.scaled(by: timeScale)) }
    }

    var blockSize: Int { engine?.profile.blockSize ?? 16 }

    /// Queues a completion; the future gives its id (for `cancel`), or nil when the request
    /// could never fit the KV cache. `request` is tokenized by the caller, on its own loop, so
    /// the engine's loop only schedules.
    func submit(_ request: BatchEngine.Request, sink: TokenSink) -> EventLoopFuture<Int?> {
        loop.submit { [self] in
            nextID += 1
            let id = nextID
            var numbered = request
            numbered.id = id
            guard engine?.submit(numbered) ?? false else { return nil }
            sinks[id] = sink
            if !stepping { runStep() }
            publish()
            return id
        }
    }

    /// The client left: its sequence stops and frees its blocks.
    func cancel(_ id: Int) {
        loop.execute { [self] in
            guard sinks.removeValue(forKey: id) != nil else { return }
            engine?.cancel(id: id)
            publish()
        }
    }

    enum BatchKind { case embeddings, infer }

    /// Completes when a batch of this cost, queued behind the ones before it, is done.
    func runBatch(_ kind: BatchKind, cost: Duration) -> EventLoopFuture<Void> {
        loop.flatSubmit { [self] in
            let now = NIODeadline.now() - origin
            let nowDuration = Duration.nanoseconds(now.nanoseconds)
            let scaled = cost * timeScale
            let end: Duration
            switch kind {
            case .embeddings: end = embeddingServer.admit(cost: scaled, at: nowDuration)
            case .infer: end = inferServer.admit(cost: scaled, at: nowDuration)
            }
            batchesQueued += 1
            publish()
            let promise = loop.makePromise(of: Void.self)
            loop.scheduleTask(in: .nanoseconds((end - nowDuration).nanoseconds)) { [self] in
                batchesQueued -= 1
                publish()
                promise.succeed()
            }
            return promise.futureResult
        }
    }

    /// When the step in progress ends: steps follow each other on fixed deadlines, so a busy
    /// host delays a step's delivery but not the simulated device's pace.
    private var stepEnd = NIODeadline.now()

    private func runStep() {
        guard engine != nil, let step = engine!.step() else {
            stepping = false
            return
        }
        let now = NIODeadline.now()
        // Back to back while stepping; an idle engine starts from now.
        stepEnd = (stepping ? max(stepEnd, now - .milliseconds(50)) : now) + .nanoseconds(step.duration.nanoseconds)
        stepping = true
        publish()
        loop.scheduleTask(deadline: stepEnd) { [self] in
            for event in step.events {
                switch event {
                case .token(let id, let index):
                    sinks[id]?.token(index)
                case .finished(let id):
                    sinks.removeValue(forKey: id)?.finished()
                }
            }
            runStep()
            publish()
        }
    }

    private func publish() {
        let state = Snapshot(
            running: engine?.runningCount ?? 0, waiting: engine?.waitingCount ?? 0,
            kvUsage: engine?.cache.usage ?? 0, prefixQueries: engine?.cache.queriedTokens ?? 0,
            prefixHits: engine?.cache.hitTokens ?? 0, batchesQueued: batchesQueued)
        snapshot.withLock { $0 = state }
    }

}
