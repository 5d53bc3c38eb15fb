/// A continuous-batching LLM engine as a pure state machine: requests go in, and each `step()`
/// says how long the next engine step takes and which tokens it produces. The replica's I/O
/// layer runs the steps on a clock; tests run them on none.
///
/// Scheduling follows vLLM's (V1, chunked prefill) in outline: FIFO admission while fewer than
/// `maxRunning` sequences run and KV blocks can be reserved; each step decodes one token for
/// every sequence past prefill, then spends what is left of the token budget on prefill chunks
/// in admission order. A sequence's first token comes at the end of the step that finishes its
/// prefill. Cached prefix blocks are skipped (at least one prompt token is always computed). A
/// finished answer's full blocks (prompt + output) stay cached, as vLLM's V1 prefix cache keeps
/// decoded blocks, so the next turn of a conversation reuses them.
public struct BatchEngine: Sendable {
    public struct Request: Sendable {
        public var id: Int
        public var promptTokens: Int
        /// Chained hashes of the prompt's full blocks (`SimTokenizer.blockHashes`).
        public var blockHashes: [UInt64]
        public var maxTokens: Int
        /// Chained hashes of the full blocks the answer adds (`SimReply.answerBlockHashes`):
        /// cached when the answer is complete, so a next turn carrying it hits them. Empty when
        /// the answer's tokens are unknown (they are then not cached, as before vLLM cached
        /// decoded blocks).
        public var answerBlockHashes: [UInt64]

        public init(id: Int, promptTokens: Int, blockHashes: [UInt64], maxTokens: Int, answerBlockHashes: [UInt64] = []) {
            self.id = id
            self.promptTokens = max(1, promptTokens)
            self.blockHashes = blockHashes
            self.maxTokens = max(1, maxTokens)
            self.answerBlockHashes = answerBlockHashes
        }
    }

    public enum Event: Sendable, Equatable {
        /// Output token `index` (0 = the first token) of request `id`.
        case token(id: Int, index: Int)
        case finished(id: Int)
    }

    public struct Step: Sendable, Equatable {
        public var duration: Duration
        /// What happens at the end of the step, in order.
        public var events: [Event]
        public var decoding: Int
        public var prefilled: Int
    }

    private struct Sequence: Sendable {
        var request: Request
        /// Blocks of its own (the cache's `reserved`); shrinks when prompt blocks are shared.
        var privateBlocks: Int
        /// Leading prompt blocks found cached at admission.
        var hitBlocks: Int
        /// Cached prompt blocks it holds (hits, then its own full prompt blocks after prefill).
        var sharedHashes: [UInt64]
        var prefillRemaining: Int
        var cachedTokens: Int
        var generated = 0
    }

    public let profile: EngineProfile
    public private(set) var cache: PrefixCache
    private var waiting: [Request] = []
    private var waitingHead = 0
    private var running: [Sequence] = []

    public init(profile: EngineProfile) {
        self.profile = profile
        self.cache = PrefixCache(capacity: profile.kvBlocks)
    }

    public var runningCount: Int { running.count }
    public var waitingCount: Int { waiting.count - waitingHead }
    public var isIdle: Bool { running.isEmpty && waitingCount == 0 }

    /// Prompt tokens a request found in the prefix cache at admission (for tests and metrics).
    public private(set) var lastAdmittedCachedTokens = 0

    /// Queues a request; false (and nothing queued) when it could never run because its prompt
    /// and `maxTokens` need more KV blocks than the GPU has (vLLM rejects those too).
    @discardableResult
    public mutating func submit(_ request: Request) -> Bool {
        guard blocksNeeded(request) <= profile.kvBlocks else { return false }
        waiting.append(request)
        return true
    }

    public func blocksNeeded(_ request: Request) -> Int {
        (request.promptTokens + request.maxTokens + profile.blockSize - 1) / profile.blockSize
    }

    /// Removes a request (its client left): waiting or running, its blocks are freed.
    public mutating func cancel(id: Int) {
        if let index = running.firstIndex(where: { $0.request.id == id }) {
            cache.release(shared: running[index].sharedHashes, privateBlocks: running[index].privateBlocks)
            running.remove(at: index)
        } else if let index = waiting[waitingHead...].firstIndex(where: { $0.id == id }) {
            waiting.remove(at: index)
        }
    }

    /// Plans the next step and applies its effects; nil when there is nothing to do.
    public mutating func step() -> Step? {
        admit()
        guard !running.isEmpty else { return nil }
        var budget = profile.maxBatchedTokens
        var decoding = 0
        for sequence in running where sequence.prefillRemaining == 0 {
            decoding += 1
        }
        budget -= decoding
        var prefilled = 0
        var events: [Event] = []
        var finished: [Int] = []
        for index in running.indices {
            if running[index].prefillRemaining == 0 {
                emitToken(index, into: &events, finished: &finished)
            } else if budget > 0 {
                let chunk = min(budget, running[index].prefillRemaining)
                budget -= chunk
                prefilled += chunk
                running[index].prefillRemaining -= chunk
                if running[index].prefillRemaining == 0 {
                    // The prompt's blocks are computed now: shared, later prompts reuse them.
                    let fresh = running[index].request.blockHashes.dropFirst(running[index].hitBlocks)
                    running[index].privateBlocks -= cache.promote(fresh)
                    running[index].sharedHashes.append(contentsOf: fresh)
                    emitToken(index, into: &events, finished: &finished)
                }
            }
        }
        for index in finished.reversed() {
            // The answer is complete: its full blocks join the prefix cache (from private).
            let answer = running[index].request.answerBlockHashes
            running[index].privateBlocks -= cache.promote(answer[...])
            running[index].sharedHashes.append(contentsOf: answer)
            cache.release(shared: running[index].sharedHashes, privateBlocks: running[index].privateBlocks)
            running.remove(at: index)
        }
        compactWaiting()
        let duration = profile.stepBase + profile.decodePerSequence * decoding + profile.prefillPerToken * prefilled
        return Step(duration: duration, events: events, decoding: decoding, prefilled: prefilled)
    }

    private mutating func emitToken(_ index: Int, into events: inout [Event], finished: inout [Int]) {
        let id = running[index].request.id
        events.append(.token(id: id, index: running[index].generated))
        running[index].generated += 1
        if running[index].generated >= running[index].request.maxTokens {
            events.append(.finished(id: id))
            finished.append(index)
        }
    }

    private mutating func admit() {
        while waitingHead < waiting.count, running.count < profile.maxRunning {
            let request = waiting[waitingHead]
            let blocks = blocksNeeded(request)
            guard let hitBlocks = cache.admit(request.blockHashes, totalBlocks: blocks) else { break }
            let cached = min(hitBlocks * profile.blockSize, request.promptTokens - 1)
            cache.recordQuery(promptTokens: request.promptTokens, hitTokens: cached)
            lastAdmittedCachedTokens = cached
            running.append(Sequence(
                request: request, privateBlocks: blocks - hitBlocks, hitBlocks: hitBlocks,
                sharedHashes: Array(request.blockHashes.prefix(hitBlocks)),
                prefillRemaining: request.promptTokens - cached, cachedTokens: cached))
            waitingHead += 1
        }
    }

    private mutating func compactWaiting() {
        if waitingHead > 64, waitingHead * 2 > waiting.count {
            waiting.removeFirst(waitingHead)
            waitingHead = 0
        }
    }
}
