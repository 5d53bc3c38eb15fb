import Prometheus
import SluiceCore

/// The gateway's Prometheus metrics. Everything touched per request is pre-created (counters
/// are lock-free atomics); gauges that describe state (in-flight, connections) are filled in at
/// scrape time from the live atomics instead of being updated on the request path.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let unrouted: PoolMetrics
    let downstreamConnections: Gauge
    let downstreamConnectionsTotal: Counter
    /// Connections closed on accept: over `limits.max_connections` (see `ConnectionCap`), and
    /// over the admin listener's own cap.
    let downstreamConnectionsRefused: Counter
    let adminConnectionsRefused: Counter
    /// Requests by how they came, indexed by `ClientProtocol.rawValue`.
    let requestsByProtocol: [Counter]
    let requestDuration = LatencyHistogramFamily(
        name: "sluice_request_duration_seconds",
        help: "From the request head to the last response byte sent to the client.",
        bounds: GatewayMetrics.latencyBuckets)
    let firstByte = LatencyHistogramFamily(
        name: "sluice_response_first_byte_seconds",
        help: "From the request head to the replica's response head (time to first byte).",
        bounds: GatewayMetrics.latencyBuckets)
    let queueWait = LatencyHistogramFamily(
        name: "sluice_queue_wait_seconds",
        help: "How long requests that waited for a replica slot waited (those given one; see sluice_queue_requests_total).",
        bounds: GatewayMetrics.latencyBuckets)

    let scalingSignal = LatencyHistogramFamily(
        name: "sluice_pool_signal_seconds",
        help: "The latency signal each scaled pool's p95 objective is measured on (scaling.signal), since start.",
        bounds: GatewayMetrics.latencyBuckets)

    let batchWait = LatencyHistogramFamily(
        name: "sluice_batch_wait_seconds",
        help: "How long batch members waited at the gateway for their batch to go.",
        bounds: [.microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                 .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250)])

    /// A versioned model's requests by the version (pool) that served them (`ModelVersions`).
    let versionDuration = LatencyHistogramFamily(
        name: "sluice_version_request_duration_seconds",
        help: "Requests for a versioned model, by the version (pool) that served them: from the request head to the last byte.",
        bounds: GatewayMetrics.latencyBuckets)
    let versionResponses = CounterFamily(
        name: "sluice_version_responses_total", help: "Requests for a versioned model, by version (pool) and status class.")
    let versionTokens = CounterFamily(
        name: "sluice_version_tokens_total", help: "Tokens (prompt and completion) replicas reported in their usage, by versioned model and version (pool).")

    /// Requests sent to a hosted provider because their pool was saturated (`overflow:`).
    let overflowRequests = CounterFamily(
        name: "sluice_overflow_requests_total", help: "Requests sent to a hosted provider's pool because their own pool was saturated, by pool and tenant.")
    let overflowTokens = CounterFamily(
        name: "sluice_overflow_tokens_total", help: "Tokens a hosted provider reported using for overflowed requests, by provider pool and tenant.")
    let overflowCost = CounterFamily(
        name: "sluice_overflow_cost_dollars_total", help: "What overflowed requests cost at the provider's configured price, by provider pool and tenant.",
        divisor: 1_000_000_000)

    /// Replica choices by the branch the policy took: read back by the status page.
    let routingDecisions = CounterFamily(
        name: "sluice_routing_decisions_total", help: "Replica choices, by the branch the routing policy took.")

    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2_500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        unrouted = PoolMetrics(pool: "", registry: registry, requestDuration: requestDuration, firstByte: firstByte, routing: routingDecisions)
        downstreamConnections = registry.makeGauge(
            descriptor: .sluice("sluice_downstream_connections", "Client connections open now."))
        downstreamConnectionsTotal = registry.makeCounter(
            descriptor: .sluice("sluice_downstream_connections_total", "Client connections accepted."))
        downstreamConnectionsRefused = registry.makeCounter(
            descriptor: .sluice("sluice_downstream_connections_refused_total", "Client connections closed on accept, over limits.max_connections."))
        requestsByProtocol = ClientProtocol.allCases.map { clientProtocol in
            registry.makeCounter(
                descriptor: .sluice("sluice_downstream_requests_total", "Client requests by protocol: http1, h2c, http1-tls, h2 (HTTP/2 streams each count)."),
                labels: [("protocol", clientProtocol.label)])
        }
        adminConnectionsRefused = registry.makeCounter(
            descriptor: .sluice("sluice_admin_connections_refused_total", "Admin connections closed on accept, over the admin listener's cap."))
    }

    func pool(_ name: String) -> PoolMetrics {
        PoolMetrics(pool: name, registry: registry, requestDuration: requestDuration, firstByte: firstByte, routing: routingDecisions)
    }

    /// The Prometheus text of everything: the registry's metrics and the lock-free histograms.
    func render() -> String {
        var text = registry.emitToString()
        requestDuration.render(into: &text)
        firstByte.render(into: &text)
        queueWait.render(into: &text)
        scalingSignal.render(into: &text)
        batchWait.render(into: &text)
        versionDuration.render(into: &text)
        versionResponses.render(into: &text)
        versionTokens.render(into: &text)
        overflowRequests.render(into: &text)
        overflowTokens.render(into: &text)
        overflowCost.render(into: &text)
        routingDecisions.render(into: &text)
        return text
    }
}

