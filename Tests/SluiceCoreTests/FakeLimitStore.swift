@testable import SluiceCore

/// A `SharedLimitStore` in memory for the policy's tests: GCRA per key on its own clock (`now`,
/// moved by the test), all or none, answering at once (or, `holding`, when the test says);
/// `failing` fails every call. It records what it was asked.
final class FakeLimitStore: SharedLimitStore {
    struct Down: Error {}

    var now: UInt64 = 0
    var failing = false
    var holding = false
    private(set) var asked: [(items: [LimitItem], adjust: Bool)] = []
    private var limits: [String: GCRA] = [:]
    private var held: [() -> Void] = []

    func decide(_ items: [LimitItem], adjust: Bool, then: @escaping (Result<[GCRA.Decision], any Error>) -> Void) {
        asked.append((items, adjust))
        guard holding else { return answer(items, adjust: adjust, then: then) }
        held.append { self.answer(items, adjust: adjust, then: then) }
    }

    /// Answers the calls held so far, in order.
    func answerHeld() {
        let calls = held
        held = []
        for call in calls { call() }
    }

    private func answer(_ items: [LimitItem], adjust: Bool, then: (Result<[GCRA.Decision], any Error>) -> Void) {
        if failing { return then(.failure(Down())) }
        var trial = limits
        let decisions = items.map { item in
            var limit = trial[item.key] ?? GCRA(perMinute: item.perMinute, burst: item.burst)
            defer { trial[item.key] = limit }
            guard adjust else { return limit.admit(cost: item.cost, now: now) }
            limit.adjust(by: item.cost, now: now)
            return GCRA.Decision(allowed: true, remaining: limit.remaining(at: now), retryAfter: 0, resetAfter: limit.tat > now ? limit.tat - now : 0)
        }
        if adjust || decisions.allSatisfy(\.allowed) { limits = trial }
        then(.success(decisions))
    }

    /// Units `key` could spend at once now (nil: never charged).
    func remaining(_ key: String) -> Int? {
        limits[key]?.remaining(at: now)
    }
}

/// Helpers that read a policy's callback outcomes as values.
extension TenantPolicy {
    /// `admitShared`'s outcome, which the fake store gives at once (nil while it is held).
    func admitShared(tenant: Int = 0, now: UInt64, store: FakeLimitStore) -> LimitOutcome? {
        store.now = now
        var outcome: LimitOutcome?
        admitShared(tenant: tenant, now: now, store: store) { outcome = $0 }
        return outcome
    }

    func admitBodyShared(tenant: Int = 0, model: String?, tokens: Int, now: UInt64, store: FakeLimitStore) -> LimitOutcome? {
        store.now = now
        var outcome: LimitOutcome?
        admitBodyShared(tenant: tenant, model: model, tokens: tokens, now: now, store: store) { outcome = $0 }
        return outcome
    }
}
