import SluiceCore
import Testing

/// Which failed requests go again, within what budget, after what wait.
struct RetryPolicyTests {
    @Test func aRequestNeverSentMayAlwaysGoAgainOneSentOnlyWhenRepeatingItChangesNothing() {
        let policy = RetryPolicy(attempts: 2)
        #expect(policy.mayRetry(tries: 1, sent: false, idempotentMethod: false))
        #expect(!policy.mayRetry(tries: 1, sent: true, idempotentMethod: false))
        #expect(policy.mayRetry(tries: 1, sent: true, idempotentMethod: true))
        #expect(RetryPolicy(idempotent: true).mayRetry(tries: 1, sent: true, idempotentMethod: false))
        #expect(!policy.mayRetry(tries: 2, sent: false, idempotentMethod: true))
        #expect(!RetryPolicy(attempts: 1).mayRetry(tries: 1, sent: false, idempotentMethod: true))
    }

    @Test func retriesInFlightStayWithinAShareOfTheRequestsOrTheMinimum() {
        let policy = RetryPolicy(budgetPercent: 20, minRetries: 3)
        #expect(policy.withinBudget(retrying: 2, active: 0))
        #expect(!policy.withinBudget(retrying: 3, active: 10))
        #expect(policy.withinBudget(retrying: 19, active: 100))
        #expect(!policy.withinBudget(retrying: 20, active: 100))
        #expect(!RetryPolicy(budgetPercent: 0, minRetries: 0).withinBudget(retrying: 0, active: 1_000))
    }

    @Test func eachRetryWaitsAtRandomUpToADoublingCap() {
        let policy = RetryPolicy(backoff: 100, maxBackoff: 300)
        #expect(policy.delay(retry: 1, random: 100) == 100)
        #expect(policy.delay(retry: 1, random: 101) == 0)
        #expect(policy.delay(retry: 2, random: 200) == 200)
        #expect(policy.delay(retry: 3, random: 300) == 300)
        #expect(policy.delay(retry: 9, random: 301) == 0)
        var draw: UInt64 = 0x9E37_79B9_7F4A_7C15
        for retry in 1...40 {
            draw = draw &* 6_364_136_223_846_793_005 &+ 1
            #expect(policy.delay(retry: retry, random: draw) <= min(300, 100 << UInt64(min(retry - 1, 20))))
        }
        #expect(RetryPolicy(backoff: 0).delay(retry: 1, random: 5) == 0)
    }
}
