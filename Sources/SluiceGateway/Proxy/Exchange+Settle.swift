import NIOCore

extension Exchange {
    /// Settles what the exchange holds exactly once, however it ended: the prefill count, the
    /// replica's slot, the token charge, the tenant's concurrency, and its metrics.
    func settle(status: Int, runtime: GatewayRuntime, upstreams: EventLoopUpstreams, now: NIODeadline) {
        guard !finished else { return }
        finished = true
        countPrefill(on: nil)
        if retrying {
            retrying = false
            pool?.retryEnded()
        }
        if let replica {
            self.replica = nil
            if let pool { pool.release(replica) } else { replica.requestFinished() }
        }
        let used = knownUsage ?? usageMeter?.usedTokens
        if let overflow, let used {
            self.overflow = nil
            overflow.tokens.increment(by: used)
            if let cost = pool?.provider?.cost(tokens: used) { overflow.cost.increment(by: Int((cost * 1_000_000_000).rounded())) }
        }
        if let cost = fairnessCost, let gate = pool?.gate {
            fairnessCost = nil
            // (A request that failed before its usage was known keeps its estimate.)
            if let used { gate.charge(tenant: tenant ?? 0, tokens: used - cost) }
        }
        if let admission = runtime.admission {
            BodyAdmission.settle(self, status: status, admission: admission, now: now, limiter: admission.shared.map { upstreams.redisLimiter($0) })
            if let tenant { admission.release(tenant: tenant) }
            tenant = nil
        }
        if let trace {
            self.trace = nil
            trace.finish(status: status, at: now)
        }
        let metrics = pool?.metrics ?? runtime.metrics.unrouted
        let nanoseconds = Int64(now.uptimeNanoseconds - start.uptimeNanoseconds)
        metrics.recordResponse(status: status, nanoseconds: nanoseconds)
        version?.record(status: status, nanoseconds: nanoseconds, tokens: used)
    }
}
