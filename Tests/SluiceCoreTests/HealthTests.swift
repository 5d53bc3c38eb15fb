import SluiceCore
import Testing

/// Passive ejection that grows with repeats and is capped per pool, failure rates, and active
/// checks' thresholds, on plain numbers and a manual clock.
struct HealthTests {
    static let id = ReplicaID(host: "10.0.0.1", port: 8000)
    static let second: UInt64 = 1_000_000_000

    @Test func eachEjectionInARowLastsLongerUpToTheMaximum() {
        let policy = EjectionPolicy(consecutiveFailures: 1, duration: 10 * Self.second, maxDuration: 35 * Self.second)
        #expect(policy.duration(ejection: 1) == 10 * Self.second)
        #expect(policy.duration(ejection: 3) == 30 * Self.second)
        #expect(policy.duration(ejection: 4) == 35 * Self.second)
        #expect(policy.duration(ejection: Int.max) == 35 * Self.second)

        let replica = Replica(id: Self.id)
        #expect(replica.recordFailure(at: 0, policy: policy))
        #expect(replica.ejectedUntil == 10 * Self.second)
        // Failures while out do not eject again; the next one after it does, for longer.
        #expect(!replica.recordFailure(at: 5 * Self.second, policy: policy))
        #expect(replica.recordFailure(at: 10 * Self.second, policy: policy))
        #expect(replica.ejectedUntil == 30 * Self.second)
        // An interval in rotation shortens the next ejection a step; one spent out does not.
        replica.intervalPassed(at: 20 * Self.second)
        #expect(replica.ejections == 2)
        replica.intervalPassed(at: 30 * Self.second)
        #expect(replica.ejections == 1)
        #expect(replica.recordFailure(at: 40 * Self.second, policy: policy))
        #expect(replica.ejectedUntil == 60 * Self.second)
        #expect(replica.lastEjectionReason == .consecutiveFailures)
    }

    @Test func atMostTheConfiguredShareOfAPoolIsOutButAlwaysOneMayBe() {
        let policy = EjectionPolicy(maxEjectedPercent: 50)
        #expect(policy.mayEject(ejected: 0, total: 1))
        #expect(!policy.mayEject(ejected: 1, total: 1))
        #expect(policy.mayEject(ejected: 1, total: 4))
        #expect(!policy.mayEject(ejected: 2, total: 4))
        #expect(!EjectionPolicy(maxEjectedPercent: 0).mayEject(ejected: 1, total: 10))
        #expect(EjectionPolicy(maxEjectedPercent: 0).mayEject(ejected: 0, total: 10))
        // The replica asks only once it is due, and stays in when refused.
        let replica = Replica(id: Self.id)
        var asked = 0
        let once = EjectionPolicy(consecutiveFailures: 2, duration: Self.second)
        #expect(!replica.recordFailure(at: 0, policy: once, mayEject: { asked += 1; return false }))
        #expect(asked == 0)
        #expect(!replica.recordFailure(at: 0, policy: once, mayEject: { asked += 1; return false }))
        #expect(asked == 1)
        #expect(replica.isAvailable(at: 0))
    }

    @Test func aFailureRateEjectsOnlyWithEnoughRequests() {
        let policy = EjectionPolicy(failureRate: 0.5, failureRateMinRequests: 10)
        #expect(!policy.failureRateTooHigh(successes: 0, failures: 9))
        #expect(policy.failureRateTooHigh(successes: 4, failures: 6))
        #expect(!policy.failureRateTooHigh(successes: 5, failures: 5))
        #expect(!EjectionPolicy().failureRateTooHigh(successes: 0, failures: 1_000))
        let counted = Replica(id: Self.id, countsOutcomes: true)
        counted.recordSuccess()
        counted.recordFailure(at: 0, policy: EjectionPolicy(consecutiveFailures: 100))
        #expect(counted.takeOutcomes() == (1, 1))
        #expect(counted.takeOutcomes() == (0, 0))
        let uncounted = Replica(id: Self.id)
        uncounted.recordSuccess()
        #expect(uncounted.takeOutcomes() == (0, 0))
    }

    @Test func aCheckedReplicaWaitsForItsFirstPassThenFollowsTheThresholds() {
        let policy = HealthCheckPolicy(healthyAfter: 2, unhealthyAfter: 3)
        var health = ActiveHealth()
        #expect(health.state == .pending)
        #expect(health.record(passed: false, policy: policy) == nil)
        #expect(health.record(passed: true, policy: policy) == .healthy)  // the first pass, whatever healthy_after
        #expect(health.record(passed: false, policy: policy) == nil)
        #expect(health.record(passed: false, policy: policy) == nil)
        #expect(health.record(passed: true, policy: policy) == nil)  // the run of failures is broken
        for _ in 0..<2 { #expect(health.record(passed: false, policy: policy) == nil) }
        #expect(health.record(passed: false, policy: policy) == .unhealthy)
        #expect(health.record(passed: true, policy: policy) == nil)
        #expect(health.record(passed: true, policy: policy) == .healthy)

        var never = ActiveHealth()
        for _ in 0..<2 { #expect(never.record(passed: false, policy: policy) == nil) }
        #expect(never.record(passed: false, policy: policy) == .unhealthy)
    }

    @Test func aReplicaIsInRotationOnlyWhenItsChecksAgreeAndAPassEndsAnEjection() {
        let replica = Replica(id: Self.id, checked: true)
        #expect(!replica.isAvailable(at: 0))
        replica.setCheckHealth(.healthy)
        #expect(replica.isAvailable(at: 0))
        replica.eject(at: 0, policy: EjectionPolicy(duration: 60 * Self.second), reason: .failureRate)
        #expect(!replica.isAvailable(at: Self.second))
        #expect(replica.restore(at: Self.second))
        #expect(replica.isAvailable(at: Self.second))
        #expect(!replica.restore(at: Self.second))
        replica.setCheckHealth(.unhealthy)
        #expect(!replica.isAvailable(at: Self.second))
    }

    @Test func theNextRoundIsDueAfterTheIntervalPlusAtMostItsJitter() {
        let policy = HealthCheckPolicy(interval: 1_000, jitter: 0.1)
        #expect(policy.delay(random: 0) == 1_000)
        #expect(policy.delay(random: 100) == 1_100)
        #expect(policy.delay(random: 101) == 1_000)
        #expect((0..<1_000).allSatisfy { (1_000...1_100).contains(policy.delay(random: UInt64($0) &* 0x9E37_79B9_7F4A_7C15)) })
        #expect(HealthCheckPolicy(interval: 1_000, jitter: 0).delay(random: 12_345) == 1_000)
    }
}
