/// `tracing:`: OpenTelemetry spans per request, exported over OTLP/HTTP (protobuf: swift-otel's
/// JSON encoding writes IDs in base64, which collectors do not read). Absent, nothing is traced
/// and the data path does not look at tracing at all.
public struct TracingConfiguration: Sendable, Equatable {
    /// The collector's traces URL (`http://collector:4318/v1/traces`).
    public var endpoint: String
    /// The share of requests traced when the client sent no `traceparent`; a client's own
    /// sampling flag is followed when it sent one (parent-based).
    public var sample: Double = 1
    public var serviceName = "sluice"
    /// Longest wait between a span's end and its export (the batch processor's schedule delay).
    public var exportDelay: Duration = .seconds(5)

    public init(endpoint: String) {
        self.endpoint = endpoint
    }
}
