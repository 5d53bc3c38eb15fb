import Foundation
import Histogram

/// The JSON report of one run (`report.json`). Its schema is `loadtest/report.schema.json`;
/// keys are snake_case, times are milliseconds unless the key says otherwise.
public struct LoadReport: Codable, Sendable {
    public struct Summary: Codable, Sendable {
        public var count: Int
        public var mean: Double
        public var p50: Double
        public var p90: Double
        public var p95: Double
        public var p99: Double
        public var max: Double
    }

    public struct Requests: Codable, Sendable {
        /// Sent = completed + failed.
        public var sent: Int
        /// Got a whole response (any status).
        public var completed: Int
        /// Got no whole response: timeout, refused, closed.
        public var failed: Int
        /// Completed with a status of 400 or more.
        public var errorResponses: Int
        public var byStatus: [String: Int]
        public var failures: [String: Int]
        public var byWorkload: [String: Int]
    }

    public struct Connections: Codable, Sendable {
        public var opened: Int
        public var limit: Int
        /// Requests that waited for a free connection (the wait counts as their latency).
        public var requestsThatWaited: Int
    }

    public struct Generator: Codable, Sendable {
        public var threads: Int
        public var cpuSeconds: Double
        public var cpuMsPerThousandRequests: Double
        /// How late sends left against their intended time (the generator's own overhead).
        public var sendLatenessP99Ms: Double
        public var sendLatenessMaxMs: Double
    }

    public struct Point: Codable, Sendable {
        public var second: Int
        public var sent: Int
        public var completed: Int
        public var errors: Int
        public var p50Ms: Double
        public var p95Ms: Double
        public var p99Ms: Double
        public var ttftP95Ms: Double?
        public var itlP95Ms: Double?
    }

    public struct PoolSample: Codable, Sendable, Equatable {
        public var replicas: Int
        public var available: Int
        /// Requests in progress through the gateway, and waiting in its queue for a replica
        /// slot (pools with `max_concurrent_per_replica`; nil for others).
        public var inFlight: Int?
        public var queued: Int?
        /// Requests that waited and were given a slot, were refused (queue full) or timed out,
        /// since the gateway started.
        public var queueDispatched: Int?
        public var queueFull: Int?
        public var queueTimeout: Int?
        /// For pools with `scaling`: the advisor's desired replicas, its stable-window p95 and
        /// the target, in milliseconds.
        public var desired: Int?
        public var p95Ms: Double?
        public var targetMs: Double?

        public init(replicas: Int, available: Int, inFlight: Int? = nil, queued: Int? = nil,
                    queueDispatched: Int? = nil, queueFull: Int? = nil, queueTimeout: Int? = nil) {
            self.replicas = replicas
            self.available = available
            self.inFlight = inFlight
            self.queued = queued
            self.queueDispatched = queueDispatched
            self.queueFull = queueFull
            self.queueTimeout = queueTimeout
        }
    }

    /// The gateway's pools over time, read from its admin listener's `/readyz`.
    public struct GatewaySample: Codable, Sendable {
        public var second: Int
        public var pools: [String: PoolSample]
    }

    public var schemaVersion = 1
    public var scenario: String
    public var target: String
    public var startedAt: String
    public var plannedSeconds: Double
    public var elapsedSeconds: Double
    public var requests: Requests
    public var throughputRps: Double
    public var latencyMs: Summary
    public var ttftMs: Summary?
    public var itlMs: Summary?
    /// How long error answers (status ≥ 400) and failures took; not part of `latencyMs`.
    public var errorLatencyMs: Summary?
    public var replicas: [String: Int]
    public var connections: Connections
    public var generator: Generator
    public var timeline: [Point]
    /// Present when the run was given the gateway's admin URL.
    public var gateway: [GatewaySample]?
    /// What the local actuator did (`--autoscale`): replicas started, ready, drained, stopped.
    public var scalingEvents: [ScalingEvent]?

    public struct ScalingEvent: Codable, Sendable, Equatable {
        public var second: Double
        public var action: String
        public var replica: String
        public var desired: Int
        public var current: Int

        public init(second: Double, action: String, replica: String, desired: Int, current: Int) {
            self.second = second
            self.action = action
            self.replica = replica
            self.desired = desired
            self.current = current
        }
    }

    static func summary(_ histogram: Histogram<UInt64>) -> Summary? {
        guard histogram.totalCount > 0 else { return nil }
        func ms(_ micros: UInt64) -> Double { (Double(micros) / 1000 * 1000).rounded() / 1000 }
        return Summary(
            count: Int(histogram.totalCount), mean: (histogram.mean / 1000 * 1000).rounded() / 1000,
            p50: ms(histogram.valueAtPercentile(50)), p90: ms(histogram.valueAtPercentile(90)),
            p95: ms(histogram.valueAtPercentile(95)), p99: ms(histogram.valueAtPercentile(99)),
            max: ms(histogram.maxRecorded))
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
