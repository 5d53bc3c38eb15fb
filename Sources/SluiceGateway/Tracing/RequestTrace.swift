import NIOCore
import SluiceCore
import Tracing

/// One sampled request's trace: its server span with an event per stage (admitted, body read,
/// queued, slot, picked with the replica and the routing reason, sent, first byte, last byte),
/// and a client span per attempt at a replica, whose context goes upstream as `traceparent`.
/// Lives on the request's event loop, like its `Exchange`.
final class RequestTrace {
    let span: any Span
    private let tracer: GatewayTracer
    private var upstream: (any Span)?

    init(span: any Span, tracer: GatewayTracer) {
        self.span = span
        self.tracer = tracer
    }

    func event(_ name: String, at now: NIODeadline, _ attributes: SpanAttributes = [:]) {
        span.addEvent(SpanEvent(name: name, at: tracer.instant(now), attributes: attributes))
    }

    /// The tenant's limits let the request in.
    func admitted(tenant: String?, at now: NIODeadline) {
        var attributes = SpanAttributes()
        if let tenant {
            attributes["sluice.tenant"] = tenant
            span.attributes["sluice.tenant"] = tenant
        }
        event("admitted", at: now, attributes)
    }

    /// `exchange` goes to `replica`: returns the `traceparent` the replica gets (`sending`).
    func sending(_ exchange: Exchange, to replica: Replica, at now: NIODeadline) -> String? {
        sending(
            pool: exchange.pool?.name ?? "", replica: replica.id.description, reason: exchange.pickedReason?.rawValue,
            attempt: exchange.retries + 1, at: now
        ).first { $0.0 == "traceparent" }?.1
    }

    /// The request goes to `replica` (the previous attempt's span, if any, ends failed): an
    /// event on the server span, a client span for this attempt, and the fields (the
    /// `traceparent`) that make the replica's own spans its children.
    func sending(pool: String, replica: String, reason: String?, attempt: Int, at now: NIODeadline) -> [(String, String)] {
        if let upstream {
            upstream.setStatus(SpanStatus(code: .error, message: "retried on another attempt"))
            upstream.end(at: tracer.instant(now))
        }
        var attributes = SpanAttributes()
        attributes["sluice.pool"] = pool
        attributes["sluice.replica"] = replica
        attributes["sluice.attempt"] = Int64(attempt)
        if let reason { attributes["sluice.routing.reason"] = reason }
        event("picked", at: now, attributes)
        span.attributes["sluice.pool"] = pool
        span.attributes["sluice.replica"] = replica
        if let reason { span.attributes["sluice.routing.reason"] = reason }
        let child = tracer.tracer.startSpan("upstream \(replica)", context: span.context, ofKind: .client, at: tracer.instant(now))
        child.attributes["server.address"] = replica
        child.attributes["sluice.attempt"] = Int64(attempt)
        upstream = child
        var fields: [(String, String)] = []
        tracer.tracer.inject(child.context, into: &fields, using: TraceFieldsInjector())
        return fields
    }

    func firstByte(status: Int, at now: NIODeadline) {
        var attributes = SpanAttributes()
        attributes["http.response.status_code"] = Int64(status)
        event("first byte", at: now, attributes)
        upstream?.addEvent(SpanEvent(name: "first byte", at: tracer.instant(now)))
    }

    /// The answer's last byte went to the client (or the request ended otherwise): both spans end.
    func finish(status: Int, at now: NIODeadline) {
        event("last byte", at: now)
        span.attributes["http.response.status_code"] = Int64(status)
        if status >= 500 || status == 499 {
            span.setStatus(SpanStatus(code: .error, message: status == 499 ? "the client left first" : "answered \(status)"))
        }
        if let upstream {
            upstream.attributes["http.response.status_code"] = Int64(status)
            if status >= 500 { upstream.setStatus(SpanStatus(code: .error)) }
            upstream.end(at: tracer.instant(now))
        }
        upstream = nil
        span.end(at: tracer.instant(now))
    }
}