/// Per-pool request metrics. `pool` is empty for requests that matched no pool.
final class PoolMetrics: Sendable {
    let pool: String
    let registry: PrometheusCollectorRegistry
    /// Counters for the statuses the gateway sees most, created up front; others are made on
    /// first use (the registry deduplicates them under its lock).
    private let common: [Counter?]
    private let duration: LatencyHistogram
    private let firstByte: LatencyHistogram
    let clientCancelled: Counter
    /// Requests sent again after a replica failed them (`RetryPolicy`).
    let retries: Counter
    /// Routing decisions by the branch the policy took (`RoutingReason`).
    private let routing: [CounterSeries]
    /// Placements told to and heard from other gateway instances (`routing.shared`).
    private let shared: [Counter]
    /// Ejections by reason (consecutive failures, failure rate), and active checks by result.
    private let ejections: [Counter]
    private let checks: [Counter]

    enum SharedEvent: String, CaseIterable {
        case published, learned, failed
    }

    private static var requestsTotal: MetricNameDescriptor {
        .sluice(
        "sluice_requests_total", "Requests answered, by pool and HTTP status (499: the client left first).")
    }

    private static let commonStatuses = [200, 400, 404, 413, 429, 431, 499, 502, 503, 504]

    init(
        pool: String, registry: PrometheusCollectorRegistry, requestDuration: LatencyHistogramFamily, firstByte: LatencyHistogramFamily,
        routing: CounterFamily
    ) {
        self.pool = pool
        self.registry = registry
        var common = [Counter?](repeating: nil, count: 600)
        for status in Self.commonStatuses {
            common[status] = registry.makeCounter(descriptor: Self.requestsTotal, labels: [("pool", pool), ("status", String(status))])
        }
        self.common = common
        duration = requestDuration.makeSeries(labels: [("pool", pool)])
        self.firstByte = firstByte.makeSeries(labels: [("pool", pool)])
        clientCancelled = registry.makeCounter(
            descriptor: .sluice("sluice_upstream_cancelled_total", "Upstream requests cancelled because the client disconnected."),
            labels: [("pool", pool)])
        retries = registry.makeCounter(
            descriptor: .sluice("sluice_upstream_retries_total", "Requests sent again after a replica failed them (no connection, closed before answering)."),
            labels: [("pool", pool)])
        // Requests that matched no pool were routed by no policy: no routing series for them.
        self.routing = pool.isEmpty ? [] : RoutingReason.allCases.map { routing.makeSeries(labels: [("pool", pool), ("reason", $0.rawValue)]) }
        ejections = pool.isEmpty ? [] : [Replica.EjectionReason.consecutiveFailures, .failureRate].map { reason in
            registry.makeCounter(
                descriptor: .sluice("sluice_replica_ejections_total", "Replicas taken out of rotation by passive health, by reason."),
                labels: [("pool", pool), ("reason", reason.name)])
        }
        checks = pool.isEmpty ? [] : ["pass", "fail"].map { result in
            registry.makeCounter(
                descriptor: .sluice("sluice_health_checks_total", "Active health checks, by result."), labels: [("pool", pool), ("result", result)])
        }
        shared = pool.isEmpty ? [] : SharedEvent.allCases.map { event in
            registry.makeCounter(
                descriptor: .sluice(
                    "sluice_routing_shared_total",
                    "Cache-aware placements told to other gateway instances, heard from them, and failures to reach the shared Redis."),
                labels: [("pool", pool), ("event", event.rawValue)])
        }
    }

    func recordEjection(_ reason: Replica.EjectionReason) {
        guard !ejections.isEmpty else { return }
        ejections[reason == .consecutiveFailures ? 0 : 1].increment()
    }

    func recordCheck(passed: Bool) {
        guard !checks.isEmpty else { return }
        checks[passed ? 0 : 1].increment()
    }

    func recordShared(_ event: SharedEvent) {
        guard !shared.isEmpty else { return }
        shared[SharedEvent.allCases.firstIndex(of: event)!].increment()
    }

    func recordRouting(_ reason: RoutingReason) {
        guard !routing.isEmpty else { return }
        routing[RoutingReason.allCases.firstIndex(of: reason)!].increment()
    }

    /// Decisions so far by reason, those taken at least once.
    var routingCounts: [(reason: RoutingReason, count: Int)] {
        zip(RoutingReason.allCases, routing).compactMap { reason, series in series.value > 0 ? (reason, series.value) : nil }
    }

    func recordResponse(status: Int, nanoseconds: Int64) {
        counter(status).increment()
        duration.record(nanoseconds: nanoseconds)
    }

    func recordFirstByte(nanoseconds: Int64) {
        firstByte.record(nanoseconds: nanoseconds)
    }

    private func counter(_ status: Int) -> Counter {
        if status >= 0, status < common.count, let counter = common[status] { return counter }
        return registry.makeCounter(descriptor: Self.requestsTotal, labels: [("pool", pool), ("status", String(status))])
    }
}

extension MetricNameDescriptor {
    /// A descriptor from a full metric name (the name already carries `sluice_` and its unit).
    static func sluice(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
