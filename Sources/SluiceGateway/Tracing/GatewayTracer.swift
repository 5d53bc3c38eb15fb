import Foundation
import Logging
import NIOCore
import OTel
import ServiceLifecycle
import SluiceConfig
import SluiceHTTP1
import Tracing

/// OpenTelemetry for the data path (`tracing:`): the tracer, made once per gateway (not the
/// process-wide `InstrumentationSystem`, so gateways in one process keep their own), and the
/// exporter's background service, which the gateway runs beside its listeners.
final class GatewayTracer: Sendable {
    let tracer: any Tracer
    let service: any Service
    /// Unix nanoseconds minus monotonic nanoseconds, taken once: the data path keeps monotonic
    /// `NIODeadline`s and spans want wall-clock instants.
    let wallOffset: UInt64
    /// The share of requests without a client's `traceparent` that are traced.
    let sample: Double

    init(_ configuration: TracingConfiguration, logger: Logger) throws {
        var otel = OTel.Configuration.default
        otel.serviceName = configuration.serviceName
        otel.logs.enabled = false
        otel.metrics.enabled = false
        otel.traces.enabled = true
        otel.traces.exporter = .otlp
        otel.traces.otlpExporter.endpoint = configuration.endpoint
        otel.traces.otlpExporter.protocol = .httpProtobuf
        // A client's sampled flag is followed; requests without one were sampled by `start`.
        otel.traces.sampler = .parentBasedAlwaysOn
        sample = configuration.sample
        otel.traces.batchSpanProcessor.scheduleDelay = configuration.exportDelay
        otel.propagators = [.traceContext]
        otel.diagnosticLogger = .custom(logger)
        let backend = try OTel.makeTracingBackend(configuration: otel)
        tracer = backend.factory
        service = backend.service
        let wall = UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
        wallOffset = wall &- NIODeadline.now().uptimeNanoseconds
    }

    func instant(_ deadline: NIODeadline) -> TraceInstant {
        TraceInstant(nanosecondsSinceEpoch: wallOffset &+ deadline.uptimeNanoseconds)
    }

    /// A request's server span, child of the client's `traceparent` when it sent one; nil when
    /// the request is not sampled. Without a client's trace, the draw (`random`) comes first,
    /// so an unsampled request costs no span at all.
    func start(_ head: HTTP1Head, path: String, at now: NIODeadline, random: UInt64) -> RequestTrace? {
        if head.first("traceparent") == nil, Double(random >> 11) / Double(UInt64(1) << 53) >= sample { return nil }
        var context = ServiceContext.topLevel
        tracer.extract(head, into: &context, using: HeadExtractor())
        let method = head.string(head.method)
        let span = tracer.startSpan("\(method) \(path)", context: context, ofKind: .server, at: instant(now))
        // (A client's trace it did not sample.)
        guard span.isRecording else {
            span.end(at: instant(now))
            return nil
        }
        span.attributes["http.request.method"] = method
        span.attributes["url.path"] = path
        return RequestTrace(span: span, tracer: self)
    }
}

/// A wall-clock instant for a span, from a monotonic deadline (`GatewayTracer.instant`).
struct TraceInstant: TracerInstant {
    var nanosecondsSinceEpoch: UInt64

    static func < (lhs: TraceInstant, rhs: TraceInstant) -> Bool {
        lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch
    }
}

/// Reads `traceparent` (and `tracestate`) from a client's request head.
struct HeadExtractor: Extractor {
    func extract(key: String, from head: HTTP1Head) -> String? {
        switch key {
        case "traceparent": head.first("traceparent").map(head.value)
        case "tracestate": head.first("tracestate").map(head.value)
        default: nil
        }
    }
}

/// Collects what the tracer injects (the upstream span's `traceparent`) for the replica's head.
struct TraceFieldsInjector: Injector {
    func inject(_ value: String, forKey key: String, into fields: inout [(String, String)]) {
        fields.append((key, value))
    }
}
