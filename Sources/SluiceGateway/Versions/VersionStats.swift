import NIOCore

/// What one version of a model served: requests by status class, their latency, and the tokens
/// the replicas reported, so versions can be compared (`GET /admin/versions`, `/metrics`).
final class VersionStats: Sendable {
    let duration: LatencyHistogram
    /// 2xx, 4xx, 5xx (other statuses count with 5xx: a version that answers 1xx/3xx is broken).
    private let responses: [CounterSeries]
    let tokens: CounterSeries

    /// - Parameter role: `version` (it serves a share) or `shadow` (it gets copies).
    init(model: String, pool: String, metrics: GatewayMetrics, role: String = "version") {
        let labels = [("model", model), ("pool", pool), ("role", role)]
        duration = metrics.versionDuration.makeSeries(labels: labels)
        responses = ["2xx", "4xx", "5xx"].map { metrics.versionResponses.makeSeries(labels: labels + [("class", $0)]) }
        tokens = metrics.versionTokens.makeSeries(labels: labels)
    }

    func record(status: Int, nanoseconds: Int64, tokens used: Int?) {
        duration.record(nanoseconds: nanoseconds)
        responses[(200..<300).contains(status) ? 0 : (400..<500).contains(status) ? 1 : 2].increment()
        if let used, used > 0 { tokens.increment(by: used) }
    }

    var succeeded: Int { responses[0].value }
    var clientErrors: Int { responses[1].value }
    var failed: Int { responses[2].value }
}
